"""The two itk-elastix classes the engine uses, loaded without the rest of ITK's wrapping.

``itk.ElastixRegistrationMethod`` goes through ITK's lazy loader, which first initialises every ITK
module that elastix's wrapping lists as a dependency: 29 modules, 13-16 s on a 2-core machine, 5 s of
it ITKImageIntensity alone (SWIG type registration, C code that holds the GIL). The engine needs only
the registration method for float 3D images and the parameter object. Their SWIG wrapper modules
import just what their C++ signatures use (ITKCommon's images and filters, ITKTransform's
transforms): about 1 s. The C++ code that runs is the same, so the transforms are identical (tested
against the lazy loader in test_itk_elastix.py).

Two more things the direct path avoids (measured on the 2-core machine, idle): ITK's NumPy bridge
(``itkPyBufferPython``) imports ``distributed`` when it is installed, only to register a dask serializer
for ITK's array views (0.6 s); the engine never sends those through dask, so a process that has not
imported ``distributed`` itself does not import it for ITK. And ``itk.image_from_array``,
``itk.matrix_from_array`` and ``itk.MultiThreaderBase`` go through the lazy loader again (0.5 s): the
bridge's own classes, ``itkMatrixD22/D33`` and ``ITKCommonBasePython`` are used instead.

A nonlinear start that elastix takes as its initial transform (with guidance; see nonlinear_start.py)
is an ITK transform read from an .h5 file; :func:`read_transform` reads it the same direct way
(``itk.transformread`` would load the lazy loader's 29 modules).

If an itk-elastix or ITK release renames those wrapper modules, the lazy loader is used instead: slower,
never wrong.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from .registry import engine_spec


@dataclass(frozen=True)
class ElastixClasses:
    """``registration_method``: ElastixRegistrationMethod for float 3D fixed and moving images;
    ``parameter_object``: elastix's ParameterObject; ``direct``: True when loaded without the lazy loader."""

    registration_method: type
    parameter_object: type
    direct: bool


@contextmanager
def _without_dask_serializers():
    """Hide ``distributed`` from imports made inside, unless this process has imported it already."""
    if "distributed" in sys.modules:
        yield
        return
    sys.modules["distributed"] = None  # a None entry makes ``import distributed...`` raise ImportError
    try:
        yield
    finally:
        if sys.modules.get("distributed", 0) is None:
            del sys.modules["distributed"]


def _direct() -> ElastixClasses:
    with _without_dask_serializers():
        import itk.itkPyBufferPython  # noqa: F401  (the NumPy bridge: imported here, inside the guard)
        from itk.elxParameterObjectPython import elastixParameterObject
        from itk.itkElastixRegistrationMethodPython import itkElastixRegistrationMethodIF3IF3

    return ElastixClasses(itkElastixRegistrationMethodIF3IF3, elastixParameterObject, direct=True)


def _lazy() -> ElastixClasses:
    import itk

    image = itk.Image[itk.F, 3]
    return ElastixClasses(itk.ElastixRegistrationMethod[image, image], itk.ParameterObject, direct=False)


@cache
def classes() -> ElastixClasses:
    """The classes, loaded on the first call (about 1 s directly, 13-16 s through ITK's lazy loader)."""
    try:
        return _direct()
    except (ImportError, AttributeError, KeyError):
        pass
    spec = engine_spec("elastix")
    if spec.installed_version() is None:  # itk alone: its lazy loader would spend 15-20 s before failing
        raise ImportError(f"{spec.distribution} is not installed")
    try:
        return _lazy()
    except AttributeError as error:  # itk without itk-elastix: the lazy loader knows no ElastixRegistrationMethod
        raise ImportError(f"itk-elastix is not installed ({error})") from error


@cache
def registration_method_2d() -> type:
    """ElastixRegistrationMethod for float 2D images (same wrapper module as the 3D one; loads :func:`classes`)."""
    import itk

    loaded = classes()
    if loaded.direct:
        from itk.itkElastixRegistrationMethodPython import itkElastixRegistrationMethodIF2IF2

        return itkElastixRegistrationMethodIF2IF2
    image = itk.Image[itk.F, 2]
    return itk.ElastixRegistrationMethod[image, image]


_PIXELS = {np.dtype(np.float32): "F", np.dtype(np.uint8): "UC"}


def itk_image(array: np.ndarray, origin, spacing, direction: np.ndarray):
    """An itk image holding a copy of ``array`` (z, y, x order; float32 or uint8; 2D or 3D) with that
    geometry (LPS mm)."""
    pixel = _PIXELS.get(array.dtype)
    if not classes().direct or pixel is None or array.ndim not in (2, 3):
        import itk

        image = itk.image_from_array(array)
        image.SetDirection(itk.matrix_from_array(np.asarray(direction, float)))
    else:
        import itk.itkImageDuplicatorPython as duplicators
        import itk.itkPyBufferPython as bridge
        from itk import itkMatrixPython, vnl_matrix_fixedPython

        suffix, dimension = f"I{pixel}{array.ndim}", array.ndim
        view = getattr(bridge, f"itkPyBuffer{suffix}").GetImageViewFromArray(np.ascontiguousarray(array), False, True)
        duplicator = getattr(duplicators, f"itkImageDuplicator{suffix}").New()
        duplicator.SetInputImage(view)
        duplicator.Update()
        image = duplicator.GetOutput()
        cells = getattr(vnl_matrix_fixedPython, f"vnl_matrix_fixedD_{dimension}_{dimension}")()
        for (row, column), value in np.ndenumerate(np.asarray(direction, float)):
            cells.put(row, column, float(value))
        image.SetDirection(getattr(itkMatrixPython, f"itkMatrixD{dimension}{dimension}")(cells))
    image.SetOrigin([float(v) for v in origin])
    image.SetSpacing([float(v) for v in spacing])
    return image


def set_global_threads(threads: int) -> None:
    """ITK's global default thread count (what elastix's filters use)."""
    try:
        from itk.ITKCommonBasePython import itkMultiThreaderBase
    except ImportError:
        import itk

        itkMultiThreaderBase = itk.MultiThreaderBase
    itkMultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)


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
