"""The worker process: runs one registration job and streams JSON lines.

elastix and ANTs hold the Python GIL while they run, so a GUI must not run them in a thread.
It starts ``python -m MultimodalRegistrationLib.process.worker`` instead (``PythonSlicer`` in Slicer),
writes the job as JSON to its standard input and reads one JSON object per output line:

``{"event": "progress", "fraction": 0.42, "stage": "elastix rigid"}``
``{"event": "result", "summary": {...}, "outputs": {"transform": "T.h5", ...}}``
``{"event": "error", "kind": "input" | "engine" | "internal", "message": "...", "hint": "..."}``

The exit code is 0 for success, 2 for bad input and 1 for an engine failure. Cancel with
``terminate()``: outputs are written atomically, so nothing half-written is left behind.

This module imports only the standard library at the top, so the parent side stays light.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

EXIT_OK, EXIT_ENGINE, EXIT_INPUT = 0, 1, 2
JOB_KEYS = {
    "fixed", "moving", "fixed_mask", "moving_mask", "initial_transform", "engine", "preset", "init", "max_rotation_deg", "seed",
    "threads", "output_transform", "output_inverse", "output_volume", "summary", "workdir", "prep",
}  # fmt: skip


# --------------------------------------------------------------------------- worker side
def run_job(job: dict, emit: Callable[[dict], None]) -> dict:
    """Run one job in this process and write its outputs. Returns the result event."""
    from ..core.choices import DEFAULT_INIT, FULL_ROTATION_DEG
    from ..core.errors import InputError
    from ..core.files import write_atomically
    from ..core.images import read_image, write_image
    from ..core.transforms import Transform, resample
    from ..registration.register import DEFAULT_SEED, register

    unknown = set(job) - JOB_KEYS
    if unknown:
        raise InputError(f"unknown job keys {sorted(unknown)}: check the job against worker.JOB_KEYS")
    read_started = time.perf_counter()
    initial = Transform.read(job["initial_transform"]) if job.get("initial_transform") else None
    prepared = None
    if job.get("prep") is not None:
        from ..prep.pipeline import PrepOptions, prepare

        def prep_progress(fraction: float, stage: str) -> None:
            emit({"event": "progress", "fraction": 0.0, "stage": stage})

        options = PrepOptions.from_dict(job["prep"])
        prepared = prepare(job["fixed"], job["moving"], options, initial_transform=initial, progress=prep_progress)
        fixed, moving = prepared.fixed, prepared.moving
    else:
        fixed = read_image(job["fixed"], "fixed image")
        moving = read_image(job["moving"], "moving image")
    fixed_mask = read_image(job["fixed_mask"], "fixed mask") if job.get("fixed_mask") else None
    moving_mask = read_image(job["moving_mask"], "moving mask") if job.get("moving_mask") else None
    if prepared is not None:  # masks given to the registration win over the prepared ones
        fixed_mask = fixed_mask if fixed_mask is not None else prepared.fixed_mask
        moving_mask = moving_mask if moving_mask is not None else prepared.moving_mask
    read_seconds = time.perf_counter() - read_started

    def progress(fraction: float, stage: str, **details) -> None:
        emit({"event": "progress", "fraction": round(min(max(fraction, 0.0), 1.0), 4), "stage": stage, **details})

    result = register(
        fixed,
        moving,
        engine=job.get("engine", "elastix"),
        preset=job.get("preset", "rigid"),
        fixed_mask=fixed_mask,
        moving_mask=moving_mask,
        initial_transform=initial,
        init=job.get("init", DEFAULT_INIT),
        max_rotation_deg=float(job.get("max_rotation_deg", FULL_ROTATION_DEG)),
        seed=int(job.get("seed", DEFAULT_SEED)),
        threads=job.get("threads"),
        progress=progress,
        sources={k: job.get(k) for k in ("fixed", "moving", "fixed_mask", "moving_mask", "initial_transform")},
        workdir=job.get("workdir"),
    )
    write_started = time.perf_counter()
    outputs = {}
    if job.get("output_transform"):
        result.transform.write(job["output_transform"])
        outputs["transform"] = job["output_transform"]
    if job.get("output_inverse") and result.inverse is not None:
        result.inverse.write(job["output_inverse"])
        outputs["inverse"] = job["output_inverse"]
    if job.get("output_volume"):
        volume = prepared.resample_moving(result.transform) if prepared else resample(moving, fixed, result.transform)
        write_image(volume, job["output_volume"])
        outputs["volume"] = job["output_volume"]
    summary = result.summary()
    summary["provenance"]["timings_s"]["read_s"] = round(read_seconds, 3)
    summary["provenance"]["timings_s"]["write_s"] = round(time.perf_counter() - write_started, 3)
    summary["outputs"] = outputs
    if prepared is not None:
        summary["prep"] = prepared.summary()
        summary["warnings"] = prepared.warnings + summary["warnings"]
    if job.get("summary"):
        text = json.dumps(summary, indent=2)
        write_atomically(job["summary"], lambda tmp: Path(tmp).write_text(text))
        outputs["summary"] = job["summary"]
    return {"event": "result", "summary": summary, "outputs": outputs}


def main(run: Callable[[dict, Callable[[dict], None]], dict] | None = None) -> int:
    """Entry point of a worker process: job JSON on stdin, JSON lines on stdout.

    ``run`` executes the job (default: :func:`run_job`, a registration) and returns the result event.
    """
    # Engines print to C-level stdout; keep the protocol on a private copy of it.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event: dict) -> None:
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    from ..core.errors import EngineError, InputError

    try:
        job = json.loads(sys.stdin.read())
        emit((run or run_job)(job, emit))
        return EXIT_OK
    except InputError as error:
        emit({"event": "error", "kind": "input", "message": str(error), "hint": ""})
        return EXIT_INPUT
    except EngineError as error:
        emit({"event": "error", "kind": "engine", "message": str(error).split("\nhint:")[0], "hint": error.hint})
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


# --------------------------------------------------------------------------- parent side
@dataclass
class WorkerFailure(Exception):
    """The worker reported an error (or died); ``kind`` is input, engine, internal or cancelled."""

    kind: str
    message: str
    hint: str = ""
    exit_code: int = EXIT_ENGINE

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


def library_root() -> Path:
    """The folder that holds the ``MultimodalRegistrationLib`` package."""
    return Path(__file__).resolve().parents[2]


class WorkerJob:
    """One registration running in a child process, with progress, wait and cancel.

    ``python`` is the interpreter to start (``PythonSlicer`` inside Slicer); ``on_progress``
    and ``on_done`` are called from :meth:`poll` or :meth:`wait`, in the caller's thread.
    """

    def __init__(
        self,
        job: dict,
        python: str | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        module: str = "MultimodalRegistrationLib.process.worker",
    ):
        self.job = dict(job)
        self.module = module  # the child's entry point (``python -m module``)
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

        engine = "elastix" if event["stage"].startswith("elastix") else "ants"
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
            self.error = WorkerFailure(event["kind"], event["message"], event.get("hint", ""), codes.get(event["kind"], EXIT_ENGINE))
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
        for key in ("output_transform", "output_inverse", "output_volume", "summary"):
            if not self.job.get(key):
                continue
            folder = Path(self.job[key]).parent
            for partial in folder.glob(".partial-*"):
                if partial.stat().st_mtime >= self._started - 1:
                    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
