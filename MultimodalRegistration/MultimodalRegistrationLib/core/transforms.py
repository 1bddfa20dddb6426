"""One transform type for linear, displacement-field and composite transforms.

Direction contract: a :class:`Transform` maps points of the *fixed* image to points of the
*moving* image, in LPS mm. This is the resampling direction of ITK, elastix and ANTs, so
``sitk.Resample(moving, fixed, t.sitk)`` puts the moving image onto the fixed grid. In Slicer
the same mapping is the node's *TransformFromParent* (see :mod:`..nodes.mrml`), expressed in RAS.

LPS <-> RAS: ``M_ras = F @ M_lps @ F`` with ``F = diag(-1, -1, 1, 1)``; this module holds the
only implementation (:func:`lps_ras_flip`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .file_checks import LINEAR_SUFFIXES, TRANSFORM_SUFFIXES
from .files import VOLUME_SUFFIXES, suffix_of, write_atomically
from .transform_checks import SLICER_AS_GRID, check_transform_numbers, check_transform_text, saved_as_modeling

F = np.diag([-1.0, -1.0, 1.0, 1.0])


def lps_ras_flip(matrix: np.ndarray) -> np.ndarray:
    """Convert a 4x4 homogeneous matrix between LPS and RAS (the operation is its own inverse)."""
    return F @ np.asarray(matrix, float) @ F


def lps_ras_points(points: np.ndarray) -> np.ndarray:
    """Convert (N, 3) points between LPS and RAS (its own inverse)."""
    return np.asarray(points, float) * np.array([-1.0, -1.0, 1.0])


def _affine_from_matrix(matrix: np.ndarray) -> sitk.AffineTransform:
    matrix = np.asarray(matrix, float)
    if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise InputError("a linear transform needs a 4x4 homogeneous matrix with last row 0 0 0 1")
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(matrix[:3, :3].ravel().tolist())
    affine.SetTranslation(matrix[:3, 3].tolist())
    return affine


def _matrix_of_linear(transform: sitk.Transform) -> np.ndarray:
    # Probing the origin and unit vectors works for every linear ITK type, composites included.
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    matrix = np.eye(4)
    for axis in range(3):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        matrix[:3, axis] = np.asarray(transform.TransformPoint(unit)) - origin
    matrix[:3, 3] = origin
    return matrix


def _components(transform: sitk.Transform) -> list[sitk.Transform]:
    """Flatten a (possibly nested) composite into its components, first-applied last."""
    if transform.GetName() != "CompositeTransform":
        return [transform]
    composite = sitk.CompositeTransform(transform)
    composite.FlattenTransform()
    return [composite.GetNthTransform(i).Downcast() for i in range(composite.GetNumberOfTransforms())]


def _reader_said(error: Exception) -> str:
    """What ITK's reader said went wrong, in one line: the "ITK ERROR" line without the class and address (its
    last line, "set the suffix to an unsupported type.", had been quoted for a damaged .h5: a helper's QA sweep)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    said = next((line.split("): ", 1)[-1] for line in lines if line.startswith("ITK ERROR")), lines[-1])
    if said.startswith("Could not create Transform IO object"):
        return "no transform reader recognises its contents: it is damaged, or not a transform"
    return said


class Transform:
    """A spatial transform from fixed-space to moving-space points (LPS mm).

    Linear transforms are held as one affine; nonlinear ones as a SimpleITK displacement-field,
    B-spline or composite transform. ``a @ b`` is the composition "apply ``b``, then ``a``".
    """

    def __init__(self, itk_transform: sitk.Transform, inverse: Transform | None = None):
        if itk_transform.GetDimension() != 3:
            raise InputError("only 3D transforms are supported: give a 3D transform file")
        parts = _components(itk_transform)
        if len(parts) == 1:
            itk_transform = parts[0]
        self._linear = bool(itk_transform.IsLinear())
        if self._linear:
            itk_transform = _affine_from_matrix(_matrix_of_linear(itk_transform))
        self._sitk = itk_transform
        self._inverse = inverse

    # construction -------------------------------------------------------------------
    @classmethod
    def identity(cls) -> Transform:
        return cls.from_matrix(np.eye(4))

    @classmethod
    def from_matrix(cls, matrix_lps: np.ndarray) -> Transform:
        """Linear transform from a 4x4 LPS matrix mapping fixed points to moving points (mm)."""
        return cls(_affine_from_matrix(matrix_lps))

    @classmethod
    def from_matrix_ras(cls, matrix_ras: np.ndarray) -> Transform:
        """Linear transform from a 4x4 RAS matrix (Slicer's TransformFromParent)."""
        return cls.from_matrix(lps_ras_flip(matrix_ras))

    @classmethod
    def from_displacement_field(cls, field: sitk.Image) -> Transform:
        """Transform from a vector image of LPS displacements (mm) on the fixed grid."""
        if field.GetNumberOfComponentsPerPixel() != 3:
            raise InputError("a displacement field needs 3 components per voxel (LPS mm)")
        return cls(sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64)))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Transform:
        """Read an ITK transform file (.h5, .tfm, .txt), an ANTs .mat, or a displacement-field image."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"transform file not found: {path}: check the path")
        if not path.is_file():  # a folder, or a pipe that would block the reader with no word
            raise InputError(f"transform {path} is not a regular file (a folder, pipe or device): give the file")
        suffix = suffix_of(path)
        try:
            if suffix in VOLUME_SUFFIXES:  # a displacement field
                field = sitk.ReadImage(str(path))
                if field.GetNumberOfComponentsPerPixel() != 3:
                    raise InputError(f"transform {path} is an image of {field.GetNumberOfComponentsPerPixel()} "
                                     "component(s) per voxel, not a displacement field (3, LPS mm): give the transform "
                                     "file (.h5, .tfm, .txt), not an image")  # fmt: skip
                transform = cls.from_displacement_field(field)
                check_transform_numbers(transform, path)  # before an inversion spreads a NaN
                # as the node layer reads an inverted node: its ToParent, inverted
                return transform.inverse() if saved_as_modeling(field) else transform
            check_transform_text(path)
            transform = cls(sitk.ReadTransform(str(path)))
        except RuntimeError as error:
            if any(name in str(error) for name in ("InverseDisplacementFieldTransform", "InverseBSplineTransform")):
                raise InputError(f"transform file {path} holds a transform Slicer saved inverted, as its node holds it "
                                 f"(ITK reads no such file): {SLICER_AS_GRID}") from None  # fmt: skip
            raise InputError(
                f"transform file {path} could not be read ({_reader_said(error)}): "
                "give an ITK transform (.h5, .tfm, .txt), an ANTs .mat or a displacement-field image"
            ) from None
        check_transform_numbers(transform, path)
        return transform

    @classmethod
    def chain(cls, transforms: Sequence[Transform]) -> Transform:
        """Compose ``[a, b, c]`` into ``a @ b @ c`` (``c`` applied first); identity if empty."""
        result = cls.identity()
        for transform in transforms:
            result = result @ transform
        return result

    # properties -----------------------------------------------------------------------
    @property
    def sitk(self) -> sitk.Transform:
        """The SimpleITK transform (LPS, fixed -> moving)."""
        return self._sitk

    @property
    def is_linear(self) -> bool:
        return self._linear

    @property
    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix in LPS mm (linear transforms only)."""
        if not self._linear:
            raise InputError("this transform is nonlinear and has no matrix: resample through it instead")
        return _matrix_of_linear(self._sitk)

    @property
    def matrix_ras(self) -> np.ndarray:
        """4x4 homogeneous matrix in RAS mm: Slicer's TransformFromParent (linear only)."""
        return lps_ras_flip(self.matrix)

    def is_identity(self, tolerance: float = 1e-12) -> bool:
        """True for a linear transform whose 4x4 LPS matrix is within ``tolerance`` of the identity in every
        element (mm for the translation)."""
        return self._linear and float(np.abs(self.matrix - np.eye(4)).max()) < tolerance

    @property
    def kind(self) -> str:
        """'linear', 'displacement', 'bspline' or 'composite'."""
        if self._linear:
            return "linear"
        name = self._sitk.GetName()
        return {"DisplacementFieldTransform": "displacement", "BSplineTransform": "bspline"}.get(name, "composite")

    def components(self) -> list[Transform]:
        """The chain's parts, ``[a, b]`` for ``a @ b`` (the last is applied first)."""
        return [Transform(part) for part in _components(self._sitk)]

    # operations ----------------------------------------------------------------------
    def transform_points(self, points_lps: Iterable[Sequence[float]]) -> np.ndarray:
        """Map (N, 3) fixed-space LPS points (mm) to moving space."""
        points = np.asarray(points_lps, float).reshape(-1, 3)
        if self._linear:
            matrix = self.matrix
            return points @ matrix[:3, :3].T + matrix[:3, 3]
        return np.array([self._sitk.TransformPoint(tuple(p)) for p in points])

    def __matmul__(self, other: Transform) -> Transform:
        if not isinstance(other, Transform):
            return NotImplemented
        if self._linear and other._linear:
            return Transform.from_matrix(self.matrix @ other.matrix)
        parts = _components(self._sitk) + _components(other._sitk)
        result = Transform(sitk.CompositeTransform(parts))
        if self._inverse is not None and other._inverse is not None:
            # Built from the parts, not by @: the inverses know their own inverses (self and other), and
            # composing them would compose those again, without end.
            inverse = Transform(sitk.CompositeTransform(_components(other._inverse._sitk) + _components(self._inverse._sitk)))
            result._inverse, inverse._inverse = inverse, result
        return result

    def inverse(self) -> Transform:
        """The moving -> fixed transform; exact for linear, iterative for displacement fields."""
        if self._inverse is not None:
            return self._inverse
        if self._linear:
            inverse = Transform.from_matrix(np.linalg.inv(self.matrix))
        elif self.kind == "composite":
            inverse = Transform.chain([part.inverse() for part in reversed(self.components())])
        else:
            inverse = Transform.from_displacement_field(_invert_field(self.displacement_field()))
        inverse._inverse = self
        self._inverse = inverse
        return inverse

    def has_exact_inverse(self) -> bool:
        return self._linear or self._inverse is not None

    def displacement_field(self, reference: sitk.Image | None = None) -> sitk.Image:
        """Displacement field (LPS mm) sampled on ``reference``'s grid (default: the transform's own)."""
        if reference is None:
            reference = _own_domain(self._sitk)
        converter = sitk.TransformToDisplacementFieldFilter()
        converter.SetReferenceImage(reference)
        converter.SetOutputPixelType(sitk.sitkVectorFloat64)
        return converter.Execute(self._sitk)

    def write(self, path: str | os.PathLike) -> None:
        """Write an ITK transform file; nonlinear transforms need ``.h5``."""
        suffix = suffix_of(path)
        if suffix not in TRANSFORM_SUFFIXES:
            raise InputError(f"cannot write a transform to '{suffix}': use .h5, .tfm, .txt or .mat")
        if not self._linear and suffix in LINEAR_SUFFIXES:
            raise InputError(f"a {self.kind} transform cannot be stored in '{suffix}': use .h5")
        write_atomically(path, lambda tmp: sitk.WriteTransform(self._sitk, tmp))

    def __repr__(self) -> str:
        if self._linear:
            return f"Transform(linear, matrix_lps={np.round(self.matrix, 4).tolist()})"
        return f"Transform({self.kind}, {self._sitk.GetName()})"


def _own_domain(transform: sitk.Transform) -> sitk.Image:
    """A reference grid covering a displacement-field or B-spline transform's domain."""
    name = transform.GetName()
    if name == "DisplacementFieldTransform":
        field = sitk.DisplacementFieldTransform(transform).GetDisplacementField()
        reference = sitk.Image(field.GetSize(), sitk.sitkUInt8)
        reference.CopyInformation(field)
        return reference
    if name == "BSplineTransform":
        bspline = sitk.BSplineTransform(transform)
        origin = np.asarray(bspline.GetTransformDomainOrigin())
        physical = np.asarray(bspline.GetTransformDomainPhysicalDimensions())
        direction = bspline.GetTransformDomainDirection()
        spacing = np.asarray(bspline.GetTransformDomainMeshSize(), float)
        # Sample at ~4 points per mesh cell, at most 2 mm apart.
        step = np.minimum(physical / np.maximum(spacing * 4, 1), 2.0)
        size = np.maximum(np.ceil(physical / step).astype(int) + 1, 2)
        reference = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
        reference.SetOrigin(tuple(origin))
        reference.SetSpacing(tuple(physical / (size - 1)))
        reference.SetDirection(direction)
        return reference
    raise InputError(f"a {name} has no own grid: pass a reference image")


def _invert_field(field: sitk.Image) -> sitk.Image:
    inverter = sitk.InvertDisplacementFieldImageFilter()
    inverter.SetMaximumNumberOfIterations(50)
    inverter.SetMeanErrorToleranceThreshold(1e-4)
    inverter.SetMaxErrorToleranceThreshold(0.01)
    inverter.SetEnforceBoundaryCondition(False)
    return inverter.Execute(field)


def rigid_transform(angle_deg: float, axis, translation_mm, center=(0.0, 0.0, 0.0)) -> Transform:
    """Rigid transform rotating by ``angle_deg`` about ``axis`` through ``center`` then translating (LPS mm)."""
    versor = sitk.VersorRigid3DTransform()
    versor.SetCenter(tuple(float(c) for c in center))
    axis = np.asarray(axis, float)
    versor.SetRotation(tuple(axis / np.linalg.norm(axis)), float(np.deg2rad(angle_deg)))
    versor.SetTranslation(tuple(float(t) for t in translation_mm))
    return Transform(versor)


def resample(
    moving: sitk.Image,
    fixed: sitk.Image,
    transform: Transform,
    interpolator: int = sitk.sitkLinear,
    default_value: float | None = None,
) -> sitk.Image:
    """Resample ``moving`` onto ``fixed``'s grid through ``transform`` (fixed -> moving)."""
    if default_value is None:
        default_value = float(sitk.GetArrayViewFromImage(moving).min())
    return sitk.Resample(moving, fixed, transform.sitk, interpolator, default_value, moving.GetPixelID())


def matrix_2d_of(transform: sitk.Transform) -> np.ndarray:
    """The 3x3 homogeneous matrix of a linear 2D SimpleITK transform (probed at the origin and unit vectors, mm)."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0)))
    matrix = np.eye(3)
    matrix[:2, 0] = np.asarray(transform.TransformPoint((1.0, 0.0))) - origin
    matrix[:2, 1] = np.asarray(transform.TransformPoint((0.0, 1.0))) - origin
    matrix[:2, 2] = origin
    return matrix


def affine_2d(matrix: np.ndarray, center=(0.0, 0.0)) -> sitk.AffineTransform:
    """A 3x3 homogeneous matrix (mm) as a 2D SimpleITK affine transform about ``center`` (mm), the same mapping
    (the inverse of :func:`matrix_2d_of`)."""
    matrix, center = np.asarray(matrix, float), np.asarray(center, float)
    affine = sitk.AffineTransform(2)
    affine.SetCenter([float(v) for v in center])
    affine.SetMatrix([float(v) for v in matrix[:2, :2].ravel()])
    affine.SetTranslation([float(v) for v in matrix[:2, :2] @ center + matrix[:2, 2] - center])
    return affine
