"""MultimodalRegistrationLib: the shared, Qt-free logic of the MultimodalRegistration extension.

Conventions (the only place they are stated):

* Images are SimpleITK images in LPS physical space, millimetres.
* A :class:`~MultimodalRegistrationLib.core.transforms.Transform` maps *fixed-space* points to
  *moving-space* points (the resampling direction used by ITK, elastix and ANTs).
  In Slicer this is the node's *TransformFromParent*; the moving volume goes under it.
* LPS <-> RAS is ``F @ T @ F`` with ``F = diag(-1, -1, 1, 1)`` (see :mod:`.core.transforms`).

Heavy engines (itk-elastix, antspyx) are imported lazily, only inside the worker.
"""

from .core.errors import EngineError, InputError
from .core.version import __version__

__all__ = ["EngineError", "InputError", "__version__"]
