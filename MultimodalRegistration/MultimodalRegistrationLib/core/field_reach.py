"""Where a nonlinear transform's grid ends inside the fixed image: ITK moves no point outside a displacement
field's grid or a B-spline's domain, so a field saved on a smaller grid (a cropped region's registration, a grid
transform exported on a small reference) leaves the rest of the image in place, with a step at the grid's edge
(a helper's sweep: accepted as an initial transform without a word, QA later called the step a fold)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .images import index_to_physical_matrix
from .transforms import Transform

STEP_MM = 1.0  # a step at the grid's edge below this is not worth a word
SAMPLES_PER_AXIS = 24


def voxel_centres(image: sitk.Image, per_axis: int = SAMPLES_PER_AXIS) -> np.ndarray:
    """(N, 3) LPS points (mm) of up to ``per_axis`` voxel centres along each axis of ``image``, edges included."""
    axes = [np.unique(np.linspace(0, size - 1, min(size, per_axis)).round()) for size in image.GetSize()]
    index = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    to_lps = index_to_physical_matrix(image)
    return index @ to_lps[:3, :3].T + to_lps[:3, 3]


def _inside(grid: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Which LPS points lie within ``grid``'s voxels (half a voxel beyond the outer centres, as ITK reads it)."""
    to_index = np.linalg.inv(index_to_physical_matrix(grid))
    index = points @ to_index[:3, :3].T + to_index[:3, 3]
    return np.all((index >= -0.5) & (index <= np.asarray(grid.GetSize()) - 0.5), axis=1)


def _largest_at_edge(field: sitk.Image) -> float:
    """The largest displacement (mm) on the six faces of a displacement field's grid."""
    vectors = sitk.GetArrayViewFromImage(field)  # z, y, x, 3
    faces = [vectors[0], vectors[-1], vectors[:, 0], vectors[:, -1], vectors[:, :, 0], vectors[:, :, -1]]
    return max(float(np.linalg.norm(face, axis=-1).max()) for face in faces)


def field_edge_warnings(transform: Transform | None, fixed: sitk.Image, role: str = "initial transform") -> list[str]:
    """A warning when ``transform`` (fixed -> moving, LPS) holds a displacement field or B-spline whose grid leaves
    part of ``fixed`` unmoved while moving points at its edge by more than ``STEP_MM``; else no warning."""
    if transform is None or transform.is_linear:
        return []
    points = voxel_centres(fixed)
    for part in reversed(transform.components()):  # the last is applied first
        if not part.is_linear:
            field = part.displacement_field()
            outside, step = 1.0 - float(_inside(field, points).mean()), _largest_at_edge(field)
            if outside >= 0.01 and step > STEP_MM:
                return [
                    f"the {role}'s {part.kind} grid covers {1 - outside:.0%} of the fixed image: outside it the field "
                    f"moves no point, so the mapping steps by up to {step:.1f} mm at the grid's edge; resample it on "
                    "the fixed image's grid (Slicer: Transforms module, Convert, the fixed volume as reference) or crop "
                    "the fixed image to its grid"
                ]
        points = part.transform_points(points)
    return []
