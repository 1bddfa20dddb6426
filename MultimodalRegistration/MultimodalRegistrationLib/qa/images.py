"""Image agreement in the overlap region: mutual information, normalised MI and normalised cross-correlation.

The moving image is resampled through the fixed -> moving transform onto the fixed grid coarsened
to ``spacing_mm``; only fixed voxels that land inside the moving image (and inside the optional
fixed mask) count. Entropies come from one joint histogram, so MI and NMI agree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.metric import warped_on_fixed
from ..core.transforms import Transform

MIN_OVERLAP_VOXELS = 100


@dataclass
class ImageAgreement:
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
    spacing_mm: float
    bins: int

    def to_dict(self) -> dict:
        def rounded(value):
            return None if value is None else round(value, 6)

        return {
            "mutual_information": rounded(self.mutual_information),
            "normalized_mutual_information": rounded(self.normalized_mutual_information),
            "normalized_cross_correlation": rounded(self.normalized_cross_correlation),
            "overlap_fraction": round(self.overlap_fraction, 6),
            "voxels": self.voxels,
            "spacing_mm": self.spacing_mm,
            "bins": self.bins,
        }


def _entropy(probabilities: np.ndarray) -> float:
    nonzero = probabilities[probabilities > 0]
    return float(-(nonzero * np.log(nonzero)).sum())


def histogram_agreement(fixed_values: np.ndarray, moving_values: np.ndarray, bins: int = 32) -> tuple[float, float]:
    """(mutual information in nats, normalised MI) of paired samples, from a ``bins`` x ``bins`` joint histogram."""
    joint, _, _ = np.histogram2d(fixed_values, moving_values, bins=bins)
    joint /= joint.sum()
    fixed_entropy, moving_entropy = _entropy(joint.sum(axis=1)), _entropy(joint.sum(axis=0))
    joint_entropy = _entropy(joint)
    mutual = fixed_entropy + moving_entropy - joint_entropy
    normalized = (fixed_entropy + moving_entropy) / joint_entropy if joint_entropy > 0 else 2.0
    return float(max(mutual, 0.0)), float(normalized)


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
    spacing_mm: float = 2.0,
    bins: int = 32,
) -> ImageAgreement:
    """MI, NMI and NCC of ``moving`` seen through ``transform`` (fixed -> moving) over the overlap region.

    Both images are block-averaged to about ``spacing_mm`` first, so the numbers are deterministic and fast.
    """
    if bins < 2:
        raise InputError(f"{bins} histogram bins: use at least 2 (32 is usual)")
    fixed_small, warped, inside_image = warped_on_fixed(fixed, moving, transform, spacing_mm)
    inside = sitk.GetArrayFromImage(inside_image) != 0
    region = np.ones_like(inside)
    if fixed_mask is not None:
        mask = sitk.Resample(fixed_mask, fixed_small, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        region = sitk.GetArrayFromImage(mask) != 0
        if not region.any():
            raise InputError("the fixed mask is empty on the fixed image: draw the mask or leave it out")
    overlap = inside & region
    fraction = float(overlap.sum() / region.sum())
    count = int(overlap.sum())
    if count < MIN_OVERLAP_VOXELS:
        return ImageAgreement(None, None, None, fraction, count, spacing_mm, bins)
    fixed_values = sitk.GetArrayFromImage(fixed_small)[overlap].astype(float)
    moving_values = sitk.GetArrayFromImage(warped)[overlap].astype(float)
    mutual, normalized = histogram_agreement(fixed_values, moving_values, bins)
    return ImageAgreement(
        mutual, normalized, correlation(fixed_values, moving_values), fraction, count, spacing_mm, bins
    )
