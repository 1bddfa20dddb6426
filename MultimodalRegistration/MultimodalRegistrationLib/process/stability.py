"""The stability restarts (see :mod:`..qa.stability`), each in its own worker process.

Engines hold the GIL, so threads would not help: as many restarts run at once as there are cores,
each with its share of the cores, and a restart costs one registration's time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.choices import (
    DEFAULT_RESTARTS,
    DEFAULT_ROTATION_DEG,
    DEFAULT_SEED,
    DEFAULT_SHIFT_MM,
    DEFAULT_THRESHOLD_MM,
)
from ..core.cores import usable_cores
from ..core.errors import EngineError, InputError
from ..core.files import scratch
from ..core.images import write_image
from ..core.transforms import Transform
from ..engines.presets import load_preset
from ..engines.registry import DEFAULT_ENGINE, engine_spec
from ..qa.assess import QAOptions, assess_registration, check_qa_inputs
from ..qa.report_types import QAReport
from ..qa.stability import (
    NOT_MEASURED,
    StabilityResult,
    StabilityRun,
    enough_restarts,
    foreground_points,
    infer_preset,
    perturbations,
    restart_pose,
    spread,
)
from ..registration.pose.centres import foreground_center
from .jobs import RegistrationJob
from .results import JobResult
from .worker import WorkerFailure, WorkerJob


def _input_file(image: sitk.Image | None, source: str | None, folder: Path, name: str) -> str | None:
    """A file holding ``image`` for the workers: the caller's own file when given, else a fresh copy."""
    if image is None:
        return None
    if source and Path(source).exists():
        return str(Path(source).resolve())  # the workers run in folders of their own
    path = folder / f"{name}.nrrd"
    write_image(image, path)
    return str(path)


def _run_jobs(
    jobs: list[RegistrationJob],
    parallel: int,
    timeout_s: float | None,
    python: str | None,
    progress: Callable[[float, str], None],
) -> list[tuple[JobResult | None, WorkerFailure | None, float]]:
    """Run worker jobs, ``parallel`` at a time; per job (result or None, failure or None, seconds)."""
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
                    hint = (f"raise --stability-timeout above {timeout_s:g} s: "
                            "a restart takes about as long as the registration itself")  # fmt: skip
                    outcomes[index] = (None, WorkerFailure("cancelled", message, hint=hint), elapsed)
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


@dataclass
class StabilityOptions:
    """How :func:`stability_check` restarts: ``engine`` and ``preset`` (default :func:`infer_preset`), the
    ``start`` (default :func:`restart_pose`), each start's shift (mm) and rotation (degrees), the spread
    (mm, 95th percentile) above which the result is unstable, the perturbations' ``seed``, how many run at
    once (``max_parallel``, default the cores) and for how long each (``timeout_s``), the worker's
    ``python``, ``sources`` (existing files for fixed, moving, fixed_mask and moving_mask, to spare
    copies) and the points the spread is measured at (``points_lps``, default :func:`foreground_points`)."""

    engine: str = DEFAULT_ENGINE
    preset: str | None = None
    start: Transform | None = None
    shift_mm: float = DEFAULT_SHIFT_MM
    rotation_deg: float = DEFAULT_ROTATION_DEG
    threshold_mm: float = DEFAULT_THRESHOLD_MM
    seed: int = 0
    max_parallel: int | None = None
    timeout_s: float | None = None
    python: str | None = None
    sources: dict | None = None
    points_lps: np.ndarray | None = None

    def check(self, restarts: int) -> None:
        """Refuse, before any restart, settings that cannot give a verdict: fewer than 1 restart, a threshold
        that is not a positive distance (NaN called every spread stable, a negative one every spread unstable),
        a shift or rotation that is negative or not a number, both 0, or a time budget that is not positive."""
        from ..core.choices import check_timeout

        if not (isinstance(restarts, int) and restarts >= 1):
            raise InputError(f"--stability {restarts}: the stability check needs at least 1 restart (5 is usual); "
                             "leave out --stability for none")  # fmt: skip
        if not (math.isfinite(self.threshold_mm) and self.threshold_mm > 0):
            raise InputError(f"--stability-threshold {self.threshold_mm} mm: give a positive distance in mm (default "
                             f"{DEFAULT_THRESHOLD_MM:g}); a spread above it is called unstable")  # fmt: skip
        if not (math.isfinite(self.shift_mm) and self.shift_mm >= 0):
            raise InputError(f"--stability-shift {self.shift_mm} mm: give 0 or more mm (default {DEFAULT_SHIFT_MM:g})")
        if not (math.isfinite(self.rotation_deg) and 0 <= self.rotation_deg <= 180):
            raise InputError(f"--stability-rotation {self.rotation_deg} degrees: give 0 to 180 degrees (default "
                             f"{DEFAULT_ROTATION_DEG:g})")  # fmt: skip
        if self.shift_mm + self.rotation_deg == 0:
            raise InputError("the perturbation is zero (--stability-shift 0 and --stability-rotation 0): give a shift "
                             "(mm) or a rotation (degrees) above 0")  # fmt: skip
        check_timeout(self.timeout_s, "--stability-timeout", "no limit per restart")


def stability_check(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    restarts: int = DEFAULT_RESTARTS,
    options: StabilityOptions | None = None,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
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
    o = options or StabilityOptions()
    o.check(restarts)
    report = progress or (lambda fraction, stage: None)
    preset = o.preset or infer_preset(transform)
    load_preset(o.engine, preset)  # an unknown engine or preset fails here, not in every worker
    start = o.start if o.start is not None else restart_pose(transform, fixed, moving)
    points = foreground_points(fixed) if o.points_lps is None else np.asarray(o.points_lps, float).reshape(-1, 3)
    center = foreground_center(fixed)
    cores = usable_cores()
    parallel = max(1, min(restarts, o.max_parallel or cores, cores))
    # As a batch does: ANTs on 1 thread, the only count that repeats a result (three identical runs on 2 threads
    # gave spreads of 1.30, 1.35 and 0.91 mm; audit).
    threads = engine_spec(o.engine).threads_when_unset(max(1, cores // parallel))
    sources = o.sources or {}
    started = time.perf_counter()
    with scratch("mmreg-stability-") as folder:
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
        for index, perturbation in enumerate(perturbations(restarts, center, o.shift_mm, o.rotation_deg, o.seed)):
            initial = folder / f"start-{index}.h5"
            (start @ perturbation).write(initial)
            jobs.append(
                RegistrationJob(
                    fixed=files["fixed"],
                    moving=files["moving"],
                    fixed_mask=files["fixed_mask"],
                    moving_mask=files["moving_mask"],
                    engine=o.engine,
                    preset=preset,
                    init="none",
                    initial_transform=str(initial),
                    seed=DEFAULT_SEED + 1 + index,
                    threads=threads,
                    output_transform=str(folder / f"result-{index}.h5"),
                )
            )
        outcomes = _run_jobs(jobs, parallel, o.timeout_s, o.python, report)
        results = [
            Transform.read(job.output_transform) if result else None for job, (result, _, _) in zip(jobs, outcomes)
        ]
    wall = time.perf_counter() - started

    reference = transform.transform_points(points)
    positions = [reference]
    runs, warnings = [], []
    for index, ((_, failure, seconds), result) in enumerate(zip(outcomes, results)):
        if result is None:
            runs.append(StabilityRun(index, jobs[index].seed, seconds, None, None, failure.message))
            warnings.append(f"restart {index + 1} failed: {failure.message.splitlines()[0]}")
            continue
        moved = result.transform_points(points)
        distance = np.linalg.norm(moved - reference, axis=1)
        positions.append(moved)
        runs.append(
            StabilityRun(index, jobs[index].seed, seconds, float(np.percentile(distance, 95)), float(distance.max()))
        )
    if len(positions) == 1:
        first = outcomes[0][1]
        if first.kind in ("input", "busy"):
            raise InputError(f"the restarts cannot run: {first.message}")
        raise EngineError(
            f"all {restarts} restarts failed ({first.message.splitlines()[0]})",
            hint=first.hint or "check that the registration itself runs (mmreg register) with this engine and preset",
        )
    largest = spread(positions)
    p95 = float(np.percentile(largest, 95))
    finished = len(positions) - 1
    if p95 <= o.threshold_mm and not enough_restarts(finished, restarts):
        warnings.append(
            f"stability inconclusive: only {finished} of {restarts} restarts finished (at least "
            f"{max(min(2, restarts), -(-restarts // 2))} needed to call the result stable): see why they failed above, "
            "then run the stability check again"
        )
    report(1.0, "restarts done")
    return StabilityResult(
        engine=o.engine,
        preset=preset,
        restarts=restarts,
        shift_mm=o.shift_mm,
        rotation_deg=o.rotation_deg,
        threshold_mm=o.threshold_mm,
        spread_p95_mm=p95,
        spread_max_mm=float(largest.max()),
        unstable=p95 > o.threshold_mm,
        runs=runs,
        points=len(points),
        parallel=parallel,
        threads_per_run=threads,
        wall_seconds=wall,
        warnings=warnings,
        completed=finished,
    )


def assess_with_restarts(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    stability_restarts: int = 0,
    stability_options: dict | None = None,
    progress: Callable[[float, str], None] | None = None,
    **assess_options,
) -> QAReport:
    """:func:`..qa.assess.assess_registration`, after ``stability_restarts`` perturbed restarts when asked.

    ``stability_options`` are :class:`StabilityOptions`' fields, ``assess_options``
    :class:`..qa.assess.QAOptions`'; the masks are passed to the restarts too. Returns the report.
    """
    options = QAOptions(**assess_options)
    check_qa_inputs(fixed, moving, options)  # bad input refused before minutes of restarts, not after them
    report = progress or (lambda fraction, stage: None)
    stability, not_measured = None, None
    share = 0.6 if stability_restarts else 0.0
    if stability_restarts:
        restart = StabilityOptions(**{"sources": options.sources or {}, **(stability_options or {})})
        try:
            stability = stability_check(
                fixed, moving, transform, stability_restarts, restart, options.fixed_mask, options.moving_mask,
                progress=lambda fraction, stage: report(share * fraction, stage),
            )  # fmt: skip
        except EngineError as error:  # the rest of the report still stands (a helper's sweep had lost it all)
            said = str(error).strip().splitlines()[0]
            not_measured = f"{NOT_MEASURED}: {said}" + (f"; {error.hint}" if error.hint else "")
    qa_report = assess_registration(
        fixed, moving, transform, options, stability,
        progress=lambda fraction, stage: report(share + (1 - share) * fraction, stage),
    )  # fmt: skip
    if not_measured:
        qa_report.warnings.append(not_measured)
    return qa_report
