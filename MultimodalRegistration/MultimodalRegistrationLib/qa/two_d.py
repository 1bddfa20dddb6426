"""QA of a 2D registration: landmark errors, mask overlap (Dice) and a before/after checkerboard picture.

Frames: 2D images as :mod:`..core.images2d` reads them, pixel (column i, row j) at ``(i px, j px)`` mm. A 2D
point is that frame's (x, y) mm, which is LPS for an image Slicer loads at origin 0 with no rotation: landmarks
placed in Slicer (RAS) are read by :func:`..landmarks.points_io.read_points` and turned to LPS in one place
(:func:`..core.transforms.lps_ras_points`), z dropped. ``matrix`` is 3x3, fixed -> moving (mm).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..core.records import Record
from ..core.transforms import affine_2d, lps_ras_points
from ..landmarks.fit import pair_landmarks
from ..landmarks.on_slice import check_points_on_slice
from ..landmarks.points_io import read_point_lists, read_points
from .grey import display_grey
from .landmarks import ErrorStatistics, error_statistics
from .pictures import _checkerboard, write_png


@dataclass
class QA2D(Record):
    """Landmark errors (fixed mm and fixed pixels) before (at the identity) and after; Dice of the masks
    before and after; the checkerboard picture's path; how the landmarks paired, when not all of them did."""

    landmarks_before: ErrorStatistics | None = None
    landmarks_after: ErrorStatistics | None = None
    landmarks_after_pixels: float | None = None  # mean error after, in fixed pixels
    dice_before: float | None = None
    dice_after: float | None = None
    checkerboard: str | None = None
    warnings: list[str] = field(default_factory=list)


def read_points_2d(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Landmarks of a 2D image: (N, 2) x, y mm in the image's frame (see the module notes) and their labels."""
    ras, labels = read_points(path)
    return lps_ras_points(np.asarray(ras, float))[:, :2], list(labels)


def paired_points_2d(fixed_points: str | os.PathLike, moving_points: str | os.PathLike, images: tuple = ()) -> tuple:
    """The two files' landmarks (N, 2 mm each, see :func:`read_points_2d`) paired as every landmark pair is
    (:func:`..landmarks.fit.pair_landmarks`: by label, else by order; a point marked skipped left out with its
    partner), and the warnings; an :class:`InputError` naming the fix when they cannot be paired. ``images``: the
    fixed and moving :class:`..core.images2d.Image2D` the points must lie on
    (:func:`..landmarks.on_slice.check_points_on_slice`)."""
    fixed_file, moving_file, warnings = read_point_lists(fixed_points, moving_points)
    listed = []
    for read, image, role in zip((fixed_file, moving_file), images or (None, None), ("fixed", "moving")):
        lps = lps_ras_points(np.asarray(read.points_ras, float).reshape(-1, 3))
        if image is not None:
            warnings += check_points_on_slice(lps, read.labels, image, role, read.system)
        listed.append(lps[:, :2])
    fixed_xy, moving_xy, _, _, paired = pair_landmarks(*listed, fixed_file.labels, moving_file.labels)
    return fixed_xy, moving_xy, [*warnings, *paired]


def landmark_errors(fixed_points: np.ndarray, moving_points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Distances (fixed mm) between the fixed landmarks and the moving ones brought back to fixed space."""
    inverse = np.linalg.inv(matrix)
    back = moving_points @ inverse[:2, :2].T + inverse[:2, 2]
    return np.linalg.norm(back - fixed_points, axis=1)


def dice(fixed_mask: sitk.Image, moving_mask: sitk.Image, matrix: np.ndarray) -> float:
    """Dice (0..1) of the fixed mask and the moving mask resampled onto it through ``matrix``."""
    fixed = sitk.Cast(fixed_mask > 0, sitk.sitkUInt8)
    warped = sitk.Resample(
        sitk.Cast(moving_mask > 0, sitk.sitkUInt8), fixed, affine_2d(matrix), sitk.sitkNearestNeighbor
    )
    a, b = sitk.GetArrayViewFromImage(fixed) > 0, sitk.GetArrayViewFromImage(warped) > 0
    total = int(a.sum() + b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else 0.0


def tissue_grey(image: sitk.Image) -> np.ndarray:
    """uint8 grey levels of how far each pixel is from the background (the border's median): tissue shows bright
    both on a dark MR background and on a bright slide, so the two modalities' outlines meet in a checkerboard."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    distance = sitk.GetImageFromArray(np.abs(array - np.median(border)))
    distance.CopyInformation(image)
    return display_grey(distance)


def checkerboard_rows(fixed: sitk.Image, moving: sitk.Image, matrices: list[np.ndarray]) -> np.ndarray:
    """uint8 picture: one checkerboard of fixed and moving (resampled through each matrix) per row, top to bottom.
    The moving image is shown by :func:`tissue_grey` of its own pixels, then resampled (outside it: black)."""
    fixed_grey = tissue_grey(fixed)
    moving_grey = sitk.GetImageFromArray(tissue_grey(moving).astype(np.float32))
    moving_grey.CopyInformation(moving)
    rows = []
    for matrix in matrices:
        warped = sitk.Resample(moving_grey, fixed, affine_2d(matrix), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        warped_grey = sitk.GetArrayFromImage(warped).clip(0, 255).astype(np.uint8)
        rows.append(np.pad(_checkerboard(fixed_grey, warped_grey), ((0, 6), (0, 0))))
    return np.concatenate(rows, axis=0)


def assess_2d(
    fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray,
    landmarks: tuple | None = None,
    fixed_mask: sitk.Image | None = None, moving_mask: sitk.Image | None = None, checkerboard: str | None = None,
    before: np.ndarray | None = None,
) -> QA2D:  # fmt: skip
    """The 2D QA of ``matrix`` (3x3, fixed -> moving pixel frames, mm; see :class:`QA2D`) against ``before``: the
    images as given (default the identity; files placed by their own origins: that pose in the pixel frames).
    ``landmarks``: :func:`paired_points_2d` of the two landmark files, in the pixel frames."""
    qa = QA2D()
    before = np.eye(3) if before is None else np.asarray(before, float)
    if landmarks is not None:
        fixed_xy, paired_moving, qa.warnings = landmarks
        qa.landmarks_before = error_statistics(landmark_errors(fixed_xy, paired_moving, before))
        errors = landmark_errors(fixed_xy, paired_moving, matrix)
        qa.landmarks_after = error_statistics(errors)
        qa.landmarks_after_pixels = round(float(errors.mean()) / float(fixed.GetSpacing()[0]), 4)
    if fixed_mask is not None and moving_mask is not None:
        qa.dice_before = round(dice(fixed_mask, moving_mask, before), 6)
        qa.dice_after = round(dice(fixed_mask, moving_mask, matrix), 6)
    if checkerboard:
        write_png(checkerboard_rows(fixed, moving, [before, matrix]), checkerboard)
        qa.checkerboard = str(checkerboard)
    return qa
