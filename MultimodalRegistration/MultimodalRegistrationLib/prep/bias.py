"""MR bias-field correction: N4 on a shrunk copy, the field rebuilt and divided out at full resolution.

The bias field is smooth over many centimetres, so N4 needs only a coarse copy of the image: it
runs on voxels of about ``SHRINK_TO_MM``, and its B-spline field (a log field) is evaluated on
the full-resolution grid, where the image is divided by ``exp(log field)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.interruptible import run_interruptibly
from .masks import foreground_mask

SHRINK_TO_MM = 6.0
FITTING_LEVELS = 3
ITERATIONS = 50
CONVERGENCE = 0.001


@dataclass
class BiasCorrection:
    corrected: sitk.Image  # float32, the input divided by the bias field
    log_bias_field: sitk.Image  # float32 on the input grid
    shrink_factors: list[int]
    iterations: int
    seconds: float

    def describe(self) -> dict:
        field = sitk.GetArrayViewFromImage(self.log_bias_field)
        return {"method": "N4", "shrink_factors": self.shrink_factors, "fitting_levels": FITTING_LEVELS,
                "iterations": self.iterations, "seconds": round(self.seconds, 2),
                "bias_range": [round(float(np.exp(field.min())), 3), round(float(np.exp(field.max())), 3)]}  # fmt: skip


def shrink_factors_for(image: sitk.Image, shrink_to_mm: float = SHRINK_TO_MM) -> list[int]:
    """Per-axis shrink factors that give voxels of about ``shrink_to_mm`` (at least 1)."""
    return [max(1, int(round(shrink_to_mm / s))) for s in image.GetSpacing()]


def correct_bias(
    image: sitk.Image,
    mask: sitk.Image | None = None,
    shrink_factor: int | list[int] | None = None,
    fitting_levels: int = FITTING_LEVELS,
    iterations: int = ITERATIONS,
    convergence: float = CONVERGENCE,
    threads: int | None = None,
) -> BiasCorrection:
    """N4 bias correction of an MR ``image``.

    ``mask`` (uint8, on the image grid) selects the voxels N4 learns from; default: the automatic
    foreground mask. ``shrink_factor`` (one for all axes, or per axis) defaults to voxels of about 6 mm.
    Voxels at or below zero are left out of the fit (N4 works on log intensities).
    """
    started = time.perf_counter()
    image = sitk.Cast(image, sitk.sitkFloat32)
    if shrink_factor is None:
        factors = shrink_factors_for(image)
    elif np.isscalar(shrink_factor):
        factors = [int(shrink_factor)] * 3
    else:
        factors = [int(f) for f in shrink_factor]
    small_image = sitk.Shrink(image, factors)
    # N4 only sees the shrunk copy, so the automatic mask is made there (a fraction of the cost).
    small_mask = sitk.Shrink(mask, factors) if mask is not None else foreground_mask(small_image, "mr")[0]
    small_mask = sitk.Cast((small_mask != 0) & (small_image > 0), sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(small_mask).any():
        raise InputError(
            "the bias-correction mask holds no voxel with a positive value at the shrink factor: "
            "give a mask over the anatomy or a smaller shrink factor"
        )
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(iterations)] * int(fitting_levels))
    n4.SetConvergenceThreshold(float(convergence))
    if threads:
        n4.SetNumberOfThreads(int(threads))
    run_interruptibly(n4, lambda: n4.Execute(small_image, small_mask))  # Ctrl-C and SIGTERM stop it
    log_field = sitk.Cast(n4.GetLogBiasFieldAsImage(image), sitk.sitkFloat32)
    corrected = sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)
    return BiasCorrection(corrected, log_field, factors, int(n4.GetElapsedIterations()), time.perf_counter() - started)
