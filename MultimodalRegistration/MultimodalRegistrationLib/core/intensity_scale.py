"""Intensities too large for elastix's arithmetic, scaled down for the registration.

An MR multiplied by 1e10 (a NIfTI whose scl_slope is 1e30, a map stored in the wrong unit) stopped elastix while it
estimated its step sizes ("Computing displacement distribution ... Index: [-9223372036854775808, 8]", exit 1 with a
hint to try the rigid preset, a helper's sweep); 1e8 still worked, and ANTs ran both. Mutual information, the
pose searches' scores and the QA's measures do not change when an image's values are multiplied by one number, so
an image whose largest magnitude exceeds MAX_MAGNITUDE is divided by a power of ten that brings it to about
TARGET_MAGNITUDE, for the registration only; the file and the output volume keep their values.
"""

from __future__ import annotations

import math

import SimpleITK as sitk

MAX_MAGNITUDE = 1e7
TARGET_MAGNITUDE = 1e4


def scaled_for_engines(image: sitk.Image, role: str) -> tuple[sitk.Image, str | None]:
    """``image`` divided by a power of ten when its values reach beyond MAX_MAGNITUDE (float32), with a note saying
    so; else the image itself and None (a scalar image only)."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        return image, None
    extremes = sitk.MinimumMaximumImageFilter()
    extremes.Execute(image)
    magnitude = max(abs(extremes.GetMinimum()), abs(extremes.GetMaximum()))
    if not math.isfinite(magnitude) or magnitude <= MAX_MAGNITUDE:
        return image, None
    divisor = 10.0 ** round(math.log10(magnitude / TARGET_MAGNITUDE))
    scaled = sitk.Cast(sitk.Cast(image, sitk.sitkFloat64) / divisor, sitk.sitkFloat32)
    return scaled, (
        f"the {role}'s values reach {magnitude:.3g}, beyond what elastix computes with: divided by {divisor:.0e} for "
        "the registration (the result does not change; the image and the output volume keep their values)"
    )
