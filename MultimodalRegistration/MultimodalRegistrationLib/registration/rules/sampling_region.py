"""Where the engine samples the fixed image when no fixed mask was given: only where the moving image
lies at the start, when too little of the fixed image lies inside it for elastix (see :mod:`.mask_start`).
After a scale-aware start (:func:`overlap_regions`), only where both images hold anatomy: the moving
tissue's footprint at the start, within the fixed mask when one is given.
Transforms map fixed to moving points (LPS mm)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ...core.errors import InputError
from ...core.transforms import Transform
from ...engines.presets import Preset
from ...engines.sampling import needed_valid_fraction
from ..pose.centres import foreground_mask
from .masks import START_MARGIN, check_fixed_mask_size, valid_fraction


def moving_footprint(
    fixed: sitk.Image, moving: sitk.Image, start: Transform, moving_mask: sitk.Image | None = None
) -> sitk.Image:
    """The fixed voxels (UInt8 mask on the fixed grid) that ``start`` (fixed -> moving, LPS mm) maps
    inside the moving image, and inside ``moving_mask`` if one is given."""
    if moving_mask is not None:
        source = sitk.Cast(moving_mask != 0, sitk.sitkUInt8)
    else:
        source = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
        source.CopyInformation(moving)
    return sitk.Resample(source, fixed, start.sitk, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


@dataclass(frozen=True)
class SamplingRegion:
    """Where the engine samples the fixed image for one start, when no fixed mask was given."""

    mask: sitk.Image  # on the fixed grid
    share_of_fixed: float  # the region's share of the fixed image (0..1)
    where: str = "where the moving image lies at the start"

    def describe(self) -> str:
        return f"the fixed samples came only from {self.where} ({self.share_of_fixed:.0%} of the fixed image)"


def sampling_regions(
    runs: list[tuple[str, Transform]],
    fixed: sitk.Image,
    moving: sitk.Image,
    recipe: Preset,
    moving_mask: sitk.Image | None = None,
    seed: int = 0,
) -> dict[str, SamplingRegion]:
    """For the starts (name, fixed -> moving) that put less of the fixed image inside the moving image
    (and mask) than START_MARGIN times what the engine needs (:func:`needed_valid_fraction`: elastix
    50%, ANTs next to nothing), the fixed region they do put there: sampling only it keeps elastix
    above its RequiredRatioOfValidSamples near the start. For runs without a fixed mask; a region too
    small for the preset's sampler is left out (the whole image is sampled, as before).

    Measured on the 120 mm MR -> 64 x 60 x 60 mm ultrasound-like phantom (13% inside at the start):
    elastix failed rigid, unguided and guided; sampling the region it ends 5.4 and 0.96 mm off.
    ANTs ran either way; unguided, the region made it trade its start (10.7 mm) for a result 18.6 mm
    off whose mutual information was higher, so it keeps sampling the whole image."""
    needed = START_MARGIN * needed_valid_fraction(recipe, fixed, None)
    regions = {}
    for name, start in runs:
        if valid_fraction(fixed, moving, start, None, moving_mask, seed=seed) >= needed:
            continue
        region = moving_footprint(fixed, moving, start, moving_mask)
        share = float(np.count_nonzero(sitk.GetArrayViewFromImage(region))) / float(np.prod(fixed.GetSize()))
        if share == 0.0:
            continue
        try:
            check_fixed_mask_size(recipe, fixed, region)
        except InputError:
            continue
        regions[name] = SamplingRegion(region, share)
    return regions


# The footprint grows by this (mm) around the moving tissue: room for the engine to move.
FOOTPRINT_MARGIN_MM = 6.0
# Sample the footprint only when it leaves out more than this share of what would be sampled
# otherwise (the fixed mask, or the fixed foreground): a moving image showing the whole anatomy
# keeps today's samples. Measured at the true pose: a whole brain leaves out 0% of the brain mask,
# a 65% stack 17-19%; a brain alone leaves out about half of a head's foreground.
FOOTPRINT_MIN_LEFT_OUT = 0.1


def tissue_footprint(
    fixed: sitk.Image, moving: sitk.Image, start: Transform, moving_mask: sitk.Image | None = None,
    margin_mm: float = FOOTPRINT_MARGIN_MM,
) -> sitk.Image:  # fmt: skip
    """The fixed voxels (UInt8 mask on the fixed grid) that ``start`` (fixed -> moving, LPS mm) maps
    into the moving tissue (the moving mask, else its Otsu foreground with gaps closed and holes
    filled), grown by ``margin_mm``."""
    if moving_mask is not None:
        tissue = sitk.Cast(moving_mask != 0, sitk.sitkUInt8)
    else:
        tissue = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(foreground_mask(moving), [2, 2, 2]))
    region = sitk.Resample(tissue, fixed, start.sitk, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    radius = [max(1, round(margin_mm / s)) for s in fixed.GetSpacing()]
    return sitk.BinaryDilate(region, radius)


def overlap_regions(
    runs: list[tuple[str, Transform]],
    fixed: sitk.Image,
    moving: sitk.Image,
    recipe: Preset,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
) -> dict[str, SamplingRegion]:
    """After a scale-aware start: for the starts (name, fixed -> moving) at which the moving tissue
    covers only part of the fixed anatomy (a brain alone against a head, a partial stack), sample
    the fixed image only where both exist: the tissue's footprint (:func:`tissue_footprint`),
    within the fixed mask if given. Left out when the footprint leaves out less than
    FOOTPRINT_MIN_LEFT_OUT of the fixed mask (or foreground), or is too small for the sampler.

    Measured on the cleared-brain cases (bench_shrink.py): without it, the affine stage keeps
    matching the tissue's outline to the head's and ends about 3% too large (1.7 to 1.9 mm off);
    with it, 0.6 to 0.7 mm."""
    reference = fixed_mask if fixed_mask is not None else foreground_mask(fixed)
    reference = sitk.Cast(reference != 0, sitk.sitkUInt8)
    reference_count = float(np.count_nonzero(sitk.GetArrayViewFromImage(reference)))
    regions = {}
    for name, start in runs:
        if not start.is_linear or reference_count == 0:
            continue
        footprint = tissue_footprint(fixed, moving, start, moving_mask)
        kept = sitk.And(footprint, reference)
        left_out = 1.0 - float(np.count_nonzero(sitk.GetArrayViewFromImage(kept))) / reference_count
        if left_out < FOOTPRINT_MIN_LEFT_OUT:
            continue
        region = kept if fixed_mask is not None else footprint
        if not np.count_nonzero(sitk.GetArrayViewFromImage(region)):
            continue  # no moving tissue over the fixed image at this start (a helper's wrapped CT had crashed here)
        try:
            check_fixed_mask_size(recipe, fixed, region)
        except InputError:
            continue
        share = float(np.count_nonzero(sitk.GetArrayViewFromImage(region))) / float(np.prod(fixed.GetSize()))
        where = "where the moving tissue lies at the start" + (", within the fixed mask" if fixed_mask else "")
        regions[name] = SamplingRegion(region, share, where)
    return regions
