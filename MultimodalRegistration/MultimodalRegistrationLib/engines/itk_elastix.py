"""The two itk-elastix classes the engine uses, loaded without the rest of ITK's wrapping.

``itk.ElastixRegistrationMethod`` goes through ITK's lazy loader, which first initialises every ITK
module that elastix's wrapping lists as a dependency: 29 modules, 13-16 s on a 2-core machine, 5 s of
it ITKImageIntensity alone (SWIG type registration, C code that holds the GIL). The engine needs only
the registration method for float 3D images and the parameter object. Their SWIG wrapper modules
import just what their C++ signatures use (ITKCommon's images and filters, ITKTransform's
transforms): 1-2 s. The C++ code that runs is the same, so the transforms are identical (tested
against the lazy loader in test_itk_elastix.py).

If an itk-elastix release renames those wrapper modules, the lazy loader is used instead: slower, never wrong.
Other ITK names the engine touches (``itk.transformread`` for a nonlinear start) still load lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class ElastixClasses:
    """``registration_method``: ElastixRegistrationMethod for float 3D fixed and moving images;
    ``parameter_object``: elastix's ParameterObject; ``direct``: True when loaded without the lazy loader."""

    registration_method: type
    parameter_object: type
    direct: bool


def _direct() -> ElastixClasses:
    import itk
    from itk.elxParameterObjectPython import elastixParameterObject
    from itk.itkElastixRegistrationMethodPython import itkElastixRegistrationMethodIF3IF3

    itk.PyBuffer[itk.Image[itk.F, 3]]  # noqa: B018 (loads the numpy bridge to_itk_image uses: ITKCommon, ITKBridgeNumPy)
    return ElastixClasses(itkElastixRegistrationMethodIF3IF3, elastixParameterObject, direct=True)


def _lazy() -> ElastixClasses:
    import itk

    image = itk.Image[itk.F, 3]
    return ElastixClasses(itk.ElastixRegistrationMethod[image, image], itk.ParameterObject, direct=False)


@cache
def classes() -> ElastixClasses:
    """The classes, loaded on the first call (1-2 s directly, 13-16 s through ITK's lazy loader)."""
    try:
        return _direct()
    except (ImportError, AttributeError, KeyError):
        return _lazy()
