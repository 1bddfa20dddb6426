"""Before/after pictures (PNG) of a registration, drawn with SimpleITK alone."""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from ..core.files import write_atomically
from ..core.transforms import Transform, resample


def _display_grid(fixed: sitk.Image, pixel_mm: float | None = None) -> sitk.Image:
    """An axis-aligned isotropic grid over the fixed image, for square pixels on screen."""
    spacing = pixel_mm or max(min(fixed.GetSpacing()), 0.5)
    reference = sitk.Image(1, 1, 1, sitk.sitkFloat32)
    corners = []
    size = np.asarray(fixed.GetSize()) - 1
    for i in (0, size[0]):
        for j in (0, size[1]):
            for k in (0, size[2]):
                corners.append(fixed.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k))))
    corners = np.array(corners)
    low, high = corners.min(0), corners.max(0)
    shape = np.maximum(np.round((high - low) / spacing).astype(int) + 1, 1)
    # Slicer-like display: keep at most ~320 pixels along the longest axis.
    scale = max(1.0, shape.max() / 320.0)
    spacing *= scale
    shape = np.maximum(np.round((high - low) / spacing).astype(int) + 1, 1)
    reference = sitk.Image([int(s) for s in shape], sitk.sitkFloat32)
    reference.SetOrigin(tuple(low))
    reference.SetSpacing((spacing,) * 3)
    return reference


def display_grey(image: sitk.Image) -> np.ndarray:
    """Rank-based grey levels inside the foreground (black outside), so that CT soft tissue and
    MR contrast both show in one picture."""
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.Execute(sitk.Cast(image, sitk.sitkFloat32))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    foreground = array[array > otsu.GetThreshold()]
    if foreground.size < 10:
        foreground = array.ravel()
    levels = np.percentile(foreground, np.linspace(0, 100, 101))
    levels = np.maximum.accumulate(levels + np.arange(101) * 1e-6)
    grey = np.interp(array, levels, np.linspace(20, 255, 101))
    grey[array <= otsu.GetThreshold()] = 0
    return grey.astype(np.uint8)


def _three_planes(volume: np.ndarray) -> np.ndarray:
    """Axial, coronal and sagittal mid-planes side by side (array is z, y, x in LPS)."""
    z, y, x = (n // 2 for n in volume.shape)
    # Flip so that superior is up in coronal and sagittal views.
    planes = [volume[z], volume[:, y, :][::-1], volume[:, :, x][::-1]]
    # A thin slab (a few CT slices, a histology section) shows nothing edge-on: keep its face only.
    planes = [plane for plane in planes if min(plane.shape) >= 16] or planes
    height = max(p.shape[0] for p in planes)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 4))) for p in planes]
    return np.concatenate(padded, axis=1)


def checkerboard_montage(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, squares: int = 8, pixel_mm: float | None = None
) -> np.ndarray:
    """Three-plane checkerboard of fixed and resampled moving, as a uint8 array (``pixel_mm``: display pixel, mm)."""
    grid = _display_grid(fixed, pixel_mm)
    fixed_display = display_grey(resample(fixed, grid, Transform.identity()))
    moving_display = display_grey(resample(moving, grid, transform))
    zz, yy, xx = np.indices(fixed_display.shape)
    block = max(fixed_display.shape) // squares or 1
    board = ((zz // block + yy // block + xx // block) % 2).astype(bool)
    return _three_planes(np.where(board, fixed_display, moving_display))


def save_before_after(
    path: str | os.PathLike,
    fixed: sitk.Image,
    moving: sitk.Image,
    before: Transform,
    after: Transform,
    pixel_mm: float | None = None,
) -> None:
    """Write a PNG: checkerboard before registration (top) and after (bottom); ``pixel_mm`` coarsens a thumbnail."""
    save_checkerboard_rows(path, fixed, moving, [before, after], pixel_mm)


def save_checkerboard_rows(
    path: str | os.PathLike,
    fixed: sitk.Image,
    moving: sitk.Image,
    transforms: list[Transform],
    pixel_mm: float | None = None,
) -> None:
    """Write a PNG with one three-plane checkerboard row per fixed -> moving transform, top to bottom."""
    rows = [checkerboard_montage(fixed, moving, transform, pixel_mm=pixel_mm) for transform in transforms]
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 6), (0, width - row.shape[1]))) for row in rows]
    picture = sitk.GetImageFromArray(np.concatenate(rows, axis=0))
    write_atomically(path, lambda tmp: sitk.WriteImage(picture, tmp))
