"""Whether a process runs, and stopping a process with the processes it started, on POSIX and Windows.

``os.kill(pid, 0)`` asks POSIX whether a process exists; on Windows it terminates the process (any signal but
the console events calls TerminateProcess), so it must never be used there to ask.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

_STILL_ACTIVE = 259  # GetExitCodeProcess of a running process
_QUERY_LIMITED_INFORMATION = 0x1000


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's process counts as running)."""
    if os.name == "nt":
        import ctypes
        from ctypes import wintypes

        kernel = ctypes.WinDLL("kernel32", use_last_error=True)  # get_last_error reads the call's own error
        kernel.OpenProcess.restype = wintypes.HANDLE
        kernel.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        handle = kernel.OpenProcess(_QUERY_LIMITED_INFORMATION, False, int(pid))
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            return bool(kernel.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == _STILL_ACTIVE
        finally:
            kernel.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def own_group() -> dict:
    """Popen keywords that start a process in a group of its own, so that :func:`stop_tree` reaches whatever it
    starts in turn (Slicer's PythonSlicer is a launcher that runs the interpreter as its child)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def tree_alive(popen: subprocess.Popen) -> bool:
    """Whether a process started with :func:`own_group`, or any process in its group, still runs (POSIX; on
    Windows the process itself)."""
    if os.name == "nt":
        return popen.poll() is None
    try:
        os.killpg(popen.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return _group_runs(popen.pid)


def _group_runs(group: int) -> bool:
    """Whether a process of ``group`` runs, zombies not counted (an orphan waits there until its new parent reaps
    it, and a container's first process may never do so); True where /proc cannot tell."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # the name may hold spaces or parentheses
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(group) and fields[0] not in ("Z", "X"):
            return True
    return False


def stop_tree(popen: subprocess.Popen, force: bool = False) -> None:
    """Stop a process started with :func:`own_group` and the processes it started: SIGTERM (SIGKILL when
    ``force``) to its group on POSIX; ``taskkill /T`` on Windows."""
    if os.name == "nt":  # the tree, also when the launcher itself has ended; no console window from Slicer
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(popen.pid)], capture_output=True, check=False,
                       creationflags=subprocess.CREATE_NO_WINDOW)  # fmt: skip
        return
    popen.poll()  # reap a launcher that ended, so its group is judged by the processes it left
    try:
        os.killpg(popen.pid, signal.SIGKILL if force else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
