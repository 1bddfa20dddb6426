"""elastix on two 2D images (:class:`.request_2d.EngineRequest2D`): the 2D presets' parameter maps, the start
as elastix's own AffineTransform, each stage's 2D transform read back and composed into one matrix."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.transforms import matrix_2d_of
from .elastix import _errors_in, _parameter_maps, native_affine, to_itk_image
from .itk_elastix import classes, registration_method_2d, set_global_threads
from .loading import load
from .registry import runner_spec
from .request_2d import EngineOutput2D, EngineRequest2D

SPEC = runner_spec(__name__)
# The longest step per level (coarse to fine), in the fixed image's working pixels, for a 2D preset that sets none.
# elastix's default, one pixel at every level, had left the MNI T1 slice against a T2-like one turned 25 degrees
# 1.8 mm off at the default seed (0.06-0.09 mm at others; a reviewer's walkthrough): the finest level's quarter
# pixel fixed it. Two pixels at the middle level then stopped a 66 x 78 slice pair at 3 mm ("Too many samples map
# outside", exit 1) and left another seed 30 mm off (a helper's scripted session). With these, on six MNI slice
# pairs (1-3 mm pixels, turned -40 to 60 degrees) and that pair, 10 seeds each: every run at most 0.21 mm off, the
# median 0.03-0.11 mm. Pixels, not mm: a slide's pixel is 0.001-0.01 mm, an MR slice's 0.5-2 mm.
STEP_PIXELS = (4.0, 1.0, 0.25)


def _with_step_limits(maps: list[dict], pixel_mm: float) -> list[dict]:
    """``maps`` with MaximumStepLength set to STEP_PIXELS (the last repeated for extra levels) times ``pixel_mm``
    where a map sets none."""
    for parameters in maps:
        if "MaximumStepLength" not in parameters:
            levels = int(parameters.get("NumberOfResolutions", ["1"])[0])
            steps = [STEP_PIXELS[min(level, len(STEP_PIXELS) - 1)] * pixel_mm for level in range(levels)]
            parameters["MaximumStepLength"] = [f"{step:.6g}" for step in steps]
    return maps


def run_2d(request: EngineRequest2D) -> EngineOutput2D:
    """One elastix run on 2D images; the matrix maps fixed to moving points (mm), the start included."""
    started = time.perf_counter()
    load(SPEC.name)
    method = registration_method_2d().New()
    loaded = time.perf_counter()
    workdir = Path(request.workdir)
    threads = SPEC.threads(request.threads)
    maps = _with_step_limits(_parameter_maps(request.preset, request.seed), float(np.mean(request.fixed.GetSpacing())))
    method.SetFixedImage(to_itk_image(request.fixed))
    method.SetMovingImage(to_itk_image(request.moving))
    if request.fixed_mask is not None:
        method.SetFixedMask(to_itk_image(request.fixed_mask, np.uint8))
    if request.moving_mask is not None:
        method.SetMovingMask(to_itk_image(request.moving_mask, np.uint8))
    parameter_object = classes().parameter_object.New()
    for parameters in maps:
        parameter_object.AddParameterMap(parameters)
    method.SetParameterObject(parameter_object)
    method.SetInitialTransformParameterObject(native_affine(request.initial, request.fixed))
    set_global_threads(threads)
    method.SetOutputDirectory(str(workdir))
    method.SetLogToConsole(False)
    method.SetLogToFile(True)
    method.SetLogFileName(SPEC.log_name)
    log_path = workdir / SPEC.log_name
    try:
        method.UpdateLargestPossibleRegion()
    except RuntimeError:
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        raise RuntimeError(_errors_in(log) or "elastix stopped without a message in its log") from None
    registered = time.perf_counter()
    # elastix applies its start first, then each stage in turn (HowToCombineTransforms Compose).
    matrix = np.asarray(request.initial, float)
    for number in range(len(maps)):
        stage = sitk.ReadTransform(str(workdir / f"TransformParameters.{number}.h5"))
        matrix = matrix_2d_of(stage) @ matrix
    timings = {"engine_import_s": round(loaded - started, 3), "engine_register_s": round(registered - loaded, 3)}
    return EngineOutput2D(matrix, log_path.read_text(errors="replace"), SPEC.version(), threads, timings)
