"""The preparation worker: runs :func:`..prep.pipeline.prepare` for one job in a child process.

The same protocol as :mod:`.worker` (job JSON on standard input, JSON lines on standard output,
exit codes 0 / 2 / 1), so a GUI stays responsive and can cancel a slow preparation (masks and N4
on large volumes take tens of seconds). The job is a :class:`.jobs.PrepJob`; the prepared images
are written into its ``output_dir`` as ``fixed.nrrd``, ``moving.nrrd``, ``fixed_mask.nrrd`` and
``moving_mask.nrrd``.

Standard library only at the top, like :mod:`.worker`, so the parent side stays light.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from .jobs import PrepJob
from .results import JobOutputs, PrepJobResult
from .worker import WorkerJob
from .worker_side import main as worker_main

OUTPUT_NAMES = ("fixed", "moving", "fixed_mask", "moving_mask")
PREP_SHARE = 0.95  # of the progress bar; reading the outputs back takes the rest


def run_prep_job(job: PrepJob, emit: Callable[[dict], None]) -> PrepJobResult:
    """Prepare the pair in this process, write the images into ``output_dir``; returns the summary and files."""
    import SimpleITK as sitk

    from ..core.transforms import Transform
    from ..prep.pipeline import prepare

    options = job.prep
    initial = Transform.read(job.initial_transform) if job.initial_transform else None

    def progress(fraction: float, stage: str) -> None:
        emit({"event": "progress", "fraction": round(PREP_SHARE * fraction, 4), "stage": stage})

    pair = prepare(job.fixed, job.moving, options, initial_transform=initial, progress=progress)
    output_dir = Path(job.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    outputs = JobOutputs()
    for name in OUTPUT_NAMES:
        image = getattr(pair, name)
        if image is not None:
            # Scratch files read back at once: no compression (minutes saved on large volumes), and the
            # parent removes the whole folder on cancel, so nothing half-written can reach the scene.
            path = output_dir / f"{name}.nrrd"
            sitk.WriteImage(image, str(path), False)
            setattr(outputs, name, str(path))
    summary = pair.summary()
    summary.options = options  # as prep.json records them: the prepared nodes keep this record (a helper's sweep)
    return PrepJobResult(summary, outputs)


# What a warm worker (:mod:`.warm_worker`) runs for a job of this module.
WORKER = (PrepJob, run_prep_job)


def main() -> int:
    """Entry point of the prep worker process: the registration worker's protocol, running a prep job."""
    return worker_main(PrepJob, run_prep_job)


class PrepWorkerJob(WorkerJob):
    """One preparation running in a child process; progress, wait and cancel as :class:`.worker.WorkerJob`."""

    def __init__(self, job: PrepJob | dict, python: str | None = None, on_progress=None):
        super().__init__(job, python=python, on_progress=on_progress, job_type=PrepJob)


if __name__ == "__main__":
    sys.exit(main())
