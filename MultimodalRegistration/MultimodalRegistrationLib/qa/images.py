"""Image agreement in the overlap region: mutual information, normalised MI and normalised cross-correlation.

The samples and the MI are :mod:`..core.metric`'s, the same number the registration summary reports:
the moving image resampled through the fixed -> moving transform onto the fixed grid coarsened to
``spacing_mm``, over the fixed voxels that land inside the moving image (and inside the optional
fixed mask). MI and NMI come from one joint histogram, so they agree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.metric import METRIC_BINS, METRIC_SPACING_MM, MIN_OVERLAP_VOXELS, histogram_information, overlap_samples
from ..core.records import Record
from ..core.transforms import Transform


@dataclass
class ImageAgreement(Record):
    """Agreement of fixed and resampled moving image over their overlap.

    ``mutual_information`` in nats (higher is better, 0 for independent images);
    ``normalized_mutual_information`` is (H(F) + H(M)) / H(F, M), from 1 (independent) to 2 (identical);
    ``normalized_cross_correlation`` is Pearson's r (-1..1; only meaningful for same-modality images);
    ``overlap_fraction`` is the fraction of fixed voxels (inside the mask) that map inside the moving image.
    """

    mutual_information: float | None
    normalized_mutual_information: float | None
    normalized_cross_correlation: float | None
    overlap_fraction: float
    voxels: int
    spacing_mm: float  # the spacing asked for
    bins: int
    grid_mm: tuple[float, ...] = ()  # the voxels sampled (mm per axis): the asked spacing or the fixed image's, coarser

    @property
    def grid_text(self) -> str:
        """The sampling grid as the report says it: "4 mm", or "2 x 2 x 3 mm"."""
        grid = self.grid_mm or (self.spacing_mm,)
        return ("{:.3g}".format(grid[0]) if len(set(grid)) == 1 else " x ".join(f"{v:.3g}" for v in grid)) + " mm"

    def to_dict(self) -> dict:
        def rounded(value):
            return None if value is None else round(value, 6)

        grid = {"grid_mm": [round(v, 6) for v in self.grid_mm]} if self.grid_mm else {}  # not in older records
        return {
            "mutual_information": rounded(self.mutual_information),
            "normalized_mutual_information": rounded(self.normalized_mutual_information),
            "normalized_cross_correlation": rounded(self.normalized_cross_correlation),
            "overlap_fraction": round(self.overlap_fraction, 6),
            "voxels": self.voxels,
            "spacing_mm": self.spacing_mm,
            **grid,
            "bins": self.bins,
        }


def correlation(fixed_values: np.ndarray, moving_values: np.ndarray) -> float | None:
    """Normalised cross-correlation (Pearson's r) of paired samples; None if either is constant."""
    a = fixed_values - fixed_values.mean()
    b = moving_values - moving_values.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else None


def image_agreement(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    fixed_mask: sitk.Image | None = None,
    spacing_mm: float = METRIC_SPACING_MM,
    bins: int = METRIC_BINS,
) -> ImageAgreement:
    """MI (nats), NMI and NCC of ``moving`` seen through ``transform`` (fixed -> moving, LPS) over the
    overlap region; None for each where fewer than :data:`MIN_OVERLAP_VOXELS` voxels overlap."""
    if bins < 2:
        raise InputError(f"{bins} histogram bins: use at least 2 (32 is usual)")
    samples = overlap_samples(fixed, moving, transform, fixed_mask, spacing_mm)
    if samples.region_voxels == 0:
        raise InputError("the fixed mask is empty on the fixed image: draw the mask or leave it out")
    if samples.count < MIN_OVERLAP_VOXELS:
        return ImageAgreement(None, None, None, samples.fraction, samples.count, spacing_mm, bins, samples.grid_mm)
    mutual, normalized = histogram_information(samples.fixed, samples.moving, bins)
    return ImageAgreement(
        mutual,
        normalized,
        correlation(samples.fixed, samples.moving),
        samples.fraction,
        samples.count,
        spacing_mm,
        bins,
        samples.grid_mm,
    )
