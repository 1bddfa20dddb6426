"""The 2D any-pose search: where a 2D registration starts, found over every rotation (and scale).

1. Each image's foreground: pixels far from the border's median (Otsu on that distance, holes filled),
   bright tissue on dark (MR) or dark tissue on a bright slide (histology) alike; or the user's mask.
2. The foreground centroids are met; for a preset that scales, the scale is seeded by the square root of
   the foreground areas' ratio and by the ratio of their longest extents (a partial section keeps its length,
   not its area), and searched from ``SCALE_STEP**-SCALE_STEPS`` times the lower seed to ``SCALE_STEP**SCALE_STEPS``
   times the higher. Where the moving tissue, at a pose's scale and turn, is shorter than the fixed one along
   one of its principal axes by more than ``SLIDE_BEYOND`` of the fixed length, the pose is also slid along that
   axis by up to half the difference (``SLIDE_STEPS`` steps each way): one hemisphere, or a section with a large
   fold, against the whole slice has its centroid a quarter of the slice off (a helper's half sections ended
   25 mm off, silently, from the centroids).
3. Every ``START_STEP_DEG`` over the full turn, at each scale, is scored by Mattes mutual information
   (32 bins, every pixel) on both images shrunk to about ``SEARCH_PIXELS`` across, the slid poses all at once by a
   histogram mutual information (:mod:`.two_d_scores`); each scale's best pose, and the ``SLID_RESCORED`` best
   (scale, slide) pairs, each nudged by ``NUDGE_SHARE`` of the fixed tissue's size along both axes, are scored
   again on the images (shrunk to about ``RESCORE_PIXELS`` when twice that or larger), and the best of those wins.
   At 64 pixels a true turn between two lattice angles let the seed's scale outscore the right one
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

from ..core.extents import extents_along, principal_extents
from ..core.rotations import rotation_2d_deg
from ..core.transforms import affine_2d
from .two_d_scores import histogram_information
from .two_d_stretch import STEP_DEG as STRETCH_STEP_DEG
from .two_d_stretch import stretched_pose

START_STEP_DEG = 10.0
SCALE_STEP = 2 ** (1 / 8)
SCALE_STEPS = 3
SEARCH_PIXELS = 64
RESCORE_PIXELS = 256  # each scale's best pose is scored again at about this size: a 3000-pixel slide took 1.7 s a score
UNSCALED_BEYOND = 0.10  # a start scaling by more than 10% (either way) is also tried at scale 1
SLIDE_BEYOND, SLIDE_STEPS = 0.15, 4
SLID_RESCORED = 10  # the slid poses' best (scale, slide) pairs scored again with the scales' bests
NUDGE_SHARE = 0.04  # ... each nudged by this share of the fixed tissue's size (the square root of its area)


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
    stretched: "Start2D | None" = None  # the best moment-matched affine pose (:mod:`.two_d_stretch`), when asked
    area_scale: float = 1.0  # sqrt of the moving foreground's area over the fixed one's (whatever the preset)


FULL_MASK_SHARE = 0.95  # a mask over this share of its image outlines nothing: the tissue's own outline is used


def foreground(image: sitk.Image, mask: sitk.Image | None = None) -> np.ndarray:
    """Boolean foreground of a one-channel 2D image (see the module notes), or ``mask`` > 0 unless it covers
    FULL_MASK_SHARE of the image (a whole-image moving mask had read as the tissue's outline: a right rigid result,
    0.04 mm off, was warned for a pixel size 1.35 times off; a helper's sweep)."""
    if mask is not None:
        inside = sitk.GetArrayFromImage(mask) > 0
        if inside.mean() < FULL_MASK_SHARE:
            return inside
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    distance = sitk.GetImageFromArray(np.abs(array - np.median(border)).astype(np.float32))
    smooth = sitk.SmoothingRecursiveGaussian(distance, 1.0)
    solid = sitk.OtsuThreshold(smooth, 0, 1)
    return sitk.GetArrayFromImage(sitk.BinaryFillhole(solid)) > 0


@dataclass
class _Shape:
    """A foreground's centroid (mm), area (mm²) and covariance (mm²)."""

    center: np.ndarray
    area: float
    covariance: np.ndarray

    def principal(self) -> tuple[np.ndarray, np.ndarray]:
        """Principal axes (columns, longest first) and lengths along them (mm)."""
        return principal_extents(self.covariance)

    def length_along(self, directions: np.ndarray) -> np.ndarray:
        """Lengths (mm) along unit ``directions`` (columns)."""
        return extents_along(self.covariance, directions)


def tissue_shape(image: sitk.Image, inside: np.ndarray) -> _Shape:
    """The centroid, area and covariance of the pixels ``inside`` (all pixels when fewer than 3 are)."""
    rows, columns = np.nonzero(inside)
    if len(rows) < 3:
        rows, columns = np.indices(inside.shape).reshape(2, -1)
    to_physical = np.asarray(image.GetDirection()).reshape(2, 2) * np.asarray(image.GetSpacing())
    points = np.stack([columns, rows], axis=1).astype(float) @ to_physical.T + np.asarray(image.GetOrigin())
    area = len(rows) * float(np.prod(image.GetSpacing()))
    return _Shape(points.mean(axis=0), area, np.cov(points.T))


def _slides(angle_deg: float, scale: float, fixed: _Shape, moving: _Shape) -> list[np.ndarray]:
    """Where to place the moving centroid in fixed space (mm), centroids met first: along the moving tissue's
    principal axis (turned into fixed space) along which it falls shortest of the fixed tissue, when by more
    than SLIDE_BEYOND of the fixed length (see the module notes)."""
    a = np.radians(angle_deg)
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    axes, lengths = moving.principal()
    directions = turn.T @ axes  # columns, in fixed space
    fixed_lengths = fixed.length_along(directions)
    half = (fixed_lengths - lengths / scale) / 2
    best = int(np.argmax(half / np.maximum(fixed_lengths, 1e-9)))
    centres = [fixed.center]
    if half[best] > SLIDE_BEYOND * fixed_lengths[best]:
        for step in range(1, SLIDE_STEPS + 1):
            for sign in (1, -1):
                centres.append(fixed.center + sign * step / SLIDE_STEPS * half[best] * directions[:, best])
    return centres


def _shrunk(image: sitk.Image, pixels: int = SEARCH_PIXELS) -> sitk.Image:
    factor = max(1, round(max(image.GetSize()) / pixels))
    smooth = sitk.SmoothingRecursiveGaussian(image, 0.5 * factor * min(image.GetSpacing()))
    return sitk.Shrink(smooth, [factor, factor])


def pose_2d(angle_deg: float, scale: float, fixed_center: np.ndarray, moving_center: np.ndarray) -> np.ndarray:
    """3x3, fixed -> moving mm: x_moving = s R (x_fixed - c_f) + c_m."""
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


def information_or_none(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray) -> float | None:
    """:func:`mutual_information`, or None where too few pixels map inside the moving image."""
    try:
        return mutual_information(fixed, moving, matrix)
    except RuntimeError:
        return None


def search_start_2d(
    fixed: sitk.Image, moving: sitk.Image, scales: bool = False,
    fixed_mask: sitk.Image | None = None, moving_mask: sitk.Image | None = None, stretches: bool = False,
) -> Start2D:  # fmt: skip
    """The best start over every rotation (and, with ``scales``, around the size seeds); see the module notes.
    ``stretches`` (an affine preset): the best pose that matches the tissues' second moments too
    (:func:`.two_d_stretch.stretched_pose`), kept beside it when it stretches or turns apart from it."""
    fixed_shape = tissue_shape(fixed, foreground(fixed, fixed_mask))
    moving_shape = tissue_shape(moving, foreground(moving, moving_mask))
    area_scale = float(np.sqrt(moving_shape.area / fixed_shape.area)) if fixed_shape.area > 0 else 1.0
    longest = moving_shape.principal()[1][0] / max(fixed_shape.principal()[1][0], 1e-9)
    low, high = sorted((area_scale, longest)) if scales else (1.0, 1.0)
    steps = np.arange(-SCALE_STEPS, round(np.log(high / low) / np.log(SCALE_STEP)) + SCALE_STEPS + 1) if scales else [0]
    small_fixed, small_moving = _shrunk(fixed), _shrunk(moving)
    finer_fixed, finer_moving = (image if max(image.GetSize()) < 2 * RESCORE_PIXELS else _shrunk(image, RESCORE_PIXELS)
                                 for image in (fixed, moving))  # fmt: skip

    def pose(angle: float, scale: float, center: np.ndarray) -> np.ndarray:
        return pose_2d(angle, scale, center, moving_shape.center)

    nudge = NUDGE_SHARE * np.sqrt(fixed_shape.area)

    def finer(angle: float, scale: float, center: np.ndarray) -> float:
        """Mutual information on the finer images; -inf where too few pixels map inside the moving image."""
        value = information_or_none(finer_fixed, finer_moving, pose(angle, scale, center))
        return -np.inf if value is None else value

    def nudged(angle: float, scale: float, center: np.ndarray) -> tuple[float, np.ndarray]:
        """The best mutual information on the finer images, and its centre, of a slid pose moved by up to one
        ``nudge`` along each axis: a slide meets the centroids along one axis only, and a brain's centroid lies
        off a whole head's along the other too (7 mm in the test's half section)."""
        centres = [center + nudge * np.array([dx, dy]) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        values = [finer(angle, scale, c) for c in centres]
        return max(values), centres[int(np.argmax(values))]

    def best_at(scales: list[float]) -> Start2D:
        method = _metric()
        # Each scale's best (value, angle, scale, fixed centre) with the centroids met, by Mattes' metric at
        # SEARCH_PIXELS (lower is better), and each slid one's (-MI, ...), by the histogram over all slid poses.
        best: dict[float, tuple[float, float, float, np.ndarray]] = {}
        slid: list[tuple[float, float, int, np.ndarray]] = []
        poses = 0
        for scale in scales:
            for angle in np.arange(0.0, 360.0, START_STEP_DEG):
                centres = _slides(angle, scale, fixed_shape, moving_shape)
                slid += [(float(angle), scale, slide, center) for slide, center in enumerate(centres[1:], 1)]
                method.SetInitialTransform(affine_2d(pose(angle, scale, centres[0])), inPlace=False)
                try:
                    value = method.MetricEvaluate(small_fixed, small_moving)
                except RuntimeError:  # too few samples inside the moving image at this pose
                    continue
                poses += 1
                if scale not in best or value < best[scale][0]:
                    best[scale] = (value, float(angle), scale, centres[0])
        found = list(best.values())
        if slid:
            values = -histogram_information(small_fixed, small_moving,
                                            np.stack([pose(a, s, c) for a, s, _, c in slid]))  # fmt: skip
            poses += int(np.isfinite(values).sum())
            per_slide: dict[tuple[float, int], tuple[float, float, float, np.ndarray]] = {}
            for value, (angle, scale, slide, center) in zip(values, slid):
                if np.isfinite(value) and ((scale, slide) not in per_slide or value < per_slide[scale, slide][0]):
                    per_slide[scale, slide] = (value, angle, scale, center)
            found += sorted(per_slide.values(), key=lambda one: one[0])[:SLID_RESCORED]
        if not found:
            return Start2D(pose(0.0, scales[0], fixed_shape.center), 0.0, scales[0], 0.0, poses)
        if len(found) == 1:
            value, angle, scale, center = found[0]
        else:  # each one scored again on finer images (the module notes, step 3); a slid one, nudged too
            scored = [nudged(*one[1:]) if index >= len(best) else (finer(*one[1:]), one[3])
                      for index, one in enumerate(found)]  # fmt: skip
            winner = int(np.argmax([information for information, _ in scored]))
            value, angle, scale, _ = found[winner]
            center = scored[winner][1]
        if not any(center is one[3] for one in best.values()):  # slid: its value on Mattes' scale, as the others'
            method.SetInitialTransform(affine_2d(pose(angle, scale, center)), inPlace=False)
            try:
                value = method.MetricEvaluate(small_fixed, small_moving)
            except RuntimeError:  # too few of the 64-pixel images' samples inside: no information to report
                value = 0.0
        return Start2D(pose(angle, scale, center), angle, scale, -float(value), poses)

    start = best_at([low * SCALE_STEP**step for step in steps])
    if scales and abs(np.log(start.scale)) > np.log(1.0 + UNSCALED_BEYOND):
        start.unscaled = best_at([1.0])
    start.area_scale = area_scale
    if stretches:
        stretched = stretched_pose(fixed_shape, moving_shape, lambda matrix: information_or_none(
            small_fixed, small_moving, matrix), start.angle_deg, start.mutual_information)  # fmt: skip
        if stretched is not None:
            matrix, value = stretched
            scale = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
            start.stretched = Start2D(matrix, rotation_2d_deg(matrix), scale, value, int(360 / STRETCH_STEP_DEG))
    return start
