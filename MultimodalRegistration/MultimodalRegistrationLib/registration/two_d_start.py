"""The 2D any-pose search: where a 2D registration starts, found over every rotation (and scale).

1. Each image's foreground: pixels far from the border's median (Otsu on that distance, holes filled),
   bright tissue on dark (MR) or dark tissue on a bright slide (histology) alike; or the user's mask.
2. The foreground centroids are met; for a preset that scales, the scale is seeded by the square root of
   the foreground areas' ratio and searched over ``seed * SCALE_STEP**k``, ``|k| <= SCALE_STEPS``.
3. Every ``START_STEP_DEG`` over the full turn, at each scale, is scored by Mattes mutual information
   (32 bins, every pixel) on both images shrunk to about ``SEARCH_PIXELS`` across; each scale's best pose is
   scored again on the images (shrunk to about ``RESCORE_PIXELS`` when twice that or larger), and the best of
   those wins. At 64 pixels a true turn between two lattice angles let the seed's scale outscore the right one
   (a brain-only slide shrunk 0.55-0.7 against a whole-head slice, turned 45 or -175 degrees: 5-6 mm off, 7 of
   42 cases; a helper's sweep); rescored, 0 of 42 (two_d_results.md).
   Masks give the centroids and the scale seed only: mutual information inside a fixed head mask, with
   the air around it left out, preferred a 1.23 scale to the true 0.95 on the test pair.
4. When the winner changes the size by more than ``UNSCALED_BEYOND`` (beyond what the engine refines from
   either), the best pose at scale 1 is kept beside it (``unscaled``), for the registration to run from too:
   the foreground areas' ratio assumes the two images show the same tissue, and a slide of the brain alone
   against a slice of the whole head seeded 0.83 where the truth was 1; at 64 pixels the search kept that
   scale, and so did the engines (8.6-9.5 mm off, where scale 1 ended 0.014 mm off with a higher mutual
   information). Within it (the test pair's 0.93), no second run: it doubles the registration's time.

Mirrored sections (a slide mounted upside down) are not searched; :mod:`.two_d_mirror` warns about one.
Deterministic: no random sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.transforms import affine_2d

START_STEP_DEG = 10.0
SCALE_STEP = 2 ** (1 / 8)
SCALE_STEPS = 3
SEARCH_PIXELS = 64
RESCORE_PIXELS = 256  # each scale's best pose is scored again at about this size: a 3000-pixel slide took 1.7 s a score
UNSCALED_BEYOND = 0.10  # a start scaling by more than 10% (either way) is also tried at scale 1


@dataclass
class Start2D:
    """The start: ``matrix`` (3x3, fixed -> moving mm), its rotation (degrees) and scale, its MI and
    the MI of the plain centroid alignment, and how many poses were scored."""

    matrix: np.ndarray
    angle_deg: float
    scale: float
    mutual_information: float
    poses: int
    unscaled: "Start2D | None" = None  # the best pose at scale 1, when the winner changes the size
    area_scale: float = 1.0  # sqrt of the moving foreground's area over the fixed one's (whatever the preset)


def foreground(image: sitk.Image, mask: sitk.Image | None = None) -> np.ndarray:
    """Boolean foreground of a one-channel 2D image (see the module notes), or ``mask`` > 0."""
    if mask is not None:
        return sitk.GetArrayFromImage(mask) > 0
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    distance = sitk.GetImageFromArray(np.abs(array - np.median(border)).astype(np.float32))
    smooth = sitk.SmoothingRecursiveGaussian(distance, 1.0)
    solid = sitk.OtsuThreshold(smooth, 0, 1)
    return sitk.GetArrayFromImage(sitk.BinaryFillhole(solid)) > 0


def _centroid_and_area(image: sitk.Image, inside: np.ndarray) -> tuple[np.ndarray, float]:
    rows, columns = np.nonzero(inside)
    if len(rows) == 0:
        rows, columns = np.indices(inside.shape).reshape(2, -1)
    index = [float(columns.mean()), float(rows.mean())]
    area = len(rows) * float(np.prod(image.GetSpacing()))
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(index)), area


def _shrunk(image: sitk.Image, pixels: int = SEARCH_PIXELS) -> sitk.Image:
    factor = max(1, round(max(image.GetSize()) / pixels))
    smooth = sitk.SmoothingRecursiveGaussian(image, 0.5 * factor * min(image.GetSpacing()))
    return sitk.Shrink(smooth, [factor, factor])


def _pose(angle_deg: float, scale: float, fixed_center: np.ndarray, moving_center: np.ndarray) -> np.ndarray:
    """x_moving = s R (x_fixed - c_f) + c_m."""
    a = np.radians(angle_deg)
    linear = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = moving_center - linear @ fixed_center
    return matrix


def _metric(bins: int = 32) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(bins)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def mutual_information(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray) -> float:
    """Mattes mutual information (32 bins, every fixed pixel) of the pair through ``matrix`` (fixed -> moving mm)."""
    method = _metric()
    method.SetInitialTransform(affine_2d(matrix), inPlace=False)
    return -float(method.MetricEvaluate(fixed, moving))


def search_start_2d(
    fixed: sitk.Image, moving: sitk.Image, scales: bool = False,
    fixed_mask: sitk.Image | None = None, moving_mask: sitk.Image | None = None,
) -> Start2D:  # fmt: skip
    """The best start over every rotation (and, with ``scales``, around the area-ratio scale); see the module notes."""
    fixed_center, fixed_area = _centroid_and_area(fixed, foreground(fixed, fixed_mask))
    moving_center, moving_area = _centroid_and_area(moving, foreground(moving, moving_mask))
    area_scale = float(np.sqrt(moving_area / fixed_area)) if fixed_area > 0 else 1.0
    seed = area_scale if scales else 1.0
    steps = range(-SCALE_STEPS, SCALE_STEPS + 1) if scales else (0,)
    small_fixed, small_moving = _shrunk(fixed), _shrunk(moving)
    finer_fixed, finer_moving = (image if max(image.GetSize()) < 2 * RESCORE_PIXELS else _shrunk(image, RESCORE_PIXELS)
                                 for image in (fixed, moving))  # fmt: skip

    def best_at(scales: list[float]) -> Start2D:
        method = _metric()
        per_scale: list[tuple[float, float, float]] = []  # each scale's best (value, angle, scale) at SEARCH_PIXELS
        poses = 0
        for scale in scales:
            best: tuple[float, float, float] | None = None
            for angle in np.arange(0.0, 360.0, START_STEP_DEG):
                method.SetInitialTransform(affine_2d(_pose(angle, scale, fixed_center, moving_center)), inPlace=False)
                try:
                    value = method.MetricEvaluate(small_fixed, small_moving)
                except RuntimeError:  # too few samples inside the moving image at this pose
                    continue
                poses += 1
                if best is None or value < best[0]:
                    best = (value, float(angle), scale)
            if best is not None:
                per_scale.append(best)
        if not per_scale:
            return Start2D(_pose(0.0, scales[0], fixed_center, moving_center), 0.0, scales[0], 0.0, poses)
        if len(per_scale) == 1:
            value, angle, scale = per_scale[0]
        else:  # each scale's best pose scored again on finer images (the module notes, step 3)
            value, angle, scale = max(per_scale, key=lambda best: mutual_information(
                finer_fixed, finer_moving, _pose(best[1], best[2], fixed_center, moving_center)))  # fmt: skip
        return Start2D(_pose(angle, scale, fixed_center, moving_center), angle, scale, -float(value), poses)

    start = best_at([seed * SCALE_STEP**step for step in steps])
    if scales and abs(np.log(start.scale)) > np.log(1.0 + UNSCALED_BEYOND):
        start.unscaled = best_at([1.0])
    start.area_scale = area_scale
    return start
