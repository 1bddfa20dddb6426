"""ANTs on two 2D images (:class:`.request_2d.EngineRequest2D`): antsRegistration ``--dimensionality 2`` with
a 2D preset (levels in pixels), the start as an ITK affine file; the collapsed composite read back as one matrix."""

from __future__ import annotations

import os
import time
from pathlib import Path

import SimpleITK as sitk

from ..core.transforms import affine_2d, matrix_2d_of
from .ants import RunFiles, _stdout_to, registration_arguments
from .ants_library import ants_registration
from .loading import load
from .registry import runner_spec
from .request_2d import EngineOutput2D, EngineRequest2D

SPEC = runner_spec(__name__)


def run_2d(request: EngineRequest2D) -> EngineOutput2D:
    """One antsRegistration run on 2D images; the matrix maps fixed to moving points (mm), the start included."""
    started = time.perf_counter()
    threads = SPEC.threads(request.threads)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)  # read when ANTs first starts its threads
    load(SPEC.name)
    loaded = time.perf_counter()
    workdir = Path(request.workdir)
    paths = {role: str(workdir / f"{role}.nrrd") for role in ("fixed", "moving")}
    sitk.WriteImage(sitk.Cast(request.fixed, sitk.sitkFloat32), paths["fixed"])
    sitk.WriteImage(sitk.Cast(request.moving, sitk.sitkFloat32), paths["moving"])
    masks = {}
    for role, mask in (("fixed_mask", request.fixed_mask), ("moving_mask", request.moving_mask)):
        if mask is not None:
            masks[role] = str(workdir / f"{role}.nrrd")
            sitk.WriteImage(sitk.Cast(mask, sitk.sitkUInt8), masks[role])
    initial = str(workdir / "initial.tfm")
    # About the fixed image's middle: ANTs's rigid stage turns about the start's centre, and about the corner
    # (0, 0) it stayed 4.5 mm off on the test pair (0.01 mm about the middle).
    middle = request.fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in request.fixed.GetSize()])
    sitk.WriteTransform(affine_2d(request.initial, middle), initial)
    prefix = str(workdir / "ants_")
    files = RunFiles(paths["fixed"], paths["moving"], initial, prefix, **masks)
    arguments = registration_arguments(request.preset, files, request.seed, min(request.fixed.GetSpacing()), dimension=2)
    log_path = workdir / SPEC.log_name
    with _stdout_to(log_path):
        status = ants_registration()(arguments)
    log = log_path.read_text(errors="replace")
    if status != 0:
        raise RuntimeError(f"antsRegistration exited with {status}: {log.strip()[-1500:]}")
    if "Exception caught" in log:  # some failures only reach the log (see ants.py)
        raise RuntimeError(f"antsRegistration stopped: {log[log.index('Exception caught') :].strip()[:1500]}")
    registered = time.perf_counter()
    matrix = matrix_2d_of(sitk.ReadTransform(f"{prefix}Composite.h5"))  # the start is folded in
    timings = {"engine_import_s": round(loaded - started, 3), "engine_register_s": round(registered - loaded, 3)}
    return EngineOutput2D(matrix, log, SPEC.version(), threads, timings)
