"""Intensities far outside an image's own range, clipped for the registration's metric.

One hot voxel (1e6 in an MR whose tissue ends at 450: a conversion error, a dead detector pixel) stretches the
metric's histogram over its whole range, so every tissue falls into one bin: elastix then stopped with "Too many
samples map outside moving image buffer" and a hint about overlap (audit). Values beyond OUTLIER_SPANS times the
image's 0.1-99.9 percentile span, on either side, are clipped to that bound for the registration only; the files
and the output volume keep them. Ordinary images are untouched: a CT's metal (3071 HU) lies within 2 spans of
its bone, an MR's brightest voxels within one of its tissue (measured: none of the project's test images is
clipped).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

OUTLIER_SPANS = 2.0
_SAMPLE_VOXELS = 200_000  # the percentiles are read off a strided sample; the extremes off every voxel


def clip_outliers(image: sitk.Image, role: str) -> tuple[sitk.Image, str | None]:
    """``image`` with values beyond OUTLIER_SPANS percentile spans clipped, and a warning naming them; the image
    itself and None when there are none (or the image is not scalar, or constant)."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        return image, None
    extremes = sitk.MinimumMaximumImageFilter()
    extremes.Execute(image)
    lowest, highest = extremes.GetMinimum(), extremes.GetMaximum()
    voxels = sitk.GetArrayViewFromImage(image).ravel()
    low, high = np.percentile(voxels[:: max(1, voxels.size // _SAMPLE_VOXELS)], [0.1, 99.9])
    span = float(high - low)
    if span <= 0:
        return image, None
    floor, ceiling = float(low) - OUTLIER_SPANS * span, float(high) + OUTLIER_SPANS * span
    if lowest >= floor and highest <= ceiling:
        return image, None
    count = int(np.count_nonzero((voxels < floor) | (voxels > ceiling)))
    clipped = sitk.Clamp(image, lowerBound=max(floor, lowest), upperBound=min(ceiling, highest))
    return clipped, (
        f"the {role} holds {count} voxel(s) far outside its intensity range ({lowest:.4g} to {highest:.4g}, while "
        f"99.8% lie from {low:.4g} to {high:.4g}): clipped to {max(floor, lowest):.4g} .. {min(ceiling, highest):.4g} "
        "for the registration's metric (the image and the output volume keep them); check how the image was made"
    )
