"""One section registered to a neighbour: rigid (or affine) 2D, SimpleITK, deterministic.

The result ``matrix`` (3x3, mm) maps points of section ``i`` to the same anatomy in section ``j``:
``x_j = matrix @ x_i`` (fixed i -> moving j, like every library transform).

Start: the tissue centroids met, at every 12 degrees (``CENTRED_ANGLES_DEG``), and no translation (a fragment's
centroid is not its section's) at ``START_ANGLES_DEG`` and every 30 degrees; the start with the best correlation
goes on. The starts are compared on the images as the registration's first level sees them (shrunk 4 times, smoothed
2 mm), not at full size: on three stacks of bench_stack.py the pairs' results were identical, a third of their time
saved. Then the correlation metric (the neighbours share one stain and contrast) over three levels, regular step
gradient descent, a fixed sampling seed, one thread (pairs run in parallel instead).

A section's pair to the reference volume (another modality) uses Mattes mutual information instead, with
its histogram bins set by Sturges' rule (``1 + log2 n``) from the samples ``n`` at the coarsest level: 32 bins
left a 32 x 32 joint histogram with about one sample per cell there and doubled the pairs' error (0.9 against
0.45 mm median, ``stack_results.md``).

A fragment or a torn section is the fixed image with its tissue as the metric's mask (see :func:`register_pair`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.transforms import matrix_2d_of
from .sections import WorkingSection

START_ANGLES_DEG = (-24.0, -12.0, 0.0, 12.0, 24.0)  # 7 angles every 10 deg: 25% slower, no more accurate
# A section laid on its slide turned further (upside down): every 30 degrees round the circle, scored the same way.
# Without them a section turned 100 or 180 degrees was placed 110 mm off and reported ok.
FAR_ANGLES_DEG = (60.0, 90.0, 120.0, 150.0, 180.0, -150.0, -120.0, -90.0, -60.0)
# With the tissue centroids met, every 12 degrees round the circle: between 24 and 60, two neighbours turned 36-40
# degrees apart started near their mirror image and ended 35-126 mm off at a high correlation (a helper's sweep).
CENTRED_ANGLES_DEG = tuple(float(a) for a in range(-168, 181, 12))
SAMPLING = 0.3
SEED = 7
COARSE_SHRINK, COARSE_SIGMA_MM = 4, 2.0  # the registration's first level
MI_BINS = (8, 32)  # the range Sturges' rule is held to
MASK_RATIO = 0.8  # tissue area ratio under which the smaller section's tissue masks the metric


@dataclass
class PairResult:
    """``x_j = matrix @ x_i`` (mm) and the final correlation (0..1) of the registration."""

    i: int
    j: int
    matrix: np.ndarray
    correlation: float


def mutual_information_bins(fixed: sitk.Image, shrink: int) -> int:
    """Sturges' rule on the samples the metric draws at the coarsest level (``shrink``), within MI_BINS."""
    samples = SAMPLING * np.prod([max(1, n // shrink) for n in fixed.GetSize()])
    return int(np.clip(round(1 + np.log2(max(samples, 1.0))), *MI_BINS))


def _method(
    shrink: list[int], sigmas: list[float], iterations: int, bins: int | None = None
) -> sitk.ImageRegistrationMethod:
    """The registration; ``bins``: Mattes mutual information with that many bins (None: correlation)."""
    method = sitk.ImageRegistrationMethod()
    if bins:  # another modality (the reference)
        method.SetMetricAsMattesMutualInformation(bins)
    else:
        method.SetMetricAsCorrelation()
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING, SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        2.0, 0.005, iterations, relaxationFactor=0.6, gradientMagnitudeTolerance=1e-12
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel(sigmas)
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetNumberOfThreads(1)
    return method


def coarse(image: sitk.Image) -> sitk.Image:
    """``image`` as the registration's first level sees it: smoothed COARSE_SIGMA_MM, shrunk COARSE_SHRINK times."""
    return sitk.BinShrink(sitk.SmoothingRecursiveGaussian(image, COARSE_SIGMA_MM), [COARSE_SHRINK] * 2)


def register_pair(first: WorkingSection, second: WorkingSection, affine: bool = False) -> PairResult:
    """``x_second = matrix @ x_first`` (see the module notes). When one section has much less tissue than the
    other (under ``MASK_RATIO``: a fragment, a torn section), it is registered as the fixed image with its
    tissue as the metric's mask, so it is matched where it has tissue; the result is inverted if they swapped."""
    ratio = min(first.tissue_pixels, second.tissue_pixels) / max(first.tissue_pixels, second.tissue_pixels, 1)
    swap = second.tissue_pixels < first.tissue_pixels and ratio < MASK_RATIO
    fixed, moving = (second, first) if swap else (first, second)
    matrix, correlation = _register(fixed, moving, affine, masked=ratio < MASK_RATIO)
    if swap:
        matrix = np.linalg.inv(matrix)
    return PairResult(first.index, second.index, matrix, correlation)


def register_to_reference(plane: WorkingSection, section: WorkingSection, reference_index: int,
                          affine: bool = False) -> PairResult:  # fmt: skip
    """``x_section = matrix @ x_plane``: a section (moving) registered to its reference plane (fixed, another
    modality: mutual information, the same starts); ``correlation`` holds the final mutual information."""
    matrix, value = _register(plane, section, affine, masked=False, mutual=True)
    return PairResult(reference_index, section.index, matrix, value)


def _register(
    fixed: WorkingSection, moving: WorkingSection, affine: bool, masked: bool, mutual: bool = False
) -> tuple[np.ndarray, float]:
    shrink, sigmas = [COARSE_SHRINK, 2, 1], [COARSE_SIGMA_MM, 1.0, 0.0]
    bins = mutual_information_bins(fixed.image, shrink[0]) if mutual else None
    method = _method(shrink, sigmas, 100, bins)
    if masked and fixed.mask is not None:
        method.SetMetricFixedMask(fixed.mask)
    center = [float(v) for v in fixed.centroid]
    start_fixed, start_moving = coarse(fixed.image), coarse(moving.image)  # the starts, as the first level sees them
    best, best_value = None, np.inf
    starts = ((moving.centroid - fixed.centroid, CENTRED_ANGLES_DEG), (np.zeros(2), START_ANGLES_DEG + FAR_ANGLES_DEG))
    for shift, angles in starts:
        for angle in angles:
            start = sitk.Euler2DTransform(center, float(np.radians(angle)), [float(v) for v in shift])
            method.SetInitialTransform(start, inPlace=False)
            value = method.MetricEvaluate(start_fixed, start_moving)
            if value < best_value:
                best, best_value = start, value
    method.SetInitialTransform(best, inPlace=False)
    result = method.Execute(fixed.image, moving.image)
    value = method.GetMetricValue()
    matrix = matrix_2d_of(result)
    if affine:
        start = sitk.AffineTransform(2)
        start.SetCenter(center)
        start.SetMatrix(matrix[:2, :2].ravel().tolist())
        start.SetTranslation((matrix[:2, :2] @ np.asarray(center) + matrix[:2, 2] - np.asarray(center)).tolist())
        refine = _method([2, 1], [1.0, 0.0], 100, bins)
        refine.SetInitialTransform(start, inPlace=False)
        if masked and fixed.mask is not None:
            refine.SetMetricFixedMask(fixed.mask)
        result = refine.Execute(fixed.image, moving.image)
        value = refine.GetMetricValue()
        matrix = matrix_2d_of(result)
    return matrix, float(-value)
