"""The preparation worker: runs :func:`.prep.prepare` for one job in a child process.

The same protocol as :mod:`.worker` (job JSON on standard input, JSON lines on standard output,
exit codes 0 / 2 / 1), so a GUI stays responsive and can cancel a slow preparation (masks and N4
on large volumes take tens of seconds). Job keys:

``fixed``, ``moving`` (image files), ``prep`` (a :class:`.prep.PrepOptions` record),
``initial_transform`` (optional file, fixed -> moving, LPS) and ``output_dir``, where the prepared
images are written as ``fixed.nrrd``, ``moving.nrrd``, ``fixed_mask.nrrd`` and ``moving_mask.nrrd``.

Standard library only at the top, like :mod:`.worker`, so the parent side stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from .worker import WorkerJob

MODULE = "MultimodalRegistrationLib.process.prep_job"
PREP_JOB_KEYS = {"fixed", "moving", "prep", "initial_transform", "output_dir", "workdir"}
OUTPUT_NAMES = ("fixed", "moving", "fixed_mask", "moving_mask")
PREP_SHARE = 0.95  # of the progress bar; reading the outputs back takes the rest


def run_prep_job(job: dict, emit: Callable[[dict], None]) -> dict:
    """Prepare the pair in this process, write the images into ``output_dir``; returns the result event."""
    import SimpleITK as sitk

    from ..core.errors import InputError
    from ..core.transforms import Transform
    from ..prep.pipeline import PrepOptions, prepare

    unknown = set(job) - PREP_JOB_KEYS
    if unknown:
        raise InputError(f"unknown prep job keys {sorted(unknown)}: check the job against prep_worker.PREP_JOB_KEYS")
    options = PrepOptions.from_dict(job.get("prep") or {})
    initial = Transform.read(job["initial_transform"]) if job.get("initial_transform") else None

    def progress(fraction: float, stage: str) -> None:
        emit({"event": "progress", "fraction": round(PREP_SHARE * fraction, 4), "stage": stage})

    pair = prepare(job["fixed"], job["moving"], options, initial_transform=initial, progress=progress)
    output_dir = Path(job["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for name in OUTPUT_NAMES:
        image = getattr(pair, name)
        if image is not None:
            # Scratch files read back at once: no compression (minutes saved on large volumes), and the
            # parent removes the whole folder on cancel, so nothing half-written can reach the scene.
            path = output_dir / f"{name}.nrrd"
            sitk.WriteImage(image, str(path), False)
            outputs[name] = str(path)
    return {"event": "result", "summary": pair.summary(), "outputs": outputs}


def main() -> int:
    """Entry point of the prep worker process: the registration worker's protocol, running a prep job."""
    from . import worker

    return worker.main(run=run_prep_job)


class PrepWorkerJob(WorkerJob):
    """One preparation running in a child process; progress, wait and cancel as :class:`.worker.WorkerJob`."""

    def __init__(self, job: dict, python: str | None = None, on_progress=None):
        super().__init__(job, python=python, on_progress=on_progress, module=MODULE)


if __name__ == "__main__":
    sys.exit(main())
