"""QA pictures: checkerboard, difference and colour-fused overlays in three planes through a region of interest.

Only the three planes are resampled (not the volume), so pictures stay fast for any transform.
Grey levels are rank-based inside the foreground (:func:`.pictures.display_grey`), so CT and MR both
show. Planes: axial (anterior up, the patient's left on the right), coronal (superior up, left on
the right) and sagittal (superior up, anterior on the left). PNGs are written with SimpleITK.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.files import write_atomically
from ..core.images import corner_points, index_to_physical_matrix
from ..core.metric import shrink_to_spacing
from ..core.transforms import Transform
from .grey import display_grey

KINDS = ("checkerboard", "difference", "fusion")
MAX_PIXELS = 320  # longest side of one plane
GAP = 4  # pixels between planes
ROI_MARGIN_MM = 10.0


def _box_of(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray] | None:
    """LPS bounding box of a mask's set voxels (voxel centres), or None if empty."""
    index = np.argwhere(sitk.GetArrayFromImage(mask) != 0)[:, ::-1].astype(float)
    if len(index) == 0:
        return None
    matrix = index_to_physical_matrix(mask)
    corners = np.array(
        [
            [index[:, 0].min(), index[:, 1].min(), index[:, 2].min()],
            [index[:, 0].max(), index[:, 1].max(), index[:, 2].max()],
        ]
    )
    ends = np.array([[corners[i, 0], corners[j, 1], corners[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    physical = ends @ matrix[:3, :3].T + matrix[:3, 3]
    return physical.min(axis=0), physical.max(axis=0)


def region_of_interest(
    fixed: sitk.Image,
    fixed_labels: sitk.Image | None = None,
    fixed_mask: sitk.Image | None = None,
    margin_mm: float = ROI_MARGIN_MM,
) -> tuple[np.ndarray, np.ndarray]:
    """The (low, high) LPS corners (mm) of the box the pictures show.

    The box around the fixed labels (any layer of a multi-layer segmentation) if given, else around the
    fixed mask, else around the fixed image's foreground (Otsu at ~4 mm); widened by ``margin_mm`` and
    kept inside the fixed image.
    """
    box = None
    for mask in (fixed_labels, fixed_mask):
        if mask is not None:
            if mask.GetNumberOfComponentsPerPixel() > 1:  # non-zero in some layer
                mask = sitk.VectorMagnitude(mask)
            box = _box_of(sitk.Cast(mask != 0, sitk.sitkUInt8))
            if box is not None:
                break
    if box is None:
        small = sitk.Cast(shrink_to_spacing(fixed, 4.0), sitk.sitkFloat32)
        box = _box_of(sitk.OtsuThreshold(small, 0, 1, 128))
    corners = corner_points(fixed)
    image_low, image_high = corners.min(axis=0), corners.max(axis=0)
    if box is None:
        return image_low, image_high
    low = np.maximum(box[0] - margin_mm, image_low)
    high = np.minimum(box[1] + margin_mm, image_high)
    return low, high


def plane_grids(low: np.ndarray, high: np.ndarray, pixel_mm: float | None = None) -> list[sitk.Image]:
    """Axial, coronal and sagittal one-voxel-thick grids (LPS, axis-aligned) through the box centre.

    Square pixels of ``pixel_mm`` (default: the box's longest side over :data:`MAX_PIXELS` pixels).
    """
    low, high = np.asarray(low, float), np.asarray(high, float)
    extent = np.maximum(high - low, 1e-3)
    pixel = pixel_mm or float(extent.max()) / (MAX_PIXELS - 1)
    size = np.maximum(np.round(extent / pixel).astype(int) + 1, 2)
    center = (low + high) / 2
    grids = []
    for normal in (2, 1, 0):  # axial (z fixed), coronal (y fixed), sagittal (x fixed)
        grid_size = size.copy()
        grid_size[normal] = 1
        origin = center - (grid_size - 1) * pixel / 2
        grid = sitk.Image([int(s) for s in grid_size], sitk.sitkFloat32)
        grid.SetSpacing((pixel,) * 3)
        grid.SetOrigin(tuple(origin))
        grids.append(grid)
    return grids


def _planes(image: sitk.Image, transform: Transform, grids: list[sitk.Image], default: float) -> list[np.ndarray]:
    """The image seen through ``transform`` (fixed -> image space) on each plane, oriented for display."""
    planes = []
    for normal, grid in zip((2, 1, 0), grids):
        array = sitk.GetArrayFromImage(
            sitk.Resample(image, grid, transform.sitk, sitk.sitkLinear, default, sitk.sitkFloat32)
        )
        if normal == 2:
            planes.append(array[0])
        elif normal == 1:
            planes.append(array[:, 0, :][::-1])  # superior up
        else:
            planes.append(array[:, :, 0][::-1])
    return planes


def _montage(planes: list[np.ndarray], fill: float) -> np.ndarray:
    height = max(p.shape[0] for p in planes)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, GAP)), constant_values=fill) for p in planes]
    return np.concatenate(padded, axis=1)[:, :-GAP]


def _grey(image: sitk.Image, transform: Transform, grids: list[sitk.Image]) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 montage, boolean mask of pixels inside the image) of three planes."""
    low = float(sitk.GetArrayViewFromImage(image).min())
    float_image = sitk.Cast(image, sitk.sitkFloat32)
    values = _montage(_planes(float_image, transform, grids, low), low)
    inside_image = sitk.Cast(float_image * 0 + 1, sitk.sitkFloat32)
    inside = _montage(_planes(inside_image, transform, grids, 0.0), 0.0) > 0.5
    return display_grey(sitk.GetImageFromArray(values)), inside


def _checkerboard_mask(shape: tuple[int, int], squares: int = 8) -> np.ndarray:
    rows, columns = np.indices(shape)
    block = max(1, shape[0] // squares)
    return ((rows // block + columns // block) % 2).astype(bool)


def _checkerboard(fixed_grey: np.ndarray, moving_grey: np.ndarray) -> np.ndarray:
    return np.where(_checkerboard_mask(fixed_grey.shape), fixed_grey, moving_grey).astype(np.uint8)


def checkerboard_picture(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, pixel_mm: float | None = None
) -> np.ndarray:
    """Three-plane checkerboard (uint8) of ``fixed`` and ``moving`` seen through ``transform`` (fixed ->
    moving) over the whole fixed image; ``pixel_mm`` coarsens a thumbnail."""
    corners = corner_points(fixed)
    grids = plane_grids(corners.min(axis=0), corners.max(axis=0), pixel_mm)
    fixed_grey, _ = _grey(fixed, Transform.identity(), grids)
    moving_grey, _ = _grey(moving, transform, grids)
    return _checkerboard(fixed_grey, moving_grey)


def overlay_montages(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    low: np.ndarray,
    high: np.ndarray,
    pixel_mm: float | None = None,
) -> dict[str, np.ndarray]:
    """Three-plane pictures of ``moving`` seen through ``transform`` (fixed -> moving) over ``fixed``.

    ``checkerboard``: alternating squares of fixed and moving (grey); ``difference``: |fixed - moving|
    of the rank-normalised grey levels (grey, dark = agreement); ``fusion``: fixed in magenta, moving
    in green (RGB; grey where they agree). Returns uint8 arrays (H, W) or (H, W, 3).
    """
    grids = plane_grids(low, high, pixel_mm)
    fixed_grey, _ = _grey(fixed, Transform.identity(), grids)
    moving_grey, inside = _grey(moving, transform, grids)
    difference = np.abs(fixed_grey.astype(np.int16) - moving_grey.astype(np.int16)).astype(np.uint8)
    difference[~inside] = 0
    fusion = np.stack([fixed_grey, moving_grey, fixed_grey], axis=-1)
    return {
        "checkerboard": _checkerboard(fixed_grey, moving_grey),
        "difference": difference,
        "fusion": fusion.astype(np.uint8),
    }


def write_png(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint8 (H, W) grey or (H, W, 3) RGB array as a PNG (SimpleITK, atomically)."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise InputError("a picture must be a uint8 (H, W) or (H, W, 3) array")
    picture = sitk.GetImageFromArray(array, isVector=array.ndim == 3)
    write_atomically(path, lambda tmp: sitk.WriteImage(picture, tmp))


def write_qa_pictures(
    folder: str | os.PathLike,
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    before: Transform | None = None,
    fixed_labels: sitk.Image | None = None,
    fixed_mask: sitk.Image | None = None,
) -> dict[str, dict[str, Path]]:
    """Write ``{kind}_{before|after}.png`` for each of :data:`KINDS` into ``folder``.

    ``before`` (default identity) is the pose before registration. Returns ``{kind: {"before": path, "after": path}}``.
    """
    folder = Path(folder)
    low, high = region_of_interest(fixed, fixed_labels, fixed_mask)
    paths: dict[str, dict[str, Path]] = {kind: {} for kind in KINDS}
    for stage, pose in (("before", before or Transform.identity()), ("after", transform)):
        for kind, array in overlay_montages(fixed, moving, pose, low, high).items():
            path = folder / f"{kind}_{stage}.png"
            write_png(array, path)
            paths[kind][stage] = path
    return paths
