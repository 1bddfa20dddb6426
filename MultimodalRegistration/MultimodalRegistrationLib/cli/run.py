"""Running a registration job from the command line: a worker process with a progress display."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ..core.errors import Terminated
from ..process.jobs import RegistrationJob
from ..process.results import RegistrationJobResult
from ..process.warm_worker import WarmWorker
from ..process.worker import WorkerJob


class ProgressPrinter:
    """A progress bar on a terminal, plain lines (one per stage) otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last_stage = None

    def __call__(self, fraction: float, stage: str) -> None:
        if self.tty:
            filled = int(fraction * 30)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {stage:<30}")
            if fraction >= 1.0:
                self.stream.write("\n")
        elif stage != self.last_stage:
            self.stream.write(f"{fraction:4.0%} {stage}\n")
        self.stream.flush()
        self.last_stage = stage


@contextmanager
def worker_started_early(engine: str) -> Iterator[WarmWorker]:
    """A worker process started now, so that its interpreter, the library and ``engine``'s import (seconds)
    go on while the caller checks the inputs; the caller then runs its job in it. Bad input stops it at once,
    before it has a job (nothing written); it is stopped in any case at the end."""
    warm = WarmWorker(engines=(engine,))
    try:
        yield warm
    except BaseException:
        warm.stop(grace_s=0.0)
        raise
    try:
        warm.stop()
    except (KeyboardInterrupt, Terminated):  # the job is done and written: a Ctrl-C now only hurries the worker
        warm.stop(grace_s=0.0)  # (it said 'nothing was written', exit 130, and left the worker's scratch folder)


def run_registration(
    job: RegistrationJob, quiet: bool = False, warm: WarmWorker | None = None
) -> RegistrationJobResult:
    """Run a registration job in a worker process (``warm``, if given), showing progress; returns its summary
    and files."""
    progress = None if quiet else ProgressPrinter()
    worker = WorkerJob(job, on_progress=progress, warm=warm).start()
    try:
        return worker.wait()
    except (KeyboardInterrupt, Terminated):
        worker.cancel()  # the worker stops within a second; its scratch folder and partial files go
        raise
