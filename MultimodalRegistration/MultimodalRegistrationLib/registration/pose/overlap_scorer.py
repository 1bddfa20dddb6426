"""Mutual information of poses counted only where both images exist, for the scale-aware search.

A brain-only moving image (cleared tissue, a partial stack) against a whole head: the library's
:class:`.scorer.PoseScorer` counts every fixed sample that maps outside the moving tissue as moving
background, so a pose that blows the brain up over the whole head matches the head's outline about
as well as the true pose. :class:`OverlapPoseScorer` leaves those samples out instead:

* beyond a face of the moving image that cuts its foreground short (a partial stack's ends),
  nothing is known: such samples never count;
* with ``tissue``, only samples that map inside the moving tissue count, or inside the user's fixed
  mask (there, moving background is a real mismatch, not missing data);
* the value is weighted by the share of the moving tissue the counted samples stand for, so that a
  pose comparing a small piece of the tissue cannot win on the noise of few samples.

Poses are 4x4 fixed -> moving matrices (LPS mm), any linear part.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.metric import pointwise_information
from .coarse import CoarseImage
from .scorer import PoseScorer, _FineLookup, joint_histograms

# A pose whose counted samples cover less than this share of the moving tissue scores 0.
MIN_TISSUE_COVERED = 0.25
# A pose keeping fewer samples than this (share of all, or count) scores 0.
MIN_VALID_FRACTION, MIN_VALID_SAMPLES = 0.05, 150


def _lookup(image: sitk.Image, array: np.ndarray) -> _FineLookup:
    region = sitk.GetImageFromArray(array.astype(np.float32))
    region.CopyInformation(image)
    return _FineLookup(region)


def tissue_region(coarse: CoarseImage, dilate: int = 1) -> np.ndarray:
    """The image's tissue on its coarse grid (z, y, x booleans): its foreground (or the user's mask),
    holes filled, grown by ``dilate`` voxels."""
    source = coarse.mask if coarse.mask is not None else coarse.foreground
    image = sitk.GetImageFromArray(source.astype(np.uint8))
    image = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(image, [1, 1, 1]))
    if dilate:
        image = sitk.BinaryDilate(image, [dilate] * 3)
    return sitk.GetArrayFromImage(image).astype(bool)


class OverlapPoseScorer(PoseScorer):
    """A :class:`.scorer.PoseScorer` that counts samples only where both images exist (module notes).

    ``cut_axes``: moving image axes (0, 1, 2) whose faces cut the foreground; ``tissue``: the moving
    tissue (z, y, x booleans on the moving coarse grid) or None; ``fixed_inside``: the user's fixed
    mask on the fixed coarse grid, or None; ``sample_volume``: fixed mm³ one sample stands for;
    ``scale_range``: (low, high) isotropic scales outside which a pose scores 0, or None.
    """

    def __init__(
        self, *args, cut_axes=(), tissue: np.ndarray | None = None, fixed_inside: np.ndarray | None = None,
        sample_volume: float = 0.0, scale_range: tuple[float, float] | None = None, **kwargs,
    ):  # fmt: skip
        super().__init__(*args, **kwargs)
        fixed, moving = args[0].image, args[1].image
        self.cut_axes = list(cut_axes)
        self.scale_range = scale_range
        self.in_mask = None
        if fixed_inside is not None:
            lookup = _lookup(fixed, fixed_inside)
            self.in_mask = lookup(lookup.to_index[:3, :3] @ self.points.T + lookup.to_index[:3, 3:]) > 0.5
        self.tissue = None
        if tissue is not None:
            # On the moving image's own grid: the moving samples' voxel positions look it up too.
            self.tissue = _lookup(moving, tissue).values
            self.tissue_volume = float(tissue.sum() * np.prod(moving.GetSpacing()))
            self.sample_volume = sample_volume

    def _score(self, matrices: np.ndarray) -> np.ndarray:
        count, bins = len(matrices), self.bins
        to_index = (self.moving.to_index @ matrices).astype(np.float32)
        index = np.matmul(to_index[:, :3, :3], self.points.T[None]) + to_index[:, :3, 3:]
        valid = np.ones((count, index.shape[2]), bool)
        for axis in self.cut_axes:
            valid &= (index[:, axis] > -0.5) & (index[:, axis] < self.moving.size[axis] - 0.5)
        flat = self.moving.flat(index)
        if self.tissue is not None:
            in_tissue = np.take(self.tissue, flat) > 0.5
            valid &= in_tissue if self.in_mask is None else (in_tissue | self.in_mask[None])
        histogram = joint_histograms(self.fixed_bins, np.take(self.moving.values, flat), bins, valid)
        totals = valid.sum(axis=1)
        values = pointwise_information(histogram / np.maximum(totals, 1)[:, None, None])[1]
        determinants = np.abs(np.linalg.det(matrices[:, :3, :3]))
        if self.tissue is not None:
            covered = totals * self.sample_volume * determinants
            share = np.clip(covered / self.tissue_volume, 0.0, 1.0)
            values = np.where(share >= MIN_TISSUE_COVERED, values * share, 0.0)
        if self.scale_range is not None:
            scale = determinants ** (1 / 3)
            values = np.where((scale >= self.scale_range[0]) & (scale <= self.scale_range[1]), values, 0.0)
        return np.where(totals >= max(MIN_VALID_SAMPLES, MIN_VALID_FRACTION * index.shape[2]), values, 0.0)


def overlap_scorer(
    fixed: CoarseImage, moving: CoarseImage, region: np.ndarray | None, tissue_only: bool = False, **options
) -> OverlapPoseScorer:
    """An :class:`OverlapPoseScorer` sampling ``region`` of ``fixed`` (all if None). The user's fixed
    mask restricts the samples, or with ``tissue_only`` joins the moving tissue as where both exist."""
    fixed_inside = None
    if fixed.mask is not None:
        if tissue_only:
            fixed_inside = fixed.mask
        else:
            region = fixed.mask if region is None else region & fixed.mask
    tissue = tissue_region(moving) if tissue_only else None
    voxels = region.sum() if region is not None else fixed.foreground.size
    sample_volume = float(max(voxels / options.get("samples", 3000), 1.0) * np.prod(fixed.image.GetSpacing()))
    return OverlapPoseScorer(
        fixed, moving, fixed_region=region, cut_axes=moving.cut_axes(), tissue=tissue, fixed_inside=fixed_inside,
        sample_volume=sample_volume, **options,
    )  # fmt: skip
