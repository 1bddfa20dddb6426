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


def run_2d(request: EngineRequest2D) -> EngineOutput2D:
    """One elastix run on 2D images; the matrix maps fixed to moving points (mm), the start included."""
    started = time.perf_counter()
    load(SPEC.name)
    method = registration_method_2d().New()
    loaded = time.perf_counter()
    workdir = Path(request.workdir)
    threads = SPEC.threads(request.threads)
    maps = _parameter_maps(request.preset, request.seed)
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
