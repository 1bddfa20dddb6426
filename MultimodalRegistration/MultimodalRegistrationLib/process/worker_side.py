"""The worker side of the protocol in :mod:`.worker`: what runs inside the child process.

One job per process (:func:`main`), or one job after another in a warm worker (:mod:`.warm_worker`), each
through :func:`run_one`: the job's JSON record in, its events out as JSON lines, an exit code.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from ..core.errors import EXIT_ENGINE, EXIT_INPUT, EXIT_OK, EXIT_TERMINATED, EngineError, FileInUseError, InputError
from ..core.memory import OUT_OF_MEMORY_HINT
from ..core.processes import alive
from ..core.write_trouble import disk_error
from .jobs import Job
from .results import JobResult


def protocol() -> Callable[[dict], None]:
    """The event writer of a worker process. Engines print to C-level stdout, so the protocol keeps
    a private copy of stdout and everything else printed goes to stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event: dict) -> None:
        stream.write(json.dumps(event) + "\n")
        stream.flush()

    return emit


def run_one(job_type: type[Job], run: Callable[[Job, Callable[[dict], None]], JobResult], record: dict, emit) -> int:
    """Run one job from its JSON record; errors become error events whose message, hint and log path
    are separate fields. Returns the exit code the job ends with."""
    try:
        job = job_type.from_json(record)
        emit(run(job, emit).event())
        return EXIT_OK
    except InputError as error:  # a file held open elsewhere: the same job may pass later ("busy")
        kind = "busy" if isinstance(error, FileInUseError) else "input"
        emit({"event": "error", "kind": kind, "message": str(error), "hint": ""})
        return EXIT_INPUT
    except EngineError as error:
        emit({"event": "error", "kind": error.kind, "message": str(error), "hint": error.hint, "log": error.log_path})
        return EXIT_ENGINE
    except MemoryError as error:  # had read "this is a bug" with a traceback (numpy under ulimit -v, a helper's sweep)
        emit({"event": "error", "kind": "memory", "message": f"out of memory{f': {error}' if str(error) else ''}",
              "hint": OUT_OF_MEMORY_HINT})  # fmt: skip
        return EXIT_ENGINE
    except Exception as error:  # a crash must still reach the parent as a clear error
        disk = disk_error(error)  # writing the outputs (ITK's NRRD writer: "couldn't write gzip data")
        if disk is not None:
            emit({"event": "error", "kind": disk.kind, "message": str(disk), "hint": disk.hint})
            return EXIT_ENGINE
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


def main(job_type: type[Job], run: Callable[[Job, Callable[[dict], None]], JobResult]) -> NoReturn:
    """Entry point of a one-job worker process: a ``job_type`` job as JSON on stdin, JSON lines on stdout.
    Ends the process itself (:func:`exit_now`) once the job's outcome is out."""
    stop_with_parent()
    emit = protocol()
    exit_now(run_one(job_type, run, json.loads(sys.stdin.read()), emit))


def exit_now(code: int) -> NoReturn:
    """End a worker process once everything it says is out: flush, then exit without the interpreter's
    teardown, which with an engine loaded (ITK's ~100k wrapper objects) took 0.5 s after the job had ended.
    Its files are written and closed by then (atomically, :mod:`..core.files`)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stop_with_parent() -> None:
    """Die with the parent, and leave Ctrl-C to it.

    Engines hold the GIL, so no Python handler or watcher thread would run in time: on Linux the
    kernel sends this process SIGTERM (default action: exit at once) when the parent dies (strictly: when
    the parent's thread that started it ends, so start workers from a long-lived thread); on Windows the
    parent put this process in a job object that ends with it (core.processes.end_with_this_process); elsewhere
    (macOS) a watcher process stops it (:func:`watch_parent`). Ctrl-C
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
    # The parent died before the request took effect. Slicer's PythonSlicer is a launcher that runs the interpreter
    # as its child, so the direct parent may be that launcher: ask whether the parent that started us still runs
    # (comparing the parent's id alone stopped every worker in Slicer at once; audit).
    if os.getppid() != parent and not alive(parent):
        os._exit(EXIT_TERMINATED)
    if os.name == "posix" and not sys.platform.startswith("linux"):  # macOS has no parent-death signal
        watch_parent(parent, os.getpid(), os.getpgrp())


# Run by its own interpreter (engines hold the worker's GIL): ends the worker's process group when the parent ends.
PARENT_WATCH = """
import os, signal, sys, time
from MultimodalRegistrationLib.core.processes import alive
parent, worker, group = map(int, sys.argv[1:4])
while alive(worker):
    if not alive(parent):
        try:
            os.killpg(group, signal.SIGTERM)
        except OSError:
            os.kill(worker, signal.SIGTERM)
        break
    time.sleep(1.0)
"""


def watch_parent(parent: int, worker: int, group: int):
    """Start a small process that stops ``worker``'s process ``group`` within a second of ``parent`` ending, and ends
    itself with the worker (POSIX without Linux's parent-death signal: a crashed Slicer left its workers running).
    Returns its Popen."""
    import subprocess
    from pathlib import Path

    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                                os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", PARENT_WATCH, str(parent), str(worker), str(group)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=environment)  # fmt: skip
