"""The worker protocol: one job in a child process, streaming JSON lines.

elastix and ANTs hold the Python GIL while they run, so a GUI must not run them in a thread.
It starts ``python -m <the job type's module>`` instead (``PythonSlicer`` in Slicer; see
:mod:`.registration_job` and :mod:`.prep_job`), writes the job (:mod:`.jobs`) as JSON to its
standard input and reads one JSON object per output line (the child's side: :mod:`.worker_side`):

``{"event": "progress", "fraction": 0.42, "stage": "<engine> rigid", "engine": "<engine>"}``
``{"event": "result", "summary": {...}, "outputs": {"transform": "T.h5", ...}}`` (a :class:`.results.JobResult`)
``{"event": "error", "kind": "input" | "engine" | "disk" | "memory" | "internal", "message": "...", "hint": "...",
"log": "T.log"}``

The exit code is 0 for success, 2 for bad input and 1 for an engine failure. Cancel with
``terminate()``: outputs are written atomically, so nothing half-written is left behind.

This module imports only the standard library at the top, so the parent side stays light.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import EXIT_ENGINE, EXIT_INPUT, EXIT_OK
from ..core.files import PARTIAL_PREFIX, file_states, note_written, remove_orphans, scratch_folder
from ..core.memory import OUT_OF_MEMORY_HINT
from ..core.processes import end_with_this_process, own_group, release_job, stop_tree, tree_alive
from ..core.replaced import recover_replaced
from .exit_codes import exit_words
from .jobs import Job, RegistrationJob
from .results import JobResult

WAIT_SLICE_S = 0.5  # the longest a wait holds off Ctrl-C on Windows

__all__ = ["EXIT_ENGINE", "EXIT_INPUT", "EXIT_OK", "WorkerFailure", "WorkerJob", "WorkerProcess", "library_root"]


# --------------------------------------------------------------------------- parent side
@dataclass
class WorkerFailure(Exception):
    """The worker reported an error (or died); ``kind`` is input, busy (a file open elsewhere), engine, disk, memory,
    internal, cancelled or timeout."""

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


def worker_python() -> str:
    """The interpreter the engines run in: ``$MMREG_PYTHON``, else this Python, unless this process is Slicer itself
    (its ``sys.executable`` is the application, not a Python): then Slicer's PythonSlicer, beside it, in the
    ``bin`` folder next to it (macOS's bundle) or on PATH. A batch run from Slicer's Python console, as
    docs/cohorts.md shows, had started Slicer as each worker, and stopped with "this warm worker has stopped"."""
    chosen = os.environ.get("MMREG_PYTHON")
    if chosen:
        return chosen
    executable = Path(sys.executable)
    if "python" in executable.name.lower():
        return sys.executable
    name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    beside = [executable.with_name(name), executable.parent.parent / "bin" / name] if executable.name else []
    for candidate in (*beside, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise RuntimeError(f"{name} was not found beside {executable} or on PATH: the engines run in it; reinstall "
                       "Slicer, or set MMREG_PYTHON to a Python that has the engines")  # fmt: skip


class WorkerProcess:
    """A child Python running ``python -m module``; its JSON-lines output becomes events on ``route``.

    A one-job worker gets its job on stdin, which is then closed; a warm worker's stdin stays open for
    job after job (see :mod:`.warm_worker`). Its stderr goes to a file in ``folder``, its working folder,
    and is shown only if the process dies.
    """

    def __init__(self, module: str, python: str | None, folder: Path, arguments: tuple[str, ...] = ()):
        self.module, self.folder, self.arguments = module, folder, arguments
        self.python = python or worker_python()
        self.route: queue.Queue = queue.Queue()  # where events go; a warm worker points it at the current job
        self.popen: subprocess.Popen | None = None
        self._stderr = None
        self._stderr_lock = threading.Lock()  # a job reads the tail as the batch's stop closes the file (CI failure)
        self._job = None  # Windows job object (core.processes.end_with_this_process)

    def start(self, job: dict | None = None) -> WorkerProcess:
        """Start the process; with ``job``, write it and close stdin (a one-job worker)."""
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(library_root())] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        environment.setdefault("PYTHONUNBUFFERED", "1")
        environment["MMREG_PARENT_PID"] = str(os.getpid())
        # Dask's nanny sets this for its workers; inherited by an engine it doubles page faults and
        # slows the pose search 2-2.7x (measured), so the engine process gets glibc's default.
        environment.pop("MALLOC_TRIM_THRESHOLD_", None)
        self._stderr = open(self.folder / "worker-stderr.log", "w+b")  # noqa: SIM115 (closed in close())
        group = own_group()  # PythonSlicer is a launcher: stopping it alone would leave the engine running
        # Windows: PythonSlicer.exe is a console program, and a warm worker lives all session: no window.
        group["creationflags"] = group.get("creationflags", 0) | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self.popen = subprocess.Popen(
            [self.python, "-m", self.module, *self.arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=environment,
            cwd=str(self.folder),
            **group,
        )
        self._job = end_with_this_process(self.popen)  # Windows: ends with this process, even a crashed one
        if job is not None:
            try:
                self.popen.stdin.write(json.dumps(job).encode())
                self.popen.stdin.close()
            except OSError as error:  # it died at once: its exit event says how (Windows: EINVAL, not EPIPE)
                if not isinstance(error, BrokenPipeError) and error.errno != errno.EINVAL:
                    raise
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        with self.popen.stdout:  # closed at its end, not when the Popen is collected: a batch starts many workers
            for raw in self.popen.stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith("{"):
                    try:
                        self.route.put(json.loads(line))
                    except json.JSONDecodeError:
                        pass
        self.popen.wait()
        self.route.put({"event": "exit", "code": self.popen.returncode})

    def send(self, record: dict) -> None:
        """Write one JSON line to the process (a warm worker's next job)."""
        self.popen.stdin.write((json.dumps(record) + "\n").encode())
        self.popen.stdin.flush()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def terminate(self) -> None:
        """Stop the process within about a second (engines hold the GIL: only a signal stops them)."""
        if not self.alive:
            return
        stop_tree(self.popen, job=self._job)
        deadline = time.monotonic() + 1.0  # the launcher may end at once and the interpreter it started not
        while tree_alive(self.popen, self._job) and time.monotonic() < deadline:
            self.popen.poll()
            time.sleep(0.02)
        if tree_alive(self.popen, self._job):
            stop_tree(self.popen, force=True, job=self._job)
        self.popen.wait()

    def wait_exit(self, timeout: float) -> None:
        if self.popen is not None:
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass

    def stderr_tail(self, characters: int = 1500) -> str:
        with self._stderr_lock:
            if self._stderr is None or self._stderr.closed:
                return ""
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace").strip()[-characters:]

    def close(self) -> None:
        """Release the stderr file (the process must have ended) and remove the working folder."""
        with self._stderr_lock:
            if self._stderr is not None and not self._stderr.closed:
                self._stderr.close()
        if self.popen is not None and self.popen.stdin and not self.popen.stdin.closed:
            try:
                self.popen.stdin.close()
            except OSError:  # its unread end is gone with the process
                pass
        release_job(self._job)
        self._job = None
        shutil.rmtree(self.folder, ignore_errors=True)


class WorkerJob:
    """One job (a registration by default) running in a child process, with progress, wait and cancel.

    ``job`` is a :class:`.jobs.Job`, or its JSON form for a ``job_type`` job. ``python`` is the
    interpreter to start (``PythonSlicer`` inside Slicer); ``on_progress`` is called from
    :meth:`poll` or :meth:`wait`, in the caller's thread. With ``warm`` (a
    :class:`.warm_worker.WarmWorker`), the job runs in that long-lived process instead of a new one;
    cancelling it stops that process.
    """

    def __init__(
        self,
        job: Job | dict,
        python: str | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        job_type: type[Job] = RegistrationJob,
        warm=None,
    ):
        self.job_type = type(job) if isinstance(job, Job) else job_type
        self.job = job.to_json() if isinstance(job, Job) else dict(job)
        self.module = self.job_type.module  # the child's entry point (``python -m module``)
        self.python = python
        self.on_progress = on_progress
        self.warm = warm
        self.events: queue.Queue = queue.Queue()
        self.result: JobResult | None = None  # the job type's result (``job_type.result_type``)
        self.error: WorkerFailure | None = None
        self.worker_info: dict = {}  # what a warm worker says about itself with the result
        self.fraction, self.stage = 0.0, "starting"
        self._process: WorkerProcess | None = None
        self._cancelled = False
        self._outputs_before: dict = {}  # the output files as they were when the job started (core.files)
        self._log_generation = 0
        self._scratch = scratch_folder("mmreg-job-")
        self.job.setdefault("workdir", str(self._scratch))

    def start(self) -> WorkerJob:
        self._outputs_before = file_states(self._output_paths())
        if self.warm is None:
            self._process = WorkerProcess(self.module, self.python, self._scratch)
            self._process.route = self.events
            self._process.start(self.job)
        else:
            self._process = self.warm.take(self)
            self._process.send({"module": self.module, "job": self.job})
        return self

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

    def wait(self, timeout: float | None = None) -> JobResult:
        """Block until the job ends; return its :class:`.results.JobResult` or raise :class:`WorkerFailure`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:  # in slices: on Windows Ctrl-C cannot interrupt a wait on a lock before Python 3.14 (gh-74157)
                self._handle(self.events.get(timeout=WAIT_SLICE_S if remaining is None else min(remaining, WAIT_SLICE_S)))
            except queue.Empty:
                if remaining is None or remaining > WAIT_SLICE_S:
                    continue
                self.cancel()
                raise WorkerFailure("timeout", f"the job took longer than {timeout:g} s and was stopped")
        self._reap()
        if self.error is not None:
            raise self.error
        return self.result

    def _reap(self) -> None:
        """Wait for a finished one-job worker to exit (no zombie, resources accounted), then clean up."""
        if self.warm is None and self._process is not None:
            self._process.wait_exit(timeout=10)
        self._finish()

    def cancel(self) -> None:
        """Stop the worker (within about a second) and remove anything it had started to write. The outputs it had
        moved into place, said or not yet, count as written (a stop after the result came had said 'nothing was
        written'; a sweep)."""
        if self._process is None or not self._process.alive:
            note_written(self._outputs_before)
            self._finish()
            return
        self._cancelled = True
        self._process.terminate()
        written = note_written(self._outputs_before)
        if self.running:
            said = f"its outputs were written first ({', '.join(map(str, written))})" if written else (
                "nothing was written")
            self.error = WorkerFailure("cancelled", f"the registration was cancelled; {said}")
        self._finish()

    def _follow_log(self, event: dict) -> None:
        """Turn the engine's growing log into progress events until the engine reports again."""
        from ..engines.progress import log_fraction

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
            self.worker_info = event.pop("worker", {})
            self.result = self.job_type.result_type.from_event(event)
            self._finish()
        elif kind == "error":
            self.worker_info = event.pop("worker", {})
            codes = {"input": EXIT_INPUT, "busy": EXIT_INPUT}
            code = codes.get(event["kind"], EXIT_ENGINE)
            self.traceback = event.get("traceback", "")
            hint = event.get("hint", "")
            if self.traceback:  # "report it with the traceback" had come without one (a helper's preset sweep)
                hint = f"{hint}:\n{self.traceback.rstrip()}"
            self.error = WorkerFailure(event["kind"], event["message"], hint, code, event.get("log"))
            self._finish()
        elif kind == "exit" and self.running:
            tail = self._process.stderr_tail() if self._process is not None else ""
            how, memory = exit_words(event["code"])
            # The memory advice for the out-of-memory killer's signal only: SIGTERM from outside had read as memory.
            hint = (f"most likely out of memory: {OUT_OF_MEMORY_HINT}" if memory else
                    "it was stopped from outside (a scheduler, kill) or crashed: run it again; if it crashes again, "
                    "try the other engine and report it with the log")  # fmt: skip
            self.error = WorkerFailure(
                "internal", f"the registration worker stopped unexpectedly ({how}): {tail or 'no message'}", hint
            )
            self._finish()

    def _finish(self) -> None:
        if self._cancelled or self.error is not None:
            self._remove_partial_outputs()
        if self.warm is not None:
            self.warm.release(self)
            shutil.rmtree(self._scratch, ignore_errors=True)
            return
        if self._process is not None and self._process.alive:
            return
        if self._process is not None:
            self._process.close()  # the job's scratch folder is the process's working folder
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _output_paths(self) -> list[Path]:
        return [Path(self.job[key]) for key in self.job_type.paths("output") if self.job.get(key)]

    def _remove_partial_outputs(self) -> None:
        """A stopped worker's partial files: its process has died, so ``remove_orphans`` takes them."""
        for folder in {path.parent for path in self._output_paths()}:
            remove_orphans(folder, PARTIAL_PREFIX)
            recover_replaced(folder)  # what it had replaced when it was stopped (Windows: moved aside)
