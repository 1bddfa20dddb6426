"""Grey levels for pictures: rank-based inside the foreground, so CT and MR both show."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def display_grey(image: sitk.Image) -> np.ndarray:
    """Rank-based grey levels inside the foreground (black outside), so that CT soft tissue and
    MR contrast both show in one picture."""
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.Execute(sitk.Cast(image, sitk.sitkFloat32))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    foreground = array[array > otsu.GetThreshold()]
    if foreground.size < 10:
        foreground = array.ravel()
    levels = np.percentile(foreground, np.linspace(0, 100, 101))
    levels = np.maximum.accumulate(levels + np.arange(101) * 1e-6)
    grey = np.interp(array, levels, np.linspace(20, 255, 101))
    grey[array <= otsu.GetThreshold()] = 0
    return grey.astype(np.uint8)
