"""The worker protocol: one job in a child process, streaming JSON lines.

elastix and ANTs hold the Python GIL while they run, so a GUI must not run them in a thread.
It starts ``python -m <the job type's module>`` instead (``PythonSlicer`` in Slicer; see
:mod:`.registration_job` and :mod:`.prep_job`), writes the job (:mod:`.jobs`) as JSON to its
standard input and reads one JSON object per output line:

``{"event": "progress", "fraction": 0.42, "stage": "elastix rigid", "engine": "elastix"}``
``{"event": "result", "summary": {...}, "outputs": {"transform": "T.h5", ...}}``
``{"event": "error", "kind": "input" | "engine" | "internal", "message": "...", "hint": "...", "log": "T.log"}``

The exit code is 0 for success, 2 for bad input and 1 for an engine failure. Cancel with
``terminate()``: outputs are written atomically, so nothing half-written is left behind.

This module imports only the standard library at the top, so the parent side stays light.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import EXIT_ENGINE, EXIT_INPUT, EXIT_OK, EXIT_TERMINATED, EngineError, InputError
from .jobs import Job, RegistrationJob

__all__ = ["EXIT_OK", "EXIT_ENGINE", "EXIT_INPUT", "WorkerFailure", "WorkerJob", "library_root", "main"]


# --------------------------------------------------------------------------- worker side
def main(job_type: type[Job], run: Callable[[Job, Callable[[dict], None]], dict]) -> int:
    """Entry point of a worker process: a ``job_type`` job as JSON on stdin, JSON lines on stdout.

    ``run(job, emit)`` does the work and returns the result event; errors become error events
    whose message, hint and log path are separate fields.
    """
    _stop_with_parent()
    # Engines print to C-level stdout; keep the protocol on a private copy of it.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event: dict) -> None:
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    try:
        job = job_type.from_json(json.loads(sys.stdin.read()))
        emit(run(job, emit))
        return EXIT_OK
    except InputError as error:
        emit({"event": "error", "kind": "input", "message": str(error), "hint": ""})
        return EXIT_INPUT
    except EngineError as error:
        emit({"event": "error", "kind": "engine", "message": str(error), "hint": error.hint, "log": error.log_path})
        return EXIT_ENGINE
    except Exception as error:  # a crash must still reach the parent as a clear error
        emit(
            {
                "event": "error",
                "kind": "internal",
                "message": f"{type(error).__name__}: {error}",
                "hint": "this is a bug: report it with the traceback",
                "traceback": traceback.format_exc(),
            }
        )
        return EXIT_ENGINE


def _stop_with_parent() -> None:
    """Die with the parent, and leave Ctrl-C to it.

    Engines hold the GIL, so no Python handler or watcher thread would run in time: on Linux the
    kernel sends this process SIGTERM (default action: exit at once) when the parent dies (strictly: when
    the parent's thread that started it ends, so start workers from a long-lived thread). Ctrl-C
    reaches the whole process group; the parent then cancels this worker and cleans up after it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = int(os.environ.get("MMREG_PARENT_PID") or os.getppid())
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(EXIT_TERMINATED)


# --------------------------------------------------------------------------- parent side
@dataclass
class WorkerFailure(Exception):
    """The worker reported an error (or died); ``kind`` is input, engine, internal or cancelled."""

    kind: str
    message: str
    hint: str = ""
    exit_code: int = EXIT_ENGINE
    log: str | None = None  # the engine's log file, when it was kept

    def __str__(self) -> str:
        """The message, the hint and where the log is, one per line, for a status label or a terminal."""
        lines = [self.message]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        if self.log:
            lines.append(f"engine log: {self.log}")
        return "\n".join(lines)


def library_root() -> Path:
    """The folder that holds the ``MultimodalRegistrationLib`` package."""
    return Path(__file__).resolve().parents[2]


class WorkerJob:
    """One job (a registration by default) running in a child process, with progress, wait and cancel.

    ``job`` is a :class:`.jobs.Job`, or its JSON form for a ``job_type`` job. ``python`` is the
    interpreter to start (``PythonSlicer`` inside Slicer); ``on_progress`` is called from
    :meth:`poll` or :meth:`wait`, in the caller's thread.
    """

    def __init__(
        self,
        job: Job | dict,
        python: str | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        job_type: type[Job] = RegistrationJob,
    ):
        self.job_type = type(job) if isinstance(job, Job) else job_type
        self.job = job.to_json() if isinstance(job, Job) else dict(job)
        self.module = self.job_type.module  # the child's entry point (``python -m module``)
        self.python = python or os.environ.get("MMREG_PYTHON") or sys.executable
        self.on_progress = on_progress
        self.events: queue.Queue = queue.Queue()
        self.result: dict | None = None
        self.error: WorkerFailure | None = None
        self.fraction, self.stage = 0.0, "starting"
        self._process: subprocess.Popen | None = None
        self._cancelled = False
        self._log_generation = 0
        self._scratch = Path(tempfile.mkdtemp(prefix="mmreg-job-"))
        self.job.setdefault("workdir", str(self._scratch))
        self._started = time.time()

    def start(self) -> "WorkerJob":
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(library_root())] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        environment.setdefault("PYTHONUNBUFFERED", "1")
        environment["MMREG_PARENT_PID"] = str(os.getpid())
        self._process = subprocess.Popen(
            [self.python, "-m", self.module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file(),
            env=environment,
            cwd=str(self._scratch),
        )
        self._process.stdin.write(json.dumps(self.job).encode())
        self._process.stdin.close()
        self._start_reader()
        return self

    def _stderr_file(self):
        """The worker's stderr goes to a file: it is shown only if the worker dies."""
        self._stderr = open(self._scratch / "worker-stderr.log", "w+b")
        return self._stderr

    def _start_reader(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self._process.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self._process.wait()
        self.events.put({"event": "exit", "code": self._process.returncode})

    @property
    def running(self) -> bool:
        return self.result is None and self.error is None

    def poll(self) -> bool:
        """Handle the events that have arrived; True while the job still runs. Never blocks."""
        while self.running:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            self._handle(event)
        if not self.running:
            self._reap()
        return self.running

    def wait(self, timeout: float | None = None) -> dict:
        """Block until the job ends; return the result event or raise :class:`WorkerFailure`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                self._handle(self.events.get(timeout=remaining))
            except queue.Empty:
                self.cancel()
                raise WorkerFailure("cancelled", f"the registration took longer than {timeout} s and was stopped")
        self._reap()
        if self.error is not None:
            raise self.error
        return self.result

    def _reap(self) -> None:
        """Wait for the finished worker to exit (no zombie, resources accounted), then clean up."""
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._finish()

    def cancel(self) -> None:
        """Kill the worker (within about a second) and remove anything it had started to write."""
        if self._process is None or self._process.poll() is not None:
            self._finish()
            return
        self._cancelled = True
        self._process.terminate()
        try:
            self._process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self.running:
            self.error = WorkerFailure("cancelled", "the registration was cancelled; nothing was written")
        self._finish()

    def _follow_log(self, event: dict) -> None:
        """Turn the engine's growing log into progress events until the engine reports again."""
        from ..core.progress import log_fraction

        engine = event["engine"]
        path, plan, (low, high) = Path(event["log"]), event["iterations"], event["span"]
        generation = self._log_generation

        def follow() -> None:
            while self.running and generation == self._log_generation:
                try:
                    text = path.read_text(errors="replace")
                except OSError:
                    text = ""
                fraction, level = log_fraction(engine, text, plan)
                if level:
                    stage = f"{event['stage']}: level {level} of {len(plan)}"
                    self.events.put(
                        {"event": "progress", "fraction": low + (high - low) * fraction, "stage": stage, "from_log": True}
                    )
                time.sleep(0.3)

        threading.Thread(target=follow, daemon=True).start()

    def _handle(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "progress":
            if not event.get("from_log"):
                self._log_generation += 1  # the worker spoke again: stop following the old log
            if "log" in event:
                self._follow_log(event)
            self.fraction, self.stage = max(self.fraction, event["fraction"]), event["stage"]
            if self.on_progress:
                self.on_progress(self.fraction, self.stage)
        elif kind == "result":
            self.result = event
            self._finish()
        elif kind == "error":
            codes = {"input": EXIT_INPUT}
            code = codes.get(event["kind"], EXIT_ENGINE)
            self.error = WorkerFailure(event["kind"], event["message"], event.get("hint", ""), code, event.get("log"))
            self.traceback = event.get("traceback", "")
            self._finish()
        elif kind == "exit" and self.running:
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace").strip()[-1500:]
            self.error = WorkerFailure(
                "internal",
                f"the registration worker stopped unexpectedly (exit code {event['code']}): {tail or 'no message'}",
                "the engine may have run out of memory or crashed: try a smaller image or the other engine",
            )
            self._finish()

    def _finish(self) -> None:
        if self._cancelled or self.error is not None:
            self._remove_partial_outputs()
        if self._process is not None and self._process.poll() is None:
            return
        if getattr(self, "_stderr", None) is not None and not self._stderr.closed:
            self._stderr.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _remove_partial_outputs(self) -> None:
        folders = {Path(self.job[key]).parent for key in self.job_type.paths("output") if self.job.get(key)}
        for folder in folders:
            for partial in folder.glob(".partial-*"):
                if partial.stat().st_mtime >= self._started - 1:
                    partial.unlink(missing_ok=True)


