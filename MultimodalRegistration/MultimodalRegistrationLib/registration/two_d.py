"""2D registration (issue 23): a histology or microscopy image to a 2D image of another modality.

Both images are read by :func:`core.images2d.read_image_2d` (RGB to BT.601 luminance, pixel size from the
file or given), so pixel (column i, row j) is at ``(i px, j px)`` mm in each. The result maps fixed points
to moving points, ``x_moving = A x_fixed + t`` (mm), like every library transform.

Method (SimpleITK, deterministic: fixed sampling seed, one thread count):
1. start: the two images' intensity centroids met, and every ``START_STEP_DEG`` of rotation over the full
   turn scored by Mattes mutual information on 8x shrunk images; the best goes on;
2. rigid (Euler2D), Mattes MI (32 bins), three levels (shrink 4, 2, 1);
3. ``affine``: an AffineTransform refined from the rigid result over the same three levels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.images2d import Image2D
from ..core.transforms import matrix_2d_of

START_STEP_DEG = 15.0
SEED = 11
KINDS = ("rigid", "affine")


@dataclass
class Registration2D:
    """``matrix`` (3x3, mm): ``x_moving = matrix @ x_fixed``; the final MI (higher is better) and seconds."""

    matrix: np.ndarray
    mutual_information: float
    seconds: float

    def transform(self) -> sitk.AffineTransform:
        """The result as a 2D ITK affine transform (fixed -> moving; written as AffineTransform_double_2_2)."""
        affine = sitk.AffineTransform(2)
        affine.SetMatrix(self.matrix[:2, :2].ravel().tolist())
        affine.SetTranslation(self.matrix[:2, 2].tolist())
        return affine


def _method(shrink: list[int], sigmas: list[float], threads: int) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.5, SEED)
    method.SetInterpolator(sitk.sitkLinear)
    # Learning rate 2, minimum step 0.005, 200 iterations stopped 1.6 mm off on the test pair (MI 0.92 against
    # 0.96 at the truth); these settings end 0.1 mm off.
    method.SetOptimizerAsRegularStepGradientDescent(
        1.0, 0.001, 300, relaxationFactor=0.7, gradientMagnitudeTolerance=1e-12
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel(sigmas)
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetNumberOfThreads(threads)
    return method


def _centroid(image: sitk.Image) -> np.ndarray:
    """Intensity-weighted centre (mm) of the image above its median (the foreground, bright or dark)."""
    array = sitk.GetArrayViewFromImage(image).astype(np.float64)
    median = np.median(array)
    weight = np.abs(array - median)
    rows, columns = np.indices(array.shape)
    total = max(weight.sum(), 1e-12)
    index = np.array([(columns * weight).sum() / total, (rows * weight).sum() / total])
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))


def register_2d(fixed: Image2D, moving: Image2D, kind: str = "rigid", threads: int = 2) -> Registration2D:
    """Register ``moving`` to ``fixed`` (see the module notes); ``kind`` rigid or affine."""
    started = time.perf_counter()
    fixed_gray, moving_gray = fixed.gray, moving.gray
    fixed_center, moving_center = _centroid(fixed_gray), _centroid(moving_gray)
    shift = (moving_center - fixed_center).tolist()
    coarse = _method([8], [4.0], threads)
    best, best_value = None, np.inf
    for angle in np.arange(0.0, 360.0, START_STEP_DEG):
        start = sitk.Euler2DTransform(fixed_center.tolist(), float(np.radians(angle)), shift)
        coarse.SetInitialTransform(start, inPlace=False)
        value = coarse.MetricEvaluate(fixed_gray, moving_gray)
        if value < best_value:
            best, best_value = start, value
    method = _method([4, 2, 1], [2.0, 1.0, 0.0], threads)
    method.SetInitialTransform(best, inPlace=False)
    result = method.Execute(fixed_gray, moving_gray)
    value = method.GetMetricValue()
    if kind == "affine":
        rigid = matrix_2d_of(result)
        start = sitk.AffineTransform(2)
        start.SetCenter(fixed_center.tolist())
        start.SetMatrix(rigid[:2, :2].ravel().tolist())
        start.SetTranslation((rigid[:2, :2] @ fixed_center + rigid[:2, 2] - fixed_center).tolist())
        refine = _method([4, 2, 1], [2.0, 1.0, 0.0], threads)
        refine.SetInitialTransform(start, inPlace=False)
        result = refine.Execute(fixed_gray, moving_gray)
        value = refine.GetMetricValue()
    return Registration2D(matrix_2d_of(result), float(-value), time.perf_counter() - started)
