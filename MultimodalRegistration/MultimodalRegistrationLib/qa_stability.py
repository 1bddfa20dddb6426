"""Confidence without ground truth: re-run the registration from perturbed starts and see if it comes back.

Each restart starts from the transform under test (for a nonlinear one, from its linear part)
moved by a rigid perturbation in fixed space (default 5 degrees about a random axis through the
fixed foreground's centre and a 5 mm shift in a random direction), and runs the same preset.
A registration in a sound optimum returns to the same answer; one trapped in a wrong optimum, or not
converged, drifts. The spread is measured in mm at points spread over the fixed image's foreground.

Each restart runs in its own worker process (:class:`~.worker.WorkerJob`; engines hold the GIL, so
threads would not help), as many at once as there are cores, each with its share of the cores:
a restart costs one registration's time.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from .engines.presets import load_preset
from .errors import EngineError, InputError
from .images import index_to_physical_matrix, sample_grid_points, write_image
from .initialize import foreground_center, initial_alignment
from .metrics import shrink_to_spacing
from .phantom import rigid_transform
from .register import DEFAULT_SEED
from .transforms import Transform
from .worker import WorkerFailure, WorkerJob

DEFAULT_RESTARTS = 5
DEFAULT_SHIFT_MM = 5.0
DEFAULT_ROTATION_DEG = 5.0
DEFAULT_THRESHOLD_MM = 2.0  # 95th-percentile spread above this flags the result as unstable
FOREGROUND_SPACING_MM = 4.0
MAX_POINTS = 2000


def foreground_points(image: sitk.Image, max_points: int = MAX_POINTS) -> np.ndarray:
    """Up to ``max_points`` points (LPS mm) spread evenly over the image's foreground (Otsu at ~4 mm).

    Falls back to a grid over the whole image when no foreground is found. Deterministic.
    """
    small = sitk.Cast(shrink_to_spacing(image, FOREGROUND_SPACING_MM), sitk.sitkFloat32)
    foreground = sitk.GetArrayFromImage(sitk.OtsuThreshold(small, 0, 1, 128)) != 0
    index = np.argwhere(foreground)[:, ::-1].astype(float)  # (x, y, z) voxel indices
    if len(index) == 0:
        return sample_grid_points(image, per_axis=12)
    if len(index) > max_points:
        index = index[np.linspace(0, len(index) - 1, max_points).round().astype(int)]
    matrix = index_to_physical_matrix(small)
    return index @ matrix[:3, :3].T + matrix[:3, 3]


def perturbations(
    count: int, center_lps: np.ndarray, shift_mm: float, rotation_deg: float, seed: int = 0
) -> list[Transform]:
    """``count`` rigid perturbations (fixed space, LPS): ``rotation_deg`` about a random axis through
    ``center_lps`` and a ``shift_mm`` shift in a random direction. Deterministic for a ``seed``."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        axis = rng.normal(size=3)
        direction = rng.normal(size=3)
        direction *= shift_mm / np.linalg.norm(direction)
        result.append(rigid_transform(rotation_deg, axis, direction, center=center_lps))
    return result


def infer_preset(transform: Transform) -> str:
    """The preset that makes a transform like this one: rigid, affine or deformable."""
    if not transform.is_linear:
        return "deformable"
    singular = np.linalg.svd(transform.matrix[:3, :3], compute_uv=False)
    return "rigid" if np.allclose(singular, 1.0, atol=1e-3) else "affine"


def restart_pose(transform: Transform, fixed: sitk.Image, moving: sitk.Image) -> Transform:
    """Where restarts begin: the transform itself if linear; for a chain, its linear parts composed in
    order without the nonlinear ones (elastix: the affine stages under the B-spline; ANTs: the affine
    around SyN); with no linear part at all, the image centres aligned."""
    if transform.is_linear:
        return transform
    linear = [part for part in transform.components() if part.is_linear]
    if linear:
        return Transform.chain(linear)
    return initial_alignment(fixed, moving, None, "geometry")


@dataclass
class StabilityRun:
    """One restart: how far its result lies from the transform under test, at the foreground points (mm)."""

    index: int
    seed: int
    seconds: float
    distance_p95_mm: float | None
    distance_max_mm: float | None
    error: str | None = None

    def to_dict(self) -> dict:
        def rounded(value):
            return None if value is None else round(value, 4)

        return {
            "index": self.index,
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
            "distance_p95_mm": rounded(self.distance_p95_mm),
            "distance_max_mm": rounded(self.distance_max_mm),
            "error": self.error,
        }


@dataclass
class StabilityResult:
    """How far the restarts and the transform under test disagree (mm), and the verdict."""

    engine: str
    preset: str
    restarts: int
    shift_mm: float
    rotation_deg: float
    threshold_mm: float
    spread_p95_mm: float  # per point: the largest distance between any two results; then the 95th percentile
    spread_max_mm: float
    unstable: bool
    runs: list[StabilityRun]
    points: int
    parallel: int
    threads_per_run: int
    wall_seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "engine": self.engine,
            "preset": self.preset,
            "restarts": self.restarts,
            "perturbation": {"shift_mm": self.shift_mm, "rotation_deg": self.rotation_deg},
            "threshold_mm": self.threshold_mm,
            "spread_p95_mm": round(self.spread_p95_mm, 4),
            "spread_max_mm": round(self.spread_max_mm, 4),
            "unstable": self.unstable,
            "verdict": "unstable" if self.unstable else "stable",
            "points": self.points,
            "parallel": self.parallel,
            "threads_per_run": self.threads_per_run,
            "wall_seconds": round(self.wall_seconds, 2),
            "runs": [run.to_dict() for run in self.runs],
            "warnings": list(self.warnings),
        }


def spread(positions: list[np.ndarray]) -> np.ndarray:
    """Per point, the largest distance (mm) between any two of the (N, 3) position arrays."""
    largest = np.zeros(len(positions[0]))
    for i in range(len(positions)):
        for j in range(i + 1, len(positions)):
            largest = np.maximum(largest, np.linalg.norm(positions[i] - positions[j], axis=1))
    return largest


def _input_file(image: sitk.Image | None, source: str | None, folder: Path, name: str) -> str | None:
    """A file holding ``image`` for the workers: the caller's own file when given, else a fresh copy."""
    if image is None:
        return None
    if source and Path(source).exists():
        return str(source)
    path = folder / f"{name}.nrrd"
    write_image(image, path)
    return str(path)


def _run_jobs(
    jobs: list[dict],
    parallel: int,
    timeout_s: float | None,
    python: str | None,
    progress: Callable[[float, str], None],
) -> list[tuple[dict | None, WorkerFailure | None, float]]:
    """Run worker jobs, ``parallel`` at a time; per job (result event or None, failure or None, seconds)."""
    outcomes: list = [None] * len(jobs)
    waiting = list(range(len(jobs)))
    running: dict[int, tuple[WorkerJob, float]] = {}
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                index = waiting.pop(0)
                running[index] = (WorkerJob(jobs[index], python=python).start(), time.monotonic())
            for index, (job, started) in list(running.items()):
                elapsed = time.monotonic() - started
                if job.poll():
                    if timeout_s is None or elapsed <= timeout_s:
                        continue
                    job.cancel()
                    message = f"stopped after {timeout_s:g} s, the time budget of one restart"
                    outcomes[index] = (None, WorkerFailure("cancelled", message), elapsed)
                else:
                    try:
                        outcomes[index] = (job.wait(), None, elapsed)  # wait() also reaps the process
                    except WorkerFailure as failure:
                        outcomes[index] = (None, failure, elapsed)
                del running[index]
            done = sum(outcome is not None for outcome in outcomes)
            fractions = [job.fraction for job, _ in running.values()]
            progress((done + sum(fractions)) / len(jobs), f"restarts: {done} of {len(jobs)} done")
            time.sleep(0.1)
    except BaseException:
        for job, _ in running.values():
            job.cancel()
        raise
    return outcomes


def stability_check(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    restarts: int = DEFAULT_RESTARTS,
    engine: str = "elastix",
    preset: str | None = None,
    start: Transform | None = None,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    shift_mm: float = DEFAULT_SHIFT_MM,
    rotation_deg: float = DEFAULT_ROTATION_DEG,
    threshold_mm: float = DEFAULT_THRESHOLD_MM,
    seed: int = 0,
    max_parallel: int | None = None,
    timeout_s: float | None = None,
    python: str | None = None,
    sources: dict | None = None,
    points_lps: np.ndarray | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> StabilityResult:
    """Re-run the registration from ``restarts`` perturbed starts and measure how far the results disagree.

    ``transform`` (fixed -> moving, LPS) is the result under test; restarts begin at ``start`` (default
    :func:`restart_pose`) moved by :func:`perturbations` and run ``preset`` (default :func:`infer_preset`)
    with ``engine``. The spread is, per point of ``points_lps`` (default :func:`foreground_points` of the
    fixed image), the largest distance between any two of the transform under test and the restarts'
    results (mm); the result is ``unstable`` when its 95th percentile exceeds ``threshold_mm``.
    ``sources`` may name existing files for fixed, moving, fixed_mask and moving_mask, to spare copies.
    ``timeout_s`` bounds each restart; ``python`` is the worker's interpreter (PythonSlicer in Slicer).
    """
    if restarts < 1:
        raise InputError(f"{restarts} restarts: the stability check needs at least 1 (5 is usual)")
    if shift_mm < 0 or rotation_deg < 0 or shift_mm + rotation_deg == 0:
        raise InputError("the perturbation is zero: give a shift (mm) or a rotation (degrees) above 0")
    report = progress or (lambda fraction, stage: None)
    preset = preset or infer_preset(transform)
    load_preset(engine, preset)  # an unknown engine or preset fails here, not in every worker
    start = start if start is not None else restart_pose(transform, fixed, moving)
    points = foreground_points(fixed) if points_lps is None else np.asarray(points_lps, float).reshape(-1, 3)
    center = foreground_center(fixed)
    cores = os.cpu_count() or 1
    parallel = max(1, min(restarts, max_parallel or cores, cores))
    threads = max(1, cores // parallel)
    sources = sources or {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmreg-stability-") as scratch:
        folder = Path(scratch)
        files = {
            name: _input_file(image, sources.get(name), folder, name)
            for name, image in (
                ("fixed", fixed),
                ("moving", moving),
                ("fixed_mask", fixed_mask),
                ("moving_mask", moving_mask),
            )
        }
        jobs = []
        for index, perturbation in enumerate(perturbations(restarts, center, shift_mm, rotation_deg, seed)):
            initial = folder / f"start-{index}.h5"
            (start @ perturbation).write(initial)
            job = {
                "fixed": files["fixed"],
                "moving": files["moving"],
                "engine": engine,
                "preset": preset,
                "init": "none",
                "initial_transform": str(initial),
                "seed": DEFAULT_SEED + 1 + index,
                "threads": threads,
                "output_transform": str(folder / f"result-{index}.h5"),
            }
            job.update({key: files[key] for key in ("fixed_mask", "moving_mask") if files[key]})
            jobs.append(job)
        outcomes = _run_jobs(jobs, parallel, timeout_s, python, report)
        results = [
            Transform.read(job["output_transform"]) if result else None for job, (result, _, _) in zip(jobs, outcomes)
        ]
    wall = time.perf_counter() - started

    reference = transform.transform_points(points)
    positions = [reference]
    runs, warnings = [], []
    for index, ((_, failure, seconds), result) in enumerate(zip(outcomes, results)):
        if result is None:
            runs.append(StabilityRun(index, jobs[index]["seed"], seconds, None, None, failure.message))
            warnings.append(f"restart {index + 1} failed: {failure.message.splitlines()[0]}")
            continue
        moved = result.transform_points(points)
        distance = np.linalg.norm(moved - reference, axis=1)
        positions.append(moved)
        runs.append(
            StabilityRun(index, jobs[index]["seed"], seconds, float(np.percentile(distance, 95)), float(distance.max()))
        )
    if len(positions) == 1:
        first = outcomes[0][1]
        if first.kind == "input":
            raise InputError(f"the restarts cannot run: {first.message}")
        raise EngineError(
            f"all {restarts} restarts failed ({first.message.splitlines()[0]})",
            hint=first.hint or "check that the registration itself runs (mmreg register) with this engine and preset",
        )
    largest = spread(positions)
    p95 = float(np.percentile(largest, 95))
    report(1.0, "restarts done")
    return StabilityResult(
        engine=engine,
        preset=preset,
        restarts=restarts,
        shift_mm=shift_mm,
        rotation_deg=rotation_deg,
        threshold_mm=threshold_mm,
        spread_p95_mm=p95,
        spread_max_mm=float(largest.max()),
        unstable=p95 > threshold_mm,
        runs=runs,
        points=len(points),
        parallel=parallel,
        threads_per_run=threads,
        wall_seconds=wall,
        warnings=warnings,
    )
