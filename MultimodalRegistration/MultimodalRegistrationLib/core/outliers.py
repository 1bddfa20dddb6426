"""Intensities far outside an image's own range, clipped for the registration's metric.

One hot voxel (1e6 in an MR whose tissue ends at 450: a conversion error, a dead detector pixel) stretches the
metric's histogram over its whole range, so every tissue falls into one bin: elastix then stopped with "Too many
samples map outside moving image buffer" and a hint about overlap (audit). When a value lies beyond OUTLIER_SPANS
times the image's 0.5-99.5 percentile span (on either side), every value beyond CLIP_SPANS spans is clipped to that
bound, for the registration and its QA only; the files and the output volume keep them. Ordinary images are
untouched, bright small structures too (beads, a hot lesion: a few spans above the tissue): a CT's metal (3071 HU)
lies within 2 spans of its bone, an MR's brightest voxels within one of its tissue (none of the shared, phantom or
TRUS-like images is clipped). Saturated voxels, too many for the 99.5th percentile to lie below them, are
measured against the percentile of the others (a light-sheet stack with 0.12% at 65535, unclipped, had ended 71 mm
off when the span was read at 0.1-99.9).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

# The span: a CT stored as uint16 whose air wrapped to 65500 (0.43% of its voxels) put the 99.9th percentile in
# the wrapped air, nothing was clipped and elastix ended 11.5 mm off, silently (a helper's sweep).
SPAN_PERCENTILES = (0.5, 99.5)
OUTLIER_SPANS = 10.0  # a value this far out marks the image as holding outliers ...
CLIP_SPANS = 2.0  # ... and values beyond this are clipped
_SAMPLE_VOXELS = 200_000  # the percentiles are read off a random sample (a stride can alias with the rows); the
# extremes off every voxel


def clip_outliers(image: sitk.Image, role: str) -> tuple[sitk.Image, str | None]:
    """``image`` with values beyond OUTLIER_SPANS percentile spans clipped, and a warning naming them; the image
    itself and None when there are none (or the image is not scalar, or constant)."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        return image, None
    extremes = sitk.MinimumMaximumImageFilter()
    extremes.Execute(image)
    lowest, highest = extremes.GetMinimum(), extremes.GetMaximum()
    voxels = sitk.GetArrayViewFromImage(image).ravel()
    sample = voxels[np.random.default_rng(0).integers(0, voxels.size, min(voxels.size, _SAMPLE_VOXELS))]
    low, high = np.percentile(sample, SPAN_PERCENTILES)
    if high >= highest and np.any(sample < highest):
        # Saturated: so many voxels hold the top value (a detector's 65535) that the percentile is that value.
        high = np.percentile(sample[sample < highest], SPAN_PERCENTILES[1])
    span = float(high - low)
    if span <= 0:
        return image, None
    if lowest >= float(low) - OUTLIER_SPANS * span and highest <= float(high) + OUTLIER_SPANS * span:
        return image, None
    share = float(np.mean((sample >= low) & (sample <= high)))  # 99%, less when saturated voxels were set aside
    floor, ceiling = float(low) - CLIP_SPANS * span, float(high) + CLIP_SPANS * span
    count = int(np.count_nonzero((voxels < floor) | (voxels > ceiling)))
    clipped = sitk.Clamp(image, lowerBound=max(floor, lowest), upperBound=min(ceiling, highest))
    return clipped, (
        f"the {role} holds {count} voxel(s) far outside its intensity range ({lowest:.4g} to {highest:.4g}, while "
        f"{share:.1%} lie from {low:.4g} to {high:.4g}): clipped to "
        f"{max(floor, lowest):.4g} .. {min(ceiling, highest):.4g} for the registration's metric (the image and the "
        "output volume keep them); check how the image was made"
    )
