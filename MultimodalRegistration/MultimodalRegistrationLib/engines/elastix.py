"""The elastix engine (itk-elastix). Imported only when elastix runs: loading ITK takes a second (:mod:`.itk_elastix`).

With guidance the parameter maps take elastix's multi-metric form (:mod:`.elastix_guidance`):
extra fixed/moving image pairs for the segment channels, point files for the landmarks.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.transforms import Transform
from . import elastix_guidance as guided
from .elastix_pyramid import thin_axis_schedules
from .itk_elastix import classes, itk_image, read_transform, set_global_threads
from .loading import load
from .nonlinear_start import warp_through
from .output import EngineOutput
from .presets import Preset
from .registry import runner_spec
from .request import EngineRequest

SPEC = runner_spec(__name__)


def to_itk_image(image: sitk.Image, pixel=np.float32):
    """A SimpleITK image as an itk image of ``pixel`` type, with the same geometry (LPS)."""
    array = sitk.GetArrayViewFromImage(image).astype(pixel, copy=False)
    dimension = image.GetDimension()
    direction = np.asarray(image.GetDirection(), float).reshape(dimension, dimension)
    return itk_image(array, image.GetOrigin(), image.GetSpacing(), direction)


def _native_affine(transform: Transform, fixed: sitk.Image):
    """A linear transform as an elastix AffineTransform parameter map.

    elastix's own transform supports every stage; an external ITK transform cannot precede a
    B-spline stage with a bending-energy penalty ("Not implemented for AdvancedTransformAdapter").
    """
    return native_affine(transform.matrix, fixed)


def native_affine(matrix: np.ndarray, fixed: sitk.Image):
    """An elastix parameter object holding one AffineTransform map of the homogeneous ``matrix``
    ((d+1)x(d+1), fixed -> moving mm; d = 2 or 3, the fixed image's dimension)."""
    dimension = fixed.GetDimension()

    def numbers(values):
        return [repr(float(v)) for v in values]

    parameters = {
        "Transform": ["AffineTransform"],
        "NumberOfParameters": [str(dimension * (dimension + 1))],
        "TransformParameters": numbers(
            list(matrix[:dimension, :dimension].ravel()) + list(matrix[:dimension, dimension])
        ),
        "CenterOfRotationPoint": ["0"] * dimension,
        "InitialTransformParameterFileName": ["NoInitialTransform"],
        "HowToCombineTransforms": ["Compose"],
        "FixedImageDimension": [str(dimension)],
        "MovingImageDimension": [str(dimension)],
        "FixedInternalImagePixelType": ["float"],
        "MovingInternalImagePixelType": ["float"],
        "Size": [str(s) for s in fixed.GetSize()],
        "Index": ["0"] * dimension,
        "Spacing": numbers(fixed.GetSpacing()),
        "Origin": numbers(fixed.GetOrigin()),
        "Direction": numbers(fixed.GetDirection()),
        "UseDirectionCosines": ["true"],
    }
    parameter_object = classes().parameter_object.New()
    parameter_object.AddParameterMap(parameters)
    return parameter_object


def _external_initial(transform: Transform, workdir: Path):
    """A nonlinear library transform as an ITK Transform<double, 3, 3>, through an .h5 file."""
    path = workdir / "initial.h5"
    transform.write(path)
    return read_transform(path)


def _parameter_maps(preset: Preset, seed: int) -> list[dict[str, list[str]]]:
    maps = []
    for parameters in preset.recipe:
        parameters = dict(parameters)
        # The library aligns the start itself (initialize.py); elastix must not re-centre on top.
        parameters["AutomaticTransformInitialization"] = ["false"]
        parameters["RandomSeed"] = [str(seed)]
        parameters["WriteResultImage"] = ["false"]
        parameters["ITKTransformOutputFileNameExtension"] = ["h5"]
        parameters["WriteITKCompositeTransform"] = ["false"]
        maps.append(parameters)
    return maps


def _log_timings(log: str) -> dict:
    """Seconds elastix spent building image pyramids and iterating, read from its log."""
    import re

    pyramids = sum(float(ms) for ms in re.findall(r"Preparation of the image pyramids took: ([\d.]+) ms", log)) / 1000
    per_resolution = r"Time spent in resolution \d+ \(ITK initialization and iterating\): ([\d.]+)"
    iterating = sum(float(s) for s in re.findall(per_resolution, log))
    return {"engine_pyramids_s": round(pyramids, 3), "engine_optimizer_s": round(iterating, 3)}


def _errors_in(log: str) -> str:
    """The lines of an elastix log that explain a failure."""
    lines = log.splitlines()
    keep = [i for i, line in enumerate(lines) if "ERROR" in line or "Description:" in line or "xception" in line]
    if not keep:
        return "\n".join(lines[-12:])
    return "\n".join(lines[max(keep[0] - 2, 0) : keep[-1] + 3])


def import_engine() -> None:
    """Import the elastix classes the engine uses (see :mod:`.itk_elastix`)."""
    classes()


def run(request: EngineRequest) -> EngineOutput:
    """One elastix run (see :class:`.request.EngineRequest`); the result maps fixed to moving points (LPS mm)."""
    fixed, moving, preset, initial = request.fixed, request.moving, request.preset, request.initial
    fixed_mask, moving_mask, guidance, workdir, progress = (
        request.fixed_mask, request.moving_mask, request.guidance, Path(request.workdir), request.progress
    )  # fmt: skip
    progress(0.0, f"loading {SPEC.label}")
    started = time.perf_counter()
    load(SPEC.name)
    elastix_classes = classes()
    loaded = time.perf_counter()
    threads = SPEC.threads(request.threads)
    method = elastix_classes.registration_method.New()
    maps = _parameter_maps(preset, request.seed)
    warped = None
    if guidance is None and not initial.is_linear:
        warped = warp_through(initial, fixed, moving, fixed_mask, moving_mask)
        moving, fixed_mask, moving_mask, initial = warped.moving, warped.fixed_mask, None, Transform.identity()
    if guidance is None:
        for parameters in maps:
            parameters.update(thin_axis_schedules(parameters, fixed.GetSize(), moving.GetSize()))
        _set_images(method, fixed, moving, fixed_mask, moving_mask)
    else:
        maps = guided.guided_maps(maps, guidance)
        _set_guided_inputs(method, fixed, moving, fixed_mask, moving_mask, guidance, maps, workdir)
    parameter_object = elastix_classes.parameter_object.New()
    for parameters in maps:
        parameter_object.AddParameterMap(parameters)
    method.SetParameterObject(parameter_object)
    if initial.is_linear:
        method.SetInitialTransformParameterObject(_native_affine(initial, fixed))
    else:  # only with guidance, whose moving channels and points are not resampled (nonlinear_start.py)
        method.SetExternalInitialTransform(_external_initial(initial, workdir))
    # The global default, not method.SetNumberOfThreads: the latter crashes B-spline runs (itk-elastix 0.25.4).
    set_global_threads(threads)
    method.SetOutputDirectory(str(workdir))
    method.SetLogToConsole(False)
    method.SetLogToFile(True)
    method.SetLogFileName(SPEC.log_name)
    plan = [
        int(m.get("MaximumNumberOfIterations", ["500"])[0])
        for m in maps
        for _ in range(int(m.get("NumberOfResolutions", ["4"])[0]))
    ]
    log_path = workdir / SPEC.log_name
    progress(0.05, f"{SPEC.label} {preset.name}", engine=SPEC.name, log=str(log_path), iterations=plan)
    try:
        method.UpdateLargestPossibleRegion()
    except RuntimeError:
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        raise RuntimeError(_errors_in(log) or "elastix stopped without a message in its log") from None
    log = log_path.read_text(errors="replace")
    registered = time.perf_counter()
    try:
        stages = [Transform.read(workdir / f"TransformParameters.{i}.h5") for i in range(len(preset.recipe))]
    except InputError as error:  # elastix's own file, cut short when it could not write it: not the user's input
        raise RuntimeError(f"elastix's result was not written whole ({error})") from None
    # elastix applies its initial transform first, then each stage in turn (HowToCombineTransforms Compose).
    transform = Transform.chain(list(reversed(stages)) + [initial])
    cumulative = _cumulative_stages(preset, stages, initial, transform)
    if warped is not None:
        transform = warped.after(transform)
        cumulative = [(name, warped.after(stage)) for name, stage in cumulative]
    progress(1.0, f"{SPEC.label} done")
    output = _output(transform, log, threads, loaded - started, registered - loaded)
    output.stages = cumulative
    if guidance is not None:
        output.guidance = {**guidance.describe(), **guided.notes(maps)}
    return output


_STAGE_NAMES = {"EulerTransform": "rigid", "AffineTransform": "affine", "BSplineTransform": "bspline",
                "RecursiveBSplineTransform": "bspline"}


def stage_name(parameters: dict[str, list[str]]) -> str:
    """A short name for an elastix stage from its Transform: EulerTransform -> "rigid", AffineTransform ->
    "affine", (Recursive)BSplineTransform -> "bspline"; any other loses "Transform" and is lowercased."""
    kind = parameters.get("Transform", [""])[0]
    return _STAGE_NAMES.get(kind, kind.removesuffix("Transform").lower() or "stage")


def _cumulative_stages(
    preset: Preset, stages: list[Transform], initial: Transform, final: Transform
) -> list[tuple[str, Transform]]:
    """(name, fixed -> moving after stages 0..k with the initial transform) for each stage k; the last is ``final``."""
    names = [stage_name(parameters) for parameters in preset.recipe]
    cumulative = [Transform.chain(list(reversed(stages[: k + 1])) + [initial]) for k in range(len(stages) - 1)]
    return list(zip(names, cumulative + [final]))


def _set_images(method, fixed, moving, fixed_mask, moving_mask) -> None:
    method.SetFixedImage(to_itk_image(fixed))
    method.SetMovingImage(to_itk_image(moving))
    if fixed_mask is not None:
        method.SetFixedMask(to_itk_image(fixed_mask, np.uint8))
    if moving_mask is not None:
        method.SetMovingMask(to_itk_image(moving_mask, np.uint8))


def _set_guided_inputs(method, fixed, moving, fixed_mask, moving_mask, guidance, maps, workdir: Path) -> None:
    """The image pairs in slot order (see :mod:`.elastix_guidance`), the landmark files and the masks.

    Each mask goes in once per metric, so that every term, the landmarks too, counts only what lies
    inside the masks, whichever way elastix hands masks to metrics.
    """
    pairs = [(fixed, moving)] + [(channel.fixed, channel.moving) for channel in guidance.active_channels]
    itk_pairs = [(to_itk_image(f), to_itk_image(m)) for f, m in pairs]
    for slot, pair in enumerate(guided.slot_pairs(maps, len(pairs))):
        (method.SetFixedImage if slot == 0 else method.AddFixedImage)(itk_pairs[pair][0])
        (method.SetMovingImage if slot == 0 else method.AddMovingImage)(itk_pairs[pair][1])
    if guidance.has_points:
        fixed_file = guided.write_points(guidance.fixed_points_lps, workdir / "fixed_points.txt")
        moving_file = guided.write_points(guidance.moving_points_lps, workdir / "moving_points.txt")
        method.SetFixedPointSetFileName(str(fixed_file))
        method.SetMovingPointSetFileName(str(moving_file))
    for mask, add in ((fixed_mask, method.AddFixedMask), (moving_mask, method.AddMovingMask)):
        if mask is not None:
            itk_mask = to_itk_image(mask, np.uint8)
            for _ in range(guided.mask_count(maps)):
                add(itk_mask)


def _output(transform, log, threads, import_s, register_s):
    return EngineOutput(
        transform=transform,
        inverse=transform.inverse() if transform.is_linear else None,
        log=log,
        version=SPEC.version(),
        threads=threads,
        timings={"engine_import_s": round(import_s, 3), "engine_register_s": round(register_s, 3), **_log_timings(log)},
    )
