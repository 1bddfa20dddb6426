"""Image-agreement metrics that are the same whichever engine ran."""

from __future__ import annotations

import SimpleITK as sitk

from .images import inside_fraction, sample_grid_points
from .transforms import Transform


def shrink_to_spacing(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """Block-average ``image`` so that its voxels are about ``spacing_mm`` wide (never finer than now;
    an axis with fewer voxels than the factor keeps one)."""
    factors = [max(1, min(n, int(round(spacing_mm / s)))) for s, n in zip(image.GetSpacing(), image.GetSize())]
    if all(f == 1 for f in factors):
        return image
    return sitk.BinShrink(image, factors)


def warped_on_fixed(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, spacing_mm: float
) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """Both images block-averaged to about ``spacing_mm``: the fixed one (float), the moving one
    resampled onto it through ``transform`` (fixed -> moving, linear, 0 outside), and the uint8
    mask of the fixed voxels whose centres map inside the moving image (the overlap)."""
    fixed_small = sitk.Cast(shrink_to_spacing(fixed, spacing_mm), sitk.sitkFloat32)
    moving_small = sitk.Cast(shrink_to_spacing(moving, spacing_mm), sitk.sitkFloat32)
    # Resampling first lets any transform through (ITK's metric cannot take displacement-field composites).
    warped = sitk.Resample(moving_small, fixed_small, transform.sitk, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    inside = sitk.Resample(
        sitk.Cast(moving_small * 0 + 1, sitk.sitkUInt8), fixed_small, transform.sitk, sitk.sitkNearestNeighbor, 0
    )
    return fixed_small, warped, inside


def mutual_information(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    fixed_mask: sitk.Image | None = None,
    spacing_mm: float = 3.0,
    bins: int = 32,
) -> float:
    """Mattes mutual information (nats, higher is better) of ``moving`` seen through ``transform``.

    Evaluated on every voxel of the fixed image shrunk to ``spacing_mm``, so it is deterministic.
    Returns 0 where the images do not overlap.
    """
    fixed_small, warped, inside = warped_on_fixed(fixed, moving, transform, spacing_mm)
    if fixed_mask is not None:
        inside = inside * sitk.Resample(fixed_mask, fixed_small, sitk.Transform(), sitk.sitkNearestNeighbor)
    if sitk.GetArrayViewFromImage(inside).sum() < 100:
        return 0.0
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(bins)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetMetricFixedMask(inside)
    method.SetInitialTransform(sitk.TranslationTransform(3), inPlace=False)
    # Only the value is needed: without the gradient filters (which need 4 voxels along every
    # axis) a thin slab, such as 8 CT slices shrunk to 2, is measured too.
    method.SetMetricUseFixedImageGradientFilter(False)
    method.SetMetricUseMovingImageGradientFilter(False)
    try:
        return float(-method.MetricEvaluate(fixed_small, warped))
    except RuntimeError:
        # ITK raises when too few samples remain: no overlap, no information.
        return 0.0


def overlap_fraction(fixed: sitk.Image, moving: sitk.Image, transform: Transform, per_axis: int = 10) -> float:
    """Fraction of a grid over the fixed image that ``transform`` maps inside the moving image."""
    points = sample_grid_points(fixed, per_axis)
    return inside_fraction(transform.transform_points(points), moving)
