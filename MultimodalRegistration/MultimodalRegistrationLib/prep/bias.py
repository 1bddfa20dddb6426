"""MR bias-field correction: N4 on a shrunk copy, the field rebuilt and divided out at full resolution.

The bias field is smooth over the whole field of view, so N4 needs only a coarse copy of the image:
it runs on voxels of about ``SHRINK_TO_MM`` (finer for an image under ``SHRINK_TO_MM`` x
``MIN_SHRUNK_EXTENT`` wide, so a mouse brain is not fitted on a 3 x 3 x 3 grid), with at least
``MIN_SHRUNK_VOXELS`` shrunk voxels left along each axis, and its B-spline field (a log field) is
evaluated on the full-resolution grid, where the image is divided by ``exp(log field)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.interruptible import run_interruptibly
from .masks import CLOSING_MM, foreground_mask

SHRINK_TO_MM = 6.0
# The shrunk copy spans at least this many of its voxels along the image's widest axis ...
MIN_SHRUNK_EXTENT = 40
# ... and keeps at least this many along every axis (a thin slab's axis is not shrunk at all).
MIN_SHRUNK_VOXELS = 24
# Fewer voxels than this along an axis leave nothing to fit a smooth field to.
MIN_N4_VOXELS = 4
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


def shrunk_voxel_mm(image: sitk.Image, shrink_to_mm: float = SHRINK_TO_MM) -> float:
    """The voxel size (mm) N4 works at: ``shrink_to_mm``, or 1/``MIN_SHRUNK_EXTENT`` of the widest axis if smaller."""
    extent = np.asarray(image.GetSize(), float) * np.asarray(image.GetSpacing(), float)
    return min(shrink_to_mm, float(extent.max()) / MIN_SHRUNK_EXTENT)


def shrink_factors_for(
    image: sitk.Image, shrink_to_mm: float = SHRINK_TO_MM, requested: int | list[int] | None = None
) -> list[int]:
    """Per-axis shrink factors (x, y, z): voxels of about ``shrink_to_mm``, or of 1/``MIN_SHRUNK_EXTENT``
    of the widest axis when that is smaller, or ``requested``; each capped so that ``MIN_SHRUNK_VOXELS``
    shrunk voxels remain along its axis (at least 1)."""
    size, spacing = np.asarray(image.GetSize(), int), np.asarray(image.GetSpacing(), float)
    if requested is None:
        wanted = np.round(shrunk_voxel_mm(image, shrink_to_mm) / spacing).astype(int)
    else:
        wanted = np.broadcast_to(np.asarray(requested, int), (3,))
    return [int(f) for f in np.maximum(1, np.minimum(wanted, size // MIN_SHRUNK_VOXELS))]


def check_n4_size(size, role: str = "image", fix: str = "leave N4 off for it") -> None:
    """Refuse (:class:`InputError`) an image too thin for N4: under ``MIN_N4_VOXELS`` voxels along an axis;
    ``fix`` ends the message."""
    for axis, count in enumerate(size):
        if count < MIN_N4_VOXELS:
            raise InputError(
                f"the {role} has {count} voxel{'s' * (count != 1)} along axis {axis} ({tuple(size)}): too thin for "
                f"N4 bias correction, which needs {MIN_N4_VOXELS} or more along every axis; {fix}"
            )


def correct_bias(
    image: sitk.Image,
    mask: sitk.Image | None = None,
    shrink_factor: int | list[int] | None = None,
    fitting_levels: int = FITTING_LEVELS,
    iterations: int = ITERATIONS,
    convergence: float = CONVERGENCE,
    threads: int | None = None,
    role: str = "image",
) -> BiasCorrection:
    """N4 bias correction of an MR ``image``.

    ``mask`` (uint8, on the image grid) selects the voxels N4 learns from; default: the automatic
    foreground mask. ``shrink_factor`` (one for all axes, or per axis) defaults to voxels of about 6 mm
    (see :func:`shrink_factors_for`; a given one is capped the same way). Voxels at or below zero are
    left out of the fit (N4 works on log intensities). Raises :class:`InputError` for an image too thin
    for N4 or one N4 cannot fit (``role`` names it).
    """
    started = time.perf_counter()
    check_n4_size(image.GetSize(), role)
    image = sitk.Cast(image, sitk.sitkFloat32)
    factors = shrink_factors_for(image, requested=shrink_factor)
    small_image = sitk.Shrink(image, factors)
    # N4 only sees the shrunk copy, so the automatic mask is made there (a fraction of the cost).
    if mask is not None:
        small_mask = sitk.Shrink(mask, factors)
    else:
        # The mask's closing scales with the image like the shrink does: 3 mm on a 20 mm mouse brain
        # would pull the air around it into the fit.
        closing_mm = CLOSING_MM * shrunk_voxel_mm(image) / SHRINK_TO_MM
        small_mask = foreground_mask(small_image, "mr", closing_mm=closing_mm)[0]
    small_mask = sitk.Cast((small_mask != 0) & (small_image > 0), sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(small_mask).any():
        raise InputError(
            f"the bias-correction mask of the {role} holds no voxel with a positive value at shrink factors "
            f"{factors}: give a mask over the anatomy (or a smaller --n4-shrink), or leave N4 off for it"
        )
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(iterations)] * int(fitting_levels))
    n4.SetConvergenceThreshold(float(convergence))
    if threads:
        n4.SetNumberOfThreads(int(threads))
    try:
        run_interruptibly(n4, lambda: n4.Execute(small_image, small_mask))  # Ctrl-C and SIGTERM stop it
    except RuntimeError as error:
        itk_text = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise InputError(
            f"N4 bias correction failed on the {role} ({image.GetSize()} voxels, shrunk by {factors} to "
            f"{small_image.GetSize()}): {itk_text}; leave N4 off for it, or give a mask over the anatomy"
        ) from None
    log_field = sitk.Cast(n4.GetLogBiasFieldAsImage(image), sitk.sitkFloat32)
    corrected = sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)
    return BiasCorrection(corrected, log_field, factors, int(n4.GetElapsedIterations()), time.perf_counter() - started)
