"""MultimodalRegistrationLib: the shared, Qt-free logic of the MultimodalRegistration extension.

Conventions (the only place they are stated):

* Images are SimpleITK images in LPS physical space, millimetres.
* A :class:`~MultimodalRegistrationLib.transforms.Transform` maps *fixed-space* points to
  *moving-space* points (the resampling direction used by ITK, elastix and ANTs).
  In Slicer this is the node's *TransformFromParent*; the moving volume goes under it.
* LPS <-> RAS is ``F @ T @ F`` with ``F = diag(-1, -1, 1, 1)`` (see :mod:`.transforms`).

Heavy engines (itk-elastix, antspyx) are imported lazily, only inside the worker.
"""

from .errors import EngineError, InputError, RegistrationCancelled

__version__ = "0.1.0"

__all__ = ["InputError", "EngineError", "RegistrationCancelled", "__version__"]
