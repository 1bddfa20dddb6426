"""The ANTs engine (antspyx), driven by antsRegistration arguments built from a JSON preset.

ANTs repeats a result only with one thread and a fixed seed, so one thread is the default.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import SimpleITK as sitk

from ..core.errors import InputError
from ..core.transforms import Transform
from .output import EngineOutput
from .presets import Preset

_LINEAR = ("Translation", "Rigid", "Similarity", "Affine")


def _join(values) -> str:
    return "x".join(str(v) for v in values)


def shrink_factors(stage: dict, voxel_mm: float) -> list[int]:
    """Per-level shrink factors: given, or derived from ``level_spacing_mm`` and the fixed voxel size (mm)."""
    if "level_spacing_mm" in stage:
        return [max(1, int(round(level / voxel_mm))) for level in stage["level_spacing_mm"]]
    return stage.get("shrink_factors", [1] * len(stage["iterations"]))


def stage_arguments(stage: dict, fixed: str, moving: str, voxel_mm: float = 1.0) -> list[str]:
    """antsRegistration arguments for one preset stage; ``voxel_mm`` is the fixed image's finest spacing."""
    transform = stage["transform"]
    step = stage.get("gradient_step", 0.1)
    if transform in _LINEAR:
        transform_argument = f"{transform}[{step}]"
    elif transform == "SyN":
        transform_argument = f"SyN[{step},{stage.get('update_field_variance', 3)},{stage.get('total_field_variance', 0)}]"
    else:
        raise InputError(f"ANTs preset stage transform '{transform}' is not supported: use {', '.join(_LINEAR)} or SyN")
    metric = stage.get("metric", "Mattes")
    if metric not in ("Mattes", "MI"):
        raise InputError(f"ANTs preset metric '{metric}' is not multimodal: use Mattes or MI")
    sampling = f"{stage.get('sampling', 'Regular')},{stage.get('sampling_percentage', 0.25)}"
    iterations = stage["iterations"]
    shrink = shrink_factors(stage, voxel_mm)
    sigmas = stage.get("smoothing_sigmas", [0] * len(iterations))
    if not (len(iterations) == len(shrink) == len(sigmas)):
        raise InputError("ANTs preset: iterations, shrink_factors and smoothing_sigmas need the same length")
    return [
        "--metric", f"{metric}[{fixed},{moving},1,{stage.get('bins', 32)},{sampling}]",
        "--transform", transform_argument,
        "--convergence",
        f"[{_join(iterations)},{stage.get('convergence_threshold', 1e-6)},{stage.get('convergence_window', 10)}]",
        "--smoothing-sigmas", _join(sigmas) + stage.get("smoothing_units", "vox"),
        "--shrink-factors", _join(shrink),
    ]  # fmt: skip


def registration_arguments(
    preset: Preset, fixed: str, moving: str, initial: str, output_prefix: str, seed: int,
    voxel_mm: float = 1.0, fixed_mask: str | None = None, moving_mask: str | None = None,
) -> list[str]:  # fmt: skip
    """The whole antsRegistration command line (without the program name)."""
    recipe = preset.ants
    low, high = recipe.get("winsorize", [0.005, 0.995])
    arguments = [
        "--dimensionality", "3",
        "--float", "1",
        "--collapse-output-transforms", "1",
        "--write-composite-transform", "1",
        "--output", f"[{output_prefix}]",
        "--interpolation", "Linear",
        "--use-histogram-matching", "0",
        "--winsorize-image-intensities", f"[{low},{high}]",
        "--initial-moving-transform", initial,
        "--random-seed", str(seed),
        "--verbose", "1",
    ]  # fmt: skip
    if fixed_mask or moving_mask:
        arguments += ["--masks", f"[{fixed_mask or 'NULL'},{moving_mask or 'NULL'}]"]
    for stage in recipe["stages"]:
        arguments += stage_arguments(stage, fixed, moving, voxel_mm)
    return arguments


@contextmanager
def _stdout_to(path: Path):
    """Send the process's C-level stdout (where antsRegistration prints) to a file."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def version() -> str:
    from importlib.metadata import version as package_version

    return f"antspyx {package_version('antspyx')}"


def run(fixed, moving, preset: Preset, fixed_mask, moving_mask, initial: Transform, seed, threads, workdir: Path, progress):
    progress(0.0, "loading ANTs")
    started = time.perf_counter()
    threads = threads or 1
    # ITK reads this once, when ANTs first starts a thread pool.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    from ants.internal import get_lib_fn

    loaded = time.perf_counter()
    paths = {"fixed": workdir / "fixed.nrrd", "moving": workdir / "moving.nrrd"}
    sitk.WriteImage(sitk.Cast(fixed, sitk.sitkFloat32), str(paths["fixed"]))
    sitk.WriteImage(sitk.Cast(moving, sitk.sitkFloat32), str(paths["moving"]))
    masks = {}
    for role, mask in (("fixed_mask", fixed_mask), ("moving_mask", moving_mask)):
        if mask is not None:
            masks[role] = str(workdir / f"{role}.nrrd")
            sitk.WriteImage(mask, masks[role])
    initial_path = workdir / "initial.h5"
    initial.write(initial_path)
    prefix = str(workdir / "ants_")
    arguments = registration_arguments(
        preset, str(paths["fixed"]), str(paths["moving"]), str(initial_path), prefix, seed,
        voxel_mm=min(fixed.GetSpacing()), **masks,
    )
    log_path = workdir / "ants.log"
    plan = [count for stage in preset.ants["stages"] for count in stage["iterations"]]
    progress(0.05, f"ANTs {preset.name}", engine="ants", log=str(log_path), iterations=plan)
    with _stdout_to(log_path):
        status = get_lib_fn("antsRegistration")(arguments)
    log = log_path.read_text(errors="replace")
    if status != 0:
        raise RuntimeError(f"antsRegistration exited with {status}: {log.strip()[-1500:]}")
    if "Exception caught" in log:
        # antsRegistration reports some failures (no samples in the mask, none inside the moving image)
        # only in its log, exits 0 and leaves its start as the result: never pass that off as a result.
        caught = log[log.index("Exception caught"):].strip()
        raise RuntimeError(f"antsRegistration stopped: {caught[:1500]}")
    registered = time.perf_counter()
    # The composite already holds the initial transform (antsRegistration folds it in).
    transform = Transform.read(f"{prefix}Composite.h5")
    inverse = Transform.read(f"{prefix}InverseComposite.h5")
    if transform.is_linear:
        inverse = transform.inverse()
    transform = Transform(transform.sitk, inverse=inverse)
    progress(1.0, "ANTs done")
    return EngineOutput(
        transform=transform,
        inverse=inverse,
        log=log,
        version=version(),
        threads=threads,
        timings={"engine_import_s": round(loaded - started, 3), "engine_register_s": round(registered - loaded, 3)},
    )
