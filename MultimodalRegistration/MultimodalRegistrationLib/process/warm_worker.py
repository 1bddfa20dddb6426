"""A warm worker: one long-lived process that imports the engines once and runs job after job.

A process pays its start-up once: the interpreter, the library and the engines' imports (elastix
about 1 s, ANTs 0.1 s), so a batch, a Slicer session or a cluster worker keeps one process per worker alive. The protocol is
that of :mod:`.worker`, one job at a time: the parent writes one line per job,
``{"module": "<job type's worker module>", "job": {...}}``, and reads the job's events up to its
``result`` or ``error``, which carries ``"worker": {"pid", "jobs", "engines_loaded", "imported_now"}``.
Cancelling a job stops the whole process (engines hold the GIL); the next job gets a fresh one.

``python -m MultimodalRegistrationLib.process.warm_worker elastix ants`` imports those engines
before the first job, so a worker started ahead of time is warm when the job comes; a job sent sooner
waits in the pipe (the import holds the GIL: a thread could do nothing meanwhile).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable

from ..core.files import scratch_folder
from ..engines.registry import DEFAULT_ENGINE
from .worker import WorkerJob, WorkerProcess
from .worker_side import exit_now, protocol, run_one, stop_with_parent

MODULE = "MultimodalRegistrationLib.process.warm_worker"


def serve(engines: list[str]) -> int:
    """The warm worker's loop: import ``engines``, then run one job per stdin line until stdin closes."""
    from ..engines.loading import load, loaded  # not at the top: the parent side imports this module too

    stop_with_parent()
    emit = protocol()
    seconds = 0.0
    for engine in engines:
        try:
            seconds += load(engine)
        except ImportError:  # not installed (Slicer installs an engine when it is first chosen): a job needing it says so
            pass
    emit({"event": "ready", "engines_loaded": loaded(), "seconds": round(seconds, 3)})
    jobs = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        module = importlib.import_module(record["module"])
        job_type, run = module.WORKER
        before = set(loaded())
        jobs += 1

        def emit_job(event: dict, jobs=jobs, before=before) -> None:
            if event.get("event") in ("result", "error"):
                now = loaded()
                event["worker"] = {
                    "pid": os.getpid(), "jobs": jobs, "engines_loaded": now,
                    "imported_now": sorted(set(now) - before),
                }  # fmt: skip
            emit(event)

        run_one(job_type, run, record["job"], emit_job)
    return 0


# --------------------------------------------------------------------------- parent side
class WarmWorker:
    """A long-lived worker process, started at once; :meth:`run` hands it one job at a time.

    ``engines`` are imported ahead of the first job. The worker dies with its parent, with a
    cancelled job, or with :meth:`stop`; check :attr:`alive` and start a new one then.
    """

    def __init__(self, python: str | None = None, engines: tuple[str, ...] = (DEFAULT_ENGINE,)):
        self.process = WorkerProcess(MODULE, python, scratch_folder("mmreg-warm-"), tuple(engines))
        self.process.start()
        self.current: WorkerJob | None = None
        self.jobs = 0
        self.ready: dict | None = None  # the worker's "ready" event, once it has arrived

    @property
    def alive(self) -> bool:
        return self.process.alive

    @property
    def busy(self) -> bool:
        return self.current is not None

    def run(self, job, on_progress: Callable[[float, str], None] | None = None, **options) -> WorkerJob:
        """Start ``job`` (a :class:`.jobs.Job` or its JSON) in this worker; returns the running :class:`WorkerJob`."""
        return WorkerJob(job, on_progress=on_progress, warm=self, **options).start()

    def take(self, job: WorkerJob) -> WorkerProcess:
        """Route the process's events to ``job`` (called by :meth:`WorkerJob.start`)."""
        if self.busy:
            raise RuntimeError("this warm worker is running another job: wait for it or start another worker")
        if not self.alive:
            raise RuntimeError("this warm worker has stopped: start a new one")
        self._drain_into(job)
        self.current = job
        self.jobs += 1
        self.process.route = job.events
        return self.process

    def _drain_into(self, job: WorkerJob) -> None:
        """Events that arrived between jobs (the ``ready`` event) are not the job's; keep what they say."""
        while not self.process.route.empty():
            event = self.process.route.get_nowait()
            if event.get("event") == "ready":
                self.ready = event

    def release(self, job: WorkerJob) -> None:
        """The job has ended: the worker is free (or dead, if the job was cancelled or crashed it)."""
        if self.current is job:
            self.current = None
            if not self.alive:
                self.stop()

    def stop(self, grace_s: float = 1.0) -> None:
        """Let the worker finish (it exits when its stdin closes), or stop it after ``grace_s`` seconds."""
        if self.process.popen is not None and self.process.popen.stdin and not self.process.popen.stdin.closed:
            try:
                self.process.popen.stdin.close()
            except OSError:
                pass
        self.process.wait_exit(timeout=grace_s)
        self.process.terminate()
        self.process.close()


def main() -> int:
    exit_now(serve(sys.argv[1:]))  # when stdin closes; see worker.exit_now


if __name__ == "__main__":
    sys.exit(main())


class WarmSlot:
    """One warm worker kept ready for a session (the Slicer module's): :meth:`take` hands it out when it
    is free, :meth:`refill` starts a fresh one ahead of time once a job has ended (a cancelled job stops
    its worker), and :meth:`stop` ends it (Slicer exits, the module is reloaded).

    Nothing starts before the first :meth:`take`: a session that never registers pays nothing.
    """

    def __init__(self, python: str | None = None, engines: tuple[str, ...] = (DEFAULT_ENGINE,)):
        self.python, self.engines = python, tuple(engines)
        self.worker: WarmWorker | None = None

    def take(self) -> WarmWorker | None:
        """The warm worker, started now if there is none; None while it runs another job (use a one-job worker)."""
        if self.worker is None or not self.worker.alive:
            if self.worker is not None:
                self.worker.stop()  # one that died while idle: its files and handles
            self.worker = WarmWorker(self.python, self.engines)
        return None if self.worker.busy else self.worker

    def refill(self) -> None:
        """After a job: start the next worker in the background if the last one stopped."""
        if self.worker is not None and not self.worker.alive:
            self.worker.stop()
            self.worker = WarmWorker(self.python, self.engines)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
