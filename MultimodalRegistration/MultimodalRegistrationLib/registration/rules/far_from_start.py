"""A result far from the initial transform a user gave: a start that close needs refining, not a new place.

A user's initial transform (a landmark prealignment, a manual alignment) claims the images are nearly aligned;
an unguided engine that then moves the anatomy tens of mm has usually followed intensities that do not
correspond. Measured (seventeenth session's audit, a TRUS-like pair prealigned by its 5 landmarks, target error
3.3 mm): ANTs rigid moved it 30 mm and turned it 18 degrees, to 33 mm off, while its mutual information rose
0.024 -> 0.162 and passed the weak-result check then (2.2 times its decoys over the whole box; inside the
fan, as the check reads it since the thirty-fifth session, it fails). A far result the images confirm is kept with
this warning; one they do not confirm either is not kept (:func:`..outcome.start_if_unconfirmed`).
Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.metric import shrink_to_spacing
from ...core.transforms import Transform
from ..pose.centres import foreground_mask

# A result whose fixed foreground points land further than this (median, mm) from where the start put them.
FAR_MOVE_MM = 20.0
# The same from the headers' pose of a small view inside a larger scan (rules/view_mask.py), which is a navigation
# system's or a scanner's, usually within 10 mm: a phantom fan 4.8 mm off ended 19.6 mm off with no other doubt.
FAR_FROM_HEADERS_MM = 10.0
GRID_MM = 4.0  # the foreground is sampled at about this spacing
MAX_POINTS = 4000
FAR_FROM_START = "the result lies"  # how the warning begins (a batch's triage looks for it)


def foreground_points(fixed: sitk.Image, fixed_mask: sitk.Image | None = None) -> np.ndarray:
    """Points (LPS mm, N x 3) of the fixed mask, else of the fixed image's Otsu foreground, about GRID_MM apart."""
    grid = shrink_to_spacing(fixed, GRID_MM)
    if fixed_mask is None:
        region = foreground_mask(grid)
    else:
        region = sitk.Resample(fixed_mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor)
    indices = np.argwhere(sitk.GetArrayViewFromImage(region) > 0)[:, ::-1]
    if len(indices) == 0:
        return np.empty((0, 3))
    indices = indices[np.linspace(0, len(indices) - 1, min(len(indices), MAX_POINTS)).astype(int)]
    return np.array([region.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in indices])


def moves_from_start_mm(fixed: sitk.Image, start: Transform, result: Transform,
                        fixed_mask: sitk.Image | None = None) -> np.ndarray:  # fmt: skip
    """How far (mm) ``result`` moves each fixed foreground point from where ``start`` put it; empty without
    foreground."""
    points = foreground_points(fixed, fixed_mask)
    if len(points) == 0:
        return np.empty(0)
    return np.linalg.norm(result.transform_points(points) - start.transform_points(points), axis=1)


def moved_from_start_mm(fixed: sitk.Image, start: Transform, result: Transform,
                        fixed_mask: sitk.Image | None = None) -> float:  # fmt: skip
    """The median of :func:`moves_from_start_mm`; 0 without foreground."""
    moves = moves_from_start_mm(fixed, start, result, fixed_mask)
    return float(np.median(moves)) if len(moves) else 0.0


# A linear result that moves no fixed foreground point further than this (mm) from where its start put it only
# confirms the start: kept without a warning when it scores a little less (a helper's sweep: "kept the start; try
# another start, a mask or landmarks" on ten CT-MR results 0.11-0.14 mm off the truth).
CONFIRMS_MM = 0.5


def confirms_start(fixed: sitk.Image, start: Transform, result: Transform,
                   fixed_mask: sitk.Image | None = None) -> bool:  # fmt: skip
    """Whether a linear ``result`` moves every fixed foreground point less than CONFIRMS_MM from ``start``'s place."""
    if not (start.is_linear and result.is_linear):
        return False
    moves = moves_from_start_mm(fixed, start, result, fixed_mask)
    return bool(len(moves)) and float(moves.max()) < CONFIRMS_MM


def far_from_start_warning(fixed: sitk.Image, start: Transform, result: Transform,
                           fixed_mask: sitk.Image | None = None) -> str | None:  # fmt: skip
    """A warning when ``result`` moves the fixed foreground's points a median of more than FAR_MOVE_MM from
    where the user's ``start`` (the initial transform) put them, else None."""
    return far_warning(moved_from_start_mm(fixed, start, result, fixed_mask))


def far_warning(moved: float, start: str = "the initial transform", limit_mm: float = FAR_MOVE_MM) -> str | None:
    """The warning for a result that moved the anatomy ``moved`` mm (:func:`moved_from_start_mm`) from its
    ``start`` (in words), when that is more than ``limit_mm``; else None."""
    if moved <= limit_mm:
        return None
    return (
        f"{FAR_FROM_START} {moved:.0f} mm (median over the fixed image's anatomy) from {start} it "
        "started from: from a start that close, a registration usually refines by a few mm, so the intensities may "
        "have pulled it to a wrong place. Check it (QA with landmarks it was not given); if the start was right, "
        "guide the registration with segmentations or landmarks, or mask the anatomy both images show"
    )
