"""Whether a transform folds space: its smallest Jacobian determinant as ITK and Slicer apply it, and where.

The determinant of the fixed -> moving mapping is the local volume ratio; a value <= 0 means the transform folds
(two fixed points map to one moving point, or space turns inside out). Two measures, one region (the fixed
image's box, or its mask's non-zero voxels): central differences on an axis-aligned grid (LPS mm), and every
displacement field inside the transform per cell on its own grid (:mod:`.cell_jacobian`), which catches a fold
between the sampling grid's nodes. The registration's keep rule and QA both call :func:`folding`, so a result
kept is not one QA finds folding (same fixed image and spacing; the keep rule takes the whole box).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .cell_jacobian import cell_jacobian_minimum
from .errors import InputError
from .images import box_grid, corner_points, index_to_physical_matrix
from .transforms import Transform

SAMPLING_SPACING_MM = 2.0  # the sampling grid's spacing (mm): QA's default, and the keep rule's
MAX_GRID_NODES = 8_000_000  # a finer grid is coarsened to keep the displacement field under ~200 MB


@dataclass(frozen=True)
class FieldFolds:
    """One displacement field's smallest determinant over its cells (times the chain's linear determinants)."""

    minimum: float
    at_lps: np.ndarray  # the centre of that cell (LPS mm)
    folded_mm3: float  # the volume of its cells whose determinant reaches <= 0 (mm^3)


@dataclass(frozen=True)
class Folding:
    """The Jacobian determinant (no unit) sampled over a region, and each displacement field's cells there."""

    sampled: np.ndarray  # the determinants at the grid's nodes inside the region (one value: linear)
    sampled_at_lps: np.ndarray  # where the smallest sampled one is (LPS mm)
    spacing_mm: float | None  # the grid's spacing (None: linear, the determinant is the same everywhere)
    fields: tuple[FieldFolds, ...]  # the fields reaching the sampled minimum or 0, the first applied first
    region_mm3: float  # the region's volume (mm^3)

    @property
    def minimum(self) -> float:
        """The smallest determinant of all: <= 0 folds."""
        return min([float(self.sampled.min())] + [f.minimum for f in self.fields])

    @property
    def at_lps(self) -> np.ndarray:
        """Where :attr:`minimum` is (LPS mm)."""
        smallest = min(self.fields, key=lambda f: f.minimum, default=None)
        if smallest is not None and smallest.minimum < float(self.sampled.min()):
            return smallest.at_lps
        return self.sampled_at_lps


def sampling_grid(image: sitk.Image, spacing_mm: float = SAMPLING_SPACING_MM) -> sitk.Image:
    """An axis-aligned grid (identity direction, LPS) every ``spacing_mm`` mm over ``image``'s box."""
    return box_grid(image, spacing_mm, MAX_GRID_NODES, "Jacobian grid")


def sampled_determinant(transform: Transform, grid: sitk.Image) -> sitk.Image:
    """The Jacobian determinant of ``transform`` by central differences on ``grid`` (identity direction)."""
    if not np.allclose(np.asarray(grid.GetDirection()).reshape(3, 3), np.eye(3)):
        raise InputError("the Jacobian grid must be axis-aligned: build it with sampling_grid()")
    return sitk.DisplacementFieldJacobianDeterminant(transform.displacement_field(grid), True)


def folding(
    transform: Transform, fixed: sitk.Image, mask: sitk.Image | None = None, spacing_mm: float = SAMPLING_SPACING_MM
) -> Folding:
    """The Jacobian determinant of ``transform`` (fixed -> moving) over ``fixed``'s box, or ``mask``'s non-zero
    voxels: sampled every ``spacing_mm`` mm (the grid's outermost layer, one-sided, left out), and the cells of
    each displacement field in it that reach the sampled minimum or 0 (:func:`field_folds`, the others cannot
    lower the minimum nor fold). Folds of a B-spline thinner than ``spacing_mm`` can be missed."""
    if mask is None:
        region = sitk.Image(fixed.GetSize(), sitk.sitkUInt8) + 1
        region.CopyInformation(fixed)
    else:
        region = sitk.Cast(mask != 0, sitk.sitkUInt8)
    region_mm3 = float(np.count_nonzero(sitk.GetArrayViewFromImage(region))) * float(np.prod(region.GetSpacing()))
    if transform.is_linear:
        determinant = np.array([np.linalg.det(transform.matrix[:3, :3])])
        return Folding(determinant, corner_points(fixed).mean(axis=0), None, (), region_mm3)
    grid = sampling_grid(fixed, spacing_mm)
    determinant = sitk.GetArrayFromImage(sampled_determinant(transform, grid))
    in_region = sitk.GetArrayFromImage(sitk.Resample(region, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) != 0
    inside = in_region & _differences_inside(grid, fixed)
    if not inside.any():
        raise InputError("no Jacobian sample falls inside the fixed image (or its mask): lower the grid spacing")
    values = determinant[inside]
    z, y, x = (axis[np.argmin(values)] for axis in np.nonzero(inside))
    at = np.asarray(grid.TransformIndexToPhysicalPoint((int(x), int(y), int(z))))
    fields = field_folds(transform, region, max(float(values.min()), 0.0), (grid, in_region))
    return Folding(values, at, float(grid.GetSpacing()[0]), fields, region_mm3)


def _differences_inside(grid: sitk.Image, fixed: sitk.Image) -> np.ndarray:
    """(z, y, x) nodes of ``grid`` whose central differences stay within ``fixed``'s voxel centres: beyond them a
    displacement field on the fixed grid reads 0, and a grid that ends half a voxel past the image (a width not a
    multiple of the spacing) made a 5 mm translation field 'fold' (-0.25) there. The grid's outer layer is out too."""
    grid_to_fixed = np.linalg.inv(index_to_physical_matrix(fixed)) @ index_to_physical_matrix(grid)  # index -> index
    x, y, z = (np.arange(n, dtype=float) for n in grid.GetSize())
    x, y, z = x[None, None, :], y[None, :, None], z[:, None, None]
    tolerance = 1e-6
    held = np.ones(grid.GetSize()[::-1], bool)  # (z, y, x)
    for k, last in enumerate(np.asarray(fixed.GetSize()) - 1):  # one fixed index axis at a time: one array live
        row = grid_to_fixed[k]
        continuous = row[0] * x + row[1] * y + row[2] * z + row[3]
        held &= (continuous >= -tolerance) & (continuous <= last + tolerance)
    valid = np.zeros_like(held)
    valid[1:-1, 1:-1, 1:-1] = held[1:-1, 1:-1, 1:-1]
    for axis in range(3):  # both neighbours along each axis held too
        before = [slice(1, -1)] * 3
        after = [slice(1, -1)] * 3
        before[axis], after[axis] = slice(0, -2), slice(2, None)
        valid[1:-1, 1:-1, 1:-1] &= held[tuple(before)] & held[tuple(after)]
    return valid


Samples = tuple[sitk.Image, np.ndarray]  # an axis-aligned grid, and which of its (z, y, x) nodes lie in a region


def field_folds(
    transform: Transform, region: sitk.Image, below: float | None = None, samples: Samples | None = None
) -> tuple[FieldFolds, ...]:
    """Each displacement field of ``transform`` as ITK and Slicer interpolate it: the determinant at 27 points of
    each of its own grid's cells, times the chain's linear parts' determinants (a field's own determinant times
    theirs keeps the sign of the chain's). A field applied first counts the cells whose centre lies on a non-zero
    voxel of ``region``; a later one, in another space, the cells that the region's ``samples`` reach through the
    parts applied before it, or all its cells without them. The first applied comes first; a field with no cell
    counted is left out. With ``below`` (>= 0) only the cells that reach it count: the others, which a bound shows
    stay above it (:func:`.cell_jacobian_minimum`), neither fold nor hold the minimum below it."""
    parts = transform.components()
    linear = float(np.prod([np.linalg.det(part.matrix[:3, :3]) for part in parts if part.is_linear]))
    floor = below / linear if below is not None and linear > 0 else None  # a mirroring chain: every cell counts
    found = []
    for order, part in enumerate(reversed(parts)):  # the first applied first
        if part.kind != "displacement":
            continue
        field = sitk.DisplacementFieldTransform(part.sitk).GetDisplacementField()
        own = cell_jacobian_minimum(sitk.GetArrayViewFromImage(field), field.GetSpacing(), field.GetDirection(), floor)
        counted = own <= floor if floor is not None else np.ones(own.shape, bool)
        if order > 0 and samples is not None:
            # an inverted field's rim, which no fixed point reaches, had made a good result 'fold' (a nodes sweep)
            counted &= _cells_reached(field, own.shape, Transform.chain(parts[len(parts) - order :]), *samples,
                                      region.GetSpacing())
        index = np.argwhere(counted)  # (z, y, x), C order
        cells = linear * own[tuple(index.T)]
        matrix = index_to_physical_matrix(field)
        centres = (index[:, ::-1] + 0.5) @ matrix[:3, :3].T + matrix[:3, 3]  # LPS mm
        if order == 0:
            inside = _inside(region, centres)
            cells, centres = cells[inside], centres[inside]
        if cells.size:
            folded_mm3 = np.count_nonzero(cells <= 0) * float(np.prod(field.GetSpacing()))
            found.append(FieldFolds(float(cells.min()), centres[np.argmin(cells)], float(folded_mm3)))
    return tuple(found)


def _cells_reached(field: sitk.Image, cells: tuple[int, ...], before: Transform, grid: sitk.Image,
                   inside: np.ndarray, region_spacing: tuple) -> np.ndarray:
    """Which (z, y, x) cells of ``field``'s grid the ``inside`` nodes of ``grid`` (fixed space) reach through
    ``before``, widened by the cells a gap between two nodes can hold (nodes coarser than the cells skip some)."""
    points = np.argwhere(inside)[:, ::-1] * np.asarray(grid.GetSpacing()) + np.asarray(grid.GetOrigin())  # LPS mm
    if before.is_linear:
        points = before.transform_points(points)
    else:
        points = points + sitk.GetArrayViewFromImage(before.displacement_field(grid))[inside]
    to_index = np.linalg.inv(index_to_physical_matrix(field))
    corner = np.floor(points @ to_index[:3, :3].T + to_index[:3, 3]).astype(int)[:, ::-1]  # (z, y, x)
    inside = np.all((corner >= 0) & (corner < np.asarray(cells)), axis=1)
    reached = np.zeros(cells, bool)
    reached[tuple(corner[inside].T)] = True
    # the gap between two nodes, twice for a stretch, and the box's rim beyond its outermost nodes (a review: folds at
    # a box's edges and corners had been missed)
    margin_mm = 2 * max(grid.GetSpacing()) + max(region_spacing) / 2
    for _ in range(int(np.ceil(margin_mm / min(field.GetSpacing()))) + 1):
        for axis in range(3):  # one axis after the other: the 26 neighbours, a cube
            before, after = [slice(None)] * 3, [slice(None)] * 3
            before[axis], after[axis] = slice(None, -1), slice(1, None)
            grown = reached.copy()
            grown[tuple(after)] |= reached[tuple(before)]
            grown[tuple(before)] |= reached[tuple(after)]
            reached = grown
    return reached


def _inside(region: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Which LPS ``points`` (..., 3) fall on a non-zero voxel of ``region`` (nearest voxel)."""
    to_index = np.linalg.inv(index_to_physical_matrix(region))
    index = np.rint(points @ to_index[:3, :3].T + to_index[:3, 3]).astype(int)
    size = np.asarray(region.GetSize())
    valid = np.all((index >= 0) & (index < size), axis=-1)
    inside = np.zeros(points.shape[:-1], bool)
    array = sitk.GetArrayViewFromImage(region)
    hit = index[valid]
    inside[valid] = array[hit[:, 2], hit[:, 1], hit[:, 0]] != 0
    return inside
