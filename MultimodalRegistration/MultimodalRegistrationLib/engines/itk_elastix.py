"""The two itk-elastix classes the engine uses, loaded without the rest of ITK's wrapping.

``itk.ElastixRegistrationMethod`` goes through ITK's lazy loader, which first initialises every ITK
module that elastix's wrapping lists as a dependency: 29 modules, 13-16 s on a 2-core machine, 5 s of
it ITKImageIntensity alone (SWIG type registration, C code that holds the GIL). The engine needs only
the registration method for float 3D images and the parameter object. Their SWIG wrapper modules
import just what their C++ signatures use (ITKCommon's images and filters, ITKTransform's
transforms): 1-2 s. The C++ code that runs is the same, so the transforms are identical (tested
against the lazy loader in test_itk_elastix.py).

A nonlinear start that elastix takes as its initial transform (with guidance; see nonlinear_start.py)
is an ITK transform read from an .h5 file; :func:`read_transform` reads it the same direct way
(``itk.transformread`` would load the lazy loader's 29 modules).

If an itk-elastix or ITK release renames those wrapper modules, the lazy loader is used instead: slower,
never wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path


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

    itk.PyBuffer[itk.Image[itk.F, 3]]
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
        pass
    try:
        return _lazy()
    except AttributeError as error:  # itk without itk-elastix: the lazy loader knows no ElastixRegistrationMethod
        raise ImportError(f"itk-elastix is not installed ({error})") from error


@cache
def registration_method_2d() -> type:
    """ElastixRegistrationMethod for float 2D images (same wrapper module as the 3D one; loads :func:`classes`)."""
    import itk

    loaded = classes()
    image = itk.Image[itk.F, 2]
    itk.PyBuffer[image]
    if loaded.direct:
        from itk.itkElastixRegistrationMethodPython import itkElastixRegistrationMethodIF2IF2

        return itkElastixRegistrationMethodIF2IF2
    return itk.ElastixRegistrationMethod[image, image]


@cache
def _transform_reader() -> tuple[type, type]:
    """ITK's transform file reader (double) with the HDF5 transform IO registered, and Transform<double, 3, 3>."""
    from itk.itkHDF5TransformIOPython import itkHDF5TransformIOFactory
    from itk.itkTransformBasePython import itkTransformD33
    from itk.itkTransformFileReaderPython import itkTransformFileReaderTemplateD

    itkHDF5TransformIOFactory.RegisterOneFactory()
    return itkTransformFileReaderTemplateD, itkTransformD33


def read_transform(path: Path):
    """The first transform of an ITK .h5 file as ITK's Transform<double, 3, 3> (what elastix takes as an
    external initial transform; points in LPS, mm)."""
    try:
        reader_type, transform_type = _transform_reader()
    except (ImportError, AttributeError):
        import itk

        return itk.transformread(str(path))[0]
    reader = reader_type.New()
    reader.SetFileName(str(path))
    reader.Update()
    transforms = reader.GetModifiableTransformList()
    while transforms.size() > 1:
        transforms.pop()  # pops from the back: the first one stays
    return transform_type.cast(transforms.pop())
