"""Cropping fixed and moving images to the physical region both cover, or to a user's box.

A crop is a sub-grid of the original (same voxels, same physical positions), so a transform
found on cropped images applies unchanged to the full-resolution originals. Regions are convex
sets of LPS points (mm) in fixed space; for linear transforms they are exact polytopes (the
intersection of the image boxes' half-spaces).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.file_checks import MIN_VOXELS_PER_AXIS
from ..core.images import index_to_physical_matrix
from ..core.transforms import Transform
from .options import DEFAULT_MARGIN_MM


@dataclass
class Crop:
    """One image's crop: the new image and where it sits in the original (voxel index and size)."""

    image: sitk.Image
    index: tuple[int, int, int]
    size: tuple[int, int, int]
    fraction: float  # share of the original's voxels kept

    def describe(self) -> dict:
        return {"index": list(self.index), "size": list(self.size), "voxels_kept": round(self.fraction, 4)}


def box_halfspaces(image: sitk.Image, transform: Transform | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The image's voxel-edge box as half-spaces ``G @ x <= h`` over points x (LPS mm).

    With a linear ``transform`` (x -> image space), the box is expressed in the transform's source space.
    """
    to_index = np.linalg.inv(index_to_physical_matrix(image))
    if transform is not None:
        to_index = to_index @ transform.matrix
    rows, offsets = to_index[:3, :3], to_index[:3, 3]
    upper = np.asarray(image.GetSize(), float) - 0.5
    G = np.vstack([rows, -rows])
    h = np.concatenate([upper - offsets, 0.5 + offsets])
    return G, h


def oriented_box_halfspaces(corner_min, corner_max, axes=np.eye(3)) -> tuple[np.ndarray, np.ndarray]:
    """A box given by two opposite corners (LPS mm) along ``axes`` (rows: unit vectors) as half-spaces."""
    axes = np.asarray(axes, float)
    low = axes @ np.asarray(corner_min, float)
    high = axes @ np.asarray(corner_max, float)
    low, high = np.minimum(low, high), np.maximum(low, high)
    return np.vstack([axes, -axes]), np.concatenate([high, -low])


def polytope_vertices(G: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Vertices (N, 3) of the bounded convex set ``G @ x <= h``; empty when it is empty."""
    scale = max(1.0, float(np.abs(h).max()))
    vertices = []
    for triple in itertools.combinations(range(len(G)), 3):
        A = G[list(triple)]
        if abs(np.linalg.det(A)) < 1e-9:
            continue
        point = np.linalg.solve(A, h[list(triple)])
        if np.all(G @ point <= h + 1e-7 * scale):
            vertices.append(point)
    return np.array(vertices).reshape(-1, 3)


def _sampled_region(fixed: sitk.Image, inside_moving, G: np.ndarray, h: np.ndarray, per_axis: int = 24) -> np.ndarray:
    """Points of a grid over the fixed box that satisfy ``G, h`` and ``inside_moving`` (nonlinear case)."""
    size = np.asarray(fixed.GetSize(), float)
    axes = [np.linspace(-0.5, s - 0.5, per_axis) for s in size]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    matrix = index_to_physical_matrix(fixed)
    points = grid @ matrix[:3, :3].T + matrix[:3, 3]
    keep = np.all(points @ G.T <= h + 1e-6, axis=1) & inside_moving(points)
    # Each kept sample stands for the grid cell around it: add the cell's corners.
    step = (size / (per_axis - 1)) * np.asarray(fixed.GetSpacing())
    direction = np.asarray(fixed.GetDirection()).reshape(3, 3)
    offsets = np.array(list(itertools.product((-1, 1), repeat=3))) * step @ direction.T
    return (points[keep][:, None, :] + offsets[None]).reshape(-1, 3)


def common_region(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform | None = None,
    roi: tuple[np.ndarray, np.ndarray] | None = None,
    require_moving: bool = True,
) -> np.ndarray:
    """Points (N, 3, fixed-space LPS mm) whose bounding hull is the region to keep.

    The region is the fixed box, intersected with the moving box mapped into fixed space (when
    ``require_moving``) and with ``roi`` (half-spaces ``G, h`` in fixed space). ``transform`` maps
    fixed to moving points; identity when None (the images' own physical placement).
    Raises :class:`InputError` when the region is empty.
    """
    given = transform is not None
    transform = transform or Transform.identity()
    G, h = box_halfspaces(fixed)
    if roi is not None:
        G, h = np.vstack([G, roi[0]]), np.concatenate([h, roi[1]])
        if not len(polytope_vertices(G, h)):  # no placement of the moving image can help: say where the fixed is
            raise InputError(f"--roi lies outside the fixed image, which spans {ras_extent(fixed)}: check the "
                             "corners (R1,A1,S1,R2,A2,S2 in the fixed image's RAS mm, as Slicer shows them)")  # fmt: skip
    if not require_moving:
        points = polytope_vertices(G, h)
    elif transform.is_linear:
        Gm, hm = box_halfspaces(moving, transform)
        points = polytope_vertices(np.vstack([G, Gm]), np.concatenate([h, hm]))
    else:
        Gm, hm = box_halfspaces(moving)
        points = _sampled_region(
            fixed, lambda p: np.all(transform.transform_points(p) @ Gm.T <= hm + 1e-6, axis=1), G, h
        )
    if len(points) == 0:
        if roi is not None and require_moving and len(common_region(fixed, moving, transform)):
            raise InputError(
                "the region of interest lies outside the region both images cover (the images do overlap): "
                "move or enlarge it (--roi) to take in part of their overlap, or leave out --crop-common to crop "
                "to the region of interest alone"
            )
        if given and not (transform.is_linear and np.allclose(transform.matrix, np.eye(4))):
            raise InputError(
                "the initial transform given places the images apart (under it they do not overlap): check that it "
                "belongs to these images and maps fixed to moving points (not its inverse), or leave it out"
            )
        raise InputError(
            "the images do not overlap in physical space: give an initial transform (from mmreg prealign, or the "
            "result of a first mmreg register without cropping, whose pose search finds images far apart)"
        )
    return points


def ras_extent(image: sitk.Image) -> str:
    """Where an image's voxel-edge box lies, as Slicer shows coordinates: "R -40 to 40, A ..., S ... mm (RAS)"."""
    size = np.asarray(image.GetSize(), float)
    corners = np.array(list(itertools.product(*[(-0.5, n - 0.5) for n in size])))
    matrix = index_to_physical_matrix(image)
    ras = (corners @ matrix[:3, :3].T + matrix[:3, 3]) * [-1.0, -1.0, 1.0]  # LPS -> RAS
    spans = [f"{letter} {low + 0:.1f} to {high + 0:.1f}" for letter, low, high in zip("RAS", ras.min(0), ras.max(0))]
    return ", ".join(spans) + " mm (RAS)"


def crop_to_points(image: sitk.Image, points_lps: np.ndarray, margin_mm: float = 0.0) -> Crop:
    """Crop ``image`` to the voxels whose boxes hold ``points_lps``, plus ``margin_mm`` along each axis."""
    to_index = np.linalg.inv(index_to_physical_matrix(image))
    index = np.asarray(points_lps, float) @ to_index[:3, :3].T + to_index[:3, 3]
    margin = margin_mm / np.asarray(image.GetSpacing(), float)
    size = np.asarray(image.GetSize())
    # Voxel i covers [i - 0.5, i + 0.5]; the tolerance keeps a point on a shared face from adding a voxel.
    low = np.floor(index.min(axis=0) - margin + 0.5 + 1e-6).astype(int)
    high = np.ceil(index.max(axis=0) + margin - 0.5 - 1e-6).astype(int)
    low, high = np.maximum(low, 0), np.minimum(high, size - 1)
    if np.any(high < low):
        raise InputError("the region to crop to lies outside the image: check the transform or the region of interest")
    crop_size = high - low + 1
    cropped = sitk.RegionOfInterest(image, [int(s) for s in crop_size], [int(i) for i in low])
    fraction = float(np.prod(crop_size, dtype=float) / np.prod(size, dtype=float))
    return Crop(cropped, tuple(int(i) for i in low), tuple(int(s) for s in crop_size), fraction)


def crop_common(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform | None = None,
    margin_mm: float = DEFAULT_MARGIN_MM,
    roi: tuple[np.ndarray, np.ndarray] | None = None,
    require_moving: bool = True,
) -> tuple[Crop, Crop]:
    """Crop both images to their common physical region (and ``roi``), with ``margin_mm`` around it.

    ``transform`` maps fixed to moving points (LPS mm). The fixed crop bounds the region in fixed
    space, the moving crop bounds the same region mapped into moving space.
    """
    transform = transform or Transform.identity()
    region = common_region(fixed, moving, transform, roi, require_moving)
    fixed_crop = crop_to_points(fixed, region, margin_mm)
    try:
        moving_crop = crop_to_points(moving, transform.transform_points(region), margin_mm)
    except InputError:  # only with require_moving off: the region was cut to the moving box otherwise
        raise InputError(
            f"the region of interest lies outside the moving image, which spans {ras_extent(moving)} in its own "
            "space (where the initial transform, if one is given, takes the region): move or "
            "enlarge --roi to take in part of it, add --crop-common to crop to where both images lie, or check the "
            "initial transform, if one is given"
        ) from None
    return fixed_crop, moving_crop


def check_cropped_size(image: sitk.Image, role: str, common: bool, roi: bool) -> None:
    """Refuse a crop that leaves ``image`` under MIN_VOXELS_PER_AXIS voxels along an axis, naming the option to
    widen: a region 0.5 mm deep, or two images overlapping by 0.4 mm, had been written as one-slice volumes that
    prep and registration then refuse as inputs (a helper's prep sweep)."""
    size = np.asarray(image.GetSize(), int)
    if (size >= MIN_VOXELS_PER_AXIS).all():
        return
    axis = int(np.argmin(size))
    widen = " and ".join(option for option, given in (("--margin", common), ("--roi", roi)) if given)
    cause = "the region of interest" if roi and not common else "the two images' common region"
    raise InputError(
        f"the crop leaves the {role} image {size[axis]} voxel(s) along axis {axis} "
        f"({size[axis] * image.GetSpacing()[axis]:.3g} mm of {cause}); a registration needs {MIN_VOXELS_PER_AXIS} or "
        f"more along every axis: widen {widen}, or check that the images overlap where you expect"
    )
