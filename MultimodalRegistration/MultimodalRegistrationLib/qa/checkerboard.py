"""Before/after checkerboard PNGs of a registration: rows of :func:`.pictures.checkerboard_picture`."""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from ..core.files import write_atomically
from ..core.transforms import Transform
from .pictures import checkerboard_picture


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
    rows = [checkerboard_picture(fixed, moving, transform, pixel_mm=pixel_mm) for transform in transforms]
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 6), (0, width - row.shape[1]))) for row in rows]
    picture = sitk.GetImageFromArray(np.concatenate(rows, axis=0))
    write_atomically(path, lambda tmp: sitk.WriteImage(picture, tmp))
