"""Masks and the engine's samples: a fixed mask the sampler can draw from, and a start at which
those samples land inside the moving image and the moving mask. Both are checked before any
engine runs, from the preset's own sampler settings; transforms map fixed to moving points (LPS mm).

Why, measured on a 96³ phantom at 2 mm with the rigid presets (coarsest level 8 mm):

* elastix's random samplers draw NumberOfSpatialSamples points per iteration inside the fixed
  mask's bounding box on the coarsest pyramid level and give up after 10 tries per sample ("Could
  not find enough image samples"): the mask must fill a tenth of that box, which is the mask's
  box grown to whole coarse voxels. The mask itself is not downsampled, so a mask smaller than a
  few coarse voxels fails: 5 to 48 voxels always, spheres up to 180 voxels (1.4 cm³) sometimes,
  never from 220 voxels (1.8 cm³).
* ANTs samples sampling_percentage of the coarse voxels and keeps those inside the fixed mask;
  with none it stops ("VirtualSampledPointSet must have 1 or more points") yet returns its start
  as the result. Spheres up to 9.2 cm³ (1.8 expected samples at 8 mm) did so, from 11.4 cm³ none.
* elastix counts a sample valid only where the transform maps it inside the moving image's buffer
  and inside the moving mask, and stops ("Too many samples map outside moving image buffer") with
  fewer than RequiredRatioOfValidSamples (default 0.25) valid. Small organ masks on a large field
  of view meet that only if the start puts the two masks on top of each other.
* The same stop without masks: a 120 mm MR against a 64 x 60 x 60 mm ultrasound box put 24% of the
  fixed samples inside the box at its start and failed every run. Without a fixed mask, the engine
  then samples the fixed image only where the moving image lies at the start
  (:mod:`.sampling_region`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import SimpleITK as sitk

from ...core.errors import ImagesApartError, InputError
from ...core.images import index_to_physical_matrix
from ...core.transforms import Transform
from ...engines.presets import Preset
from ...engines.registry import DEFAULT_ENGINE, engine_spec
from ...engines.sampling import StageSampling, needed_valid_fraction, stage_sampling
from ..pose.centres import foreground_center

# Accepted chance that a whole run fails for want of samples; the sample rules below follow from it.
RISK = 0.01
# A start should have this multiple of the valid fraction the engine needs: the transform moves
# during the run, and the coarse levels' smaller moving buffer loses a rim.
START_MARGIN = 2.0
# Points (fixed-mask voxels) used to measure a start's valid fraction.
VALID_POINTS = 20000


def _needed_fill(stage: StageSampling) -> float:
    """The share of its box the mask must fill for a random box sampler (elastix's) to find its samples
    in every draw of the run but with chance RISK (binomial, normal approximation)."""
    z = NormalDist().inv_cdf(1.0 - RISK / max(stage.draws, 1))
    tries = stage.tries_per_sample * stage.samples
    base = 1.0 / stage.tries_per_sample
    return base + z * math.sqrt(base * (1.0 - base) / tries)


def _box_extent_mm(mask: sitk.Image) -> np.ndarray:
    """The mask's extent (mm) per image axis as elastix crops to it: the world-axis box around the
    set voxels (voxel edges included), seen back on the image's own axes and cut to the image (elastix's
    ImageSamplerBase::CropInputImageRegion; uncut, an oblique CT's own head mask read 310 mm on a 252 mm image)."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(mask)
    box = statistics.GetBoundingBox(1)  # x, y, z start then size (voxels)
    start, size = np.asarray(box[:3], float) - 0.5, np.asarray(box[3:], float)
    corners = np.array([[start[0] + i * size[0], start[1] + j * size[1], start[2] + k * size[2]]
                        for i in (0, 1) for j in (0, 1) for k in (0, 1)])  # fmt: skip
    matrix = index_to_physical_matrix(mask)
    world = corners @ matrix[:3, :3].T + matrix[:3, 3]
    low, high = world.min(axis=0), world.max(axis=0)
    world_box = np.array([[(low, high)[i][0], (low, high)[j][1], (low, high)[k][2]]
                          for i in (0, 1) for j in (0, 1) for k in (0, 1)])  # fmt: skip
    inverse = np.linalg.inv(matrix)
    index = world_box @ inverse[:3, :3].T + inverse[:3, 3]
    edges = np.asarray(mask.GetSize(), float) - 0.5
    low, high = np.clip(index.min(axis=0), -0.5, edges), np.clip(index.max(axis=0), -0.5, edges)
    return (high - low) * np.asarray(mask.GetSpacing(), float)


def _ball_volume_needed(stage: StageSampling, fill: float) -> float:
    """Volume (mm³) of the smallest ball that fills ``fill`` of its coarse-voxel-grown box."""
    low, high = 0.0, 1e4
    for _ in range(60):
        diameter = (low + high) / 2
        ball = math.pi / 6 * diameter**3
        if ball >= fill * float(np.prod(diameter + 2 * stage.voxel_mm)):
            high = diameter
        else:
            low = diameter
    return math.pi / 6 * high**3


def _millimetres(voxel_mm: np.ndarray) -> str:
    return " x ".join(f"{v:g}" for v in np.round(voxel_mm, 2))


def check_fixed_mask_size(recipe: Preset, fixed: sitk.Image, fixed_mask: sitk.Image | None) -> None:
    """Refuse a fixed mask too small for the preset's sampler at its coarsest level (InputError).

    elastix random samplers: the mask must fill the share of its box given by :func:`_needed_fill`,
    the box counted as the mask's box grown by a whole coarse voxel on each side (the most elastix
    rounds it to). ANTs and elastix voxel samplers: the mask must hold ln(1 / RISK) expected
    samples (so that the chance of none is RISK).
    """
    if fixed_mask is None:
        return
    count = int(np.count_nonzero(sitk.GetArrayViewFromImage(fixed_mask)))
    volume = count * float(np.prod(fixed_mask.GetSpacing()))
    extent = _box_extent_mm(fixed_mask)
    for stage in stage_sampling(recipe, fixed):
        if stage.random_box:
            needed = _needed_fill(stage)
            fill = volume / float(np.prod(extent + 2 * stage.voxel_mm))
            if fill >= needed:
                continue
            minimum = _ball_volume_needed(stage, needed)
            why = f"its sampler needs a mask filling {needed:.0%} of its box, this one fills {fill:.1%}"
            alternative = ""
        else:
            expected = stage.expected_samples(volume)
            needed = math.log(1.0 / RISK)
            if expected >= needed:
                continue
            minimum = needed * float(np.prod(stage.voxel_mm)) / stage.fraction
            why = f"it samples {stage.fraction:.0%} of the voxels: {expected:.1f} in this mask, {needed:.1f} needed"
            alternative = f", or use {DEFAULT_ENGINE}" if recipe.engine != DEFAULT_ENGINE else ""
        enlarge = (f"enlarge the mask to at least {minimum / 1000:.1f} cm³ around the anatomy, or drop it"
                   if volume < minimum else "its shape leaves its box mostly empty (thin, or oblique to the image "
                   "axes): drop it")  # fmt: skip
        raise InputError(
            f"the fixed mask holds {count} voxels ({volume / 1000:.2g} cm³), too few for {stage.label} (at its "
            f"coarsest level, {_millimetres(stage.voxel_mm)} mm voxels, {why}): {enlarge} and crop the images to "
            f"the region instead (mmreg prep){alternative}"
        )


def _region_points(image: sitk.Image, mask: sitk.Image | None, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` voxel centres (LPS mm) of ``mask`` (all of ``image`` without one), spread evenly."""
    size = np.asarray(image.GetSize())
    start, extent = np.zeros(3, int), size.copy()
    if mask is not None:
        statistics = sitk.LabelShapeStatisticsImageFilter()
        statistics.Execute(mask)
        box = statistics.GetBoundingBox(1)
        start, extent = np.asarray(box[:3]), np.asarray(box[3:])
    stride = max(1, math.ceil((float(np.prod(extent)) / (50 * count)) ** (1 / 3)))
    if mask is not None:
        region = sitk.GetArrayViewFromImage(mask)[
            start[2] : start[2] + extent[2] : stride,
            start[1] : start[1] + extent[1] : stride,
            start[0] : start[0] + extent[0] : stride,
        ]
        index = np.argwhere(region)[:, ::-1] * stride + start
    else:
        axes = [np.arange(0, n, stride) for n in size]
        index = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    if len(index) > count:
        index = index[np.random.default_rng(seed).choice(len(index), count, replace=False)]
    matrix = index_to_physical_matrix(image)
    return index.astype(float) @ matrix[:3, :3].T + matrix[:3, 3]


def valid_fraction(
    fixed: sitk.Image,
    moving: sitk.Image,
    start: Transform,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    points: int = VALID_POINTS,
    seed: int = 0,
) -> float:
    """Fraction (0..1) of the fixed mask's voxels (of all fixed voxels without one) that ``start``
    maps inside the moving image's buffer (between its outer voxel centres, as elastix's linear
    interpolator counts it) and inside the moving mask (nearest voxel), if one is given."""
    fixed_points = _region_points(fixed, fixed_mask, points, seed)
    if len(fixed_points) == 0:
        return 0.0
    inverse = np.linalg.inv(index_to_physical_matrix(moving))
    mapped = start.transform_points(fixed_points)
    index = mapped @ inverse[:3, :3].T + inverse[:3, 3]
    upper = np.asarray(moving.GetSize(), float) - 1.0
    valid = np.all((index >= 0.0) & (index <= upper), axis=1)
    if moving_mask is not None:
        nearest = np.clip(np.floor(index + 0.5).astype(np.int64), 0, upper.astype(np.int64))
        inside = sitk.GetArrayViewFromImage(moving_mask)[nearest[:, 2], nearest[:, 1], nearest[:, 0]] != 0
        valid &= inside
    return float(valid.mean())


def mask_centroid(mask: sitk.Image) -> np.ndarray:
    """Centroid (LPS mm) of the mask's set voxels."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.Cast(mask != 0, sitk.sitkUInt8))
    return np.asarray(statistics.GetCentroid(1))


def anatomy_center(fixed: sitk.Image, fixed_mask: sitk.Image | None) -> np.ndarray:
    """The centre (LPS mm) the image checks turn their decoys about: the fixed mask's centroid, else the fixed
    image's foreground centre."""
    return mask_centroid(fixed_mask) if fixed_mask is not None else foreground_center(fixed)


def centred_on_masks(start: Transform, fixed_mask: sitk.Image, moving_mask: sitk.Image) -> Transform:
    """``start`` followed by the translation that puts the fixed mask's centroid on the moving
    mask's: the rotation (and any deformation) of ``start`` is kept."""
    shift = np.eye(4)
    shift[:3, 3] = mask_centroid(moving_mask) - start.transform_points([mask_centroid(fixed_mask)])[0]
    return Transform.from_matrix(shift) @ start


@dataclass
class MaskedStarts:
    """The starts an engine can run from with these masks, and what was done to them."""

    runs: list[tuple[str, Transform]]
    warnings: list[str]


def mask_aware_starts(
    runs: list[tuple[str, Transform]],
    fixed: sitk.Image,
    moving: sitk.Image,
    recipe: Preset,
    fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None,
    seed: int = 0,
) -> MaskedStarts:
    """Keep the starts (name, fixed -> moving) at which enough of the fixed samples land in the
    moving image and mask for ``recipe``'s engine (:func:`needed_valid_fraction`).

    A start below START_MARGIN times that, with both masks given, is moved so that the mask
    centroids meet (:func:`centred_on_masks`) if that lands more samples, and says so in a warning.
    Starts still below what the engine needs are skipped; with none left, InputError.
    """
    needed = needed_valid_fraction(recipe, fixed, fixed_mask)
    kept, warnings, best = [], [], 0.0
    moved_any = False
    for name, start in runs:
        fraction = valid_fraction(fixed, moving, start, fixed_mask, moving_mask, seed=seed)
        if fraction < START_MARGIN * needed and fixed_mask is not None and moving_mask is not None:
            centred = centred_on_masks(start, fixed_mask, moving_mask)
            centred_fraction = valid_fraction(fixed, moving, centred, fixed_mask, moving_mask, seed=seed)
            if centred_fraction > fraction:
                centre = [mask_centroid(fixed_mask)]
                shift = float(np.linalg.norm(centred.transform_points(centre) - start.transform_points(centre)))
                warnings.append(
                    f"moved the {name} start by {shift:.0f} mm so that the fixed and moving mask centroids meet: only "
                    f"{fraction:.0%} of the fixed mask mapped inside the moving mask there, {centred_fraction:.0%} now"
                )
                start, fraction, moved_any = centred, centred_fraction, True
        best = max(best, fraction)
        if fraction >= needed:
            kept.append((name, start))
        else:
            warnings.append(f"skipped the {name} start: {_shortfall(fraction, fixed_mask, moving_mask)}")
    if not kept:
        engine = engine_spec(recipe.engine).label
        after = " even after moving the start to the mask centroids" if moved_any else ""
        raise ImagesApartError(
            f"{_shortfall(best, fixed_mask, moving_mask)} ({engine} needs {needed:.0%}){after}: "
            + _advice(fixed_mask, moving_mask)
        )
    return MaskedStarts(kept, warnings)


def _shortfall(fraction: float, fixed_mask, moving_mask) -> str:
    if fixed_mask is not None and moving_mask is not None:
        return f"the fixed mask and the moving mask overlap only {fraction:.0%} at the start"
    if fixed_mask is not None:
        return f"only {fraction:.0%} of the fixed mask maps inside the moving image at the start"
    return f"only {fraction:.0%} of the fixed image maps inside the moving mask at the start"


def _advice(fixed_mask, moving_mask) -> str:
    landmarks = "prealign with landmarks (FiducialPrealign or mmreg prealign)"
    if fixed_mask is not None and moving_mask is not None:
        return f"{landmarks}, or give masks that cover the same anatomy"
    if fixed_mask is not None:
        return f"{landmarks}, or also give a moving mask of the same anatomy so that the start can be centred on it"
    return f"{landmarks}, or also give a fixed mask of the same anatomy as the moving mask, or drop the moving mask"

