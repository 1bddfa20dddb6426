"""Whether a process runs, and stopping a process with the processes it started, on POSIX and Windows.

``os.kill(pid, 0)`` asks POSIX whether a process exists; on Windows it terminates the process (any signal but
the console events calls TerminateProcess), so it must never be used there to ask.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

_STILL_ACTIVE = 259  # GetExitCodeProcess of a running process
_QUERY_LIMITED_INFORMATION = 0x1000
_KILL_ON_JOB_CLOSE = 0x2000  # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
_EXTENDED_LIMIT_INFORMATION = 9  # JobObjectExtendedLimitInformation
_BASIC_ACCOUNTING_INFORMATION = 1  # JobObjectBasicAccountingInformation


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


@functools.cache
def _place() -> str:
    """8 hex digits naming this host and PID namespace: where a process id means this process. Two runs sharing a
    folder from two containers (or two hosts on a network disk) had each taken the other's live files for a dead
    process's, and deleted them (a helper's sweep: a deformable run died after minutes)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha1(f"{socket.gethostname()}:{namespace}".encode()).hexdigest()[:8]


# Staged and partial files are named <prefix><pid>.<place>-xxxx (own_tag), so that orphaned() finds a dead writer's.
PARTIAL_PREFIX = ".partial-"


def own_tag() -> str:
    """What this process's scratch and partial files are named by: ``<pid>.<place>`` (:func:`orphaned` reads it)."""
    return f"{os.getpid()}.{_place()}"


def orphaned(name: str, prefix: str) -> bool:
    """Whether ``name`` is ``<prefix><pid>.<place>-...`` (or, as older runs named it, ``<prefix><pid>-...``) of a
    process that has ended: never this process's own, nor one of another host's or PID namespace's, which cannot be
    told from here."""
    match = re.match(re.escape(prefix) + r"(\d+)(?:\.([0-9a-f]{8}))?-", name)
    if match is None or (match.group(2) is not None and match.group(2) != _place()):
        return False
    return int(match.group(1)) != os.getpid() and not alive(int(match.group(1)))


def own_group() -> dict:
    """Popen keywords that start a process in a group of its own, so that :func:`stop_tree` reaches whatever it
    starts in turn (Slicer's PythonSlicer is a launcher that runs the interpreter as its child)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def tree_alive(popen: subprocess.Popen, job: int | None = None, kernel=None) -> bool:
    """Whether a process started with :func:`own_group`, or any process in its group, still runs (POSIX; on
    Windows any process of its ``job`` (:func:`end_with_this_process`), else the process itself)."""
    if os.name == "nt" or kernel is not None:
        running = job_runs(job, kernel)
        return popen.poll() is None if running is None else running
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


def stop_tree(popen: subprocess.Popen, force: bool = False, job: int | None = None, kernel=None) -> None:
    """Stop a process started with :func:`own_group` and the processes it started: SIGTERM (SIGKILL when
    ``force``) to its group on POSIX; on Windows every process of its ``job`` (:func:`end_with_this_process`),
    else ``taskkill /T``, which misses a child whose launcher has ended already."""
    if (os.name == "nt" or kernel is not None) and job is not None:
        try:
            if (kernel or _kernel32()).TerminateJobObject(job, 1):
                return
        except (AttributeError, OSError, ctypes.ArgumentError):
            pass
    if os.name == "nt":  # no console window from Slicer
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(popen.pid)], capture_output=True, check=False,
                       creationflags=subprocess.CREATE_NO_WINDOW)  # fmt: skip
        return
    popen.poll()  # reap a launcher that ended, so its group is judged by the processes it left
    try:
        os.killpg(popen.pid, signal.SIGKILL if force else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


class _BasicLimits(ctypes.Structure):  # JOBOBJECT_BASIC_LIMIT_INFORMATION
    _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                ("LimitFlags", ctypes.c_uint32), ("MinimumWorkingSetSize", ctypes.c_size_t),
                ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", ctypes.c_uint32),
                ("Affinity", ctypes.c_size_t), ("PriorityClass", ctypes.c_uint32), ("SchedulingClass", ctypes.c_uint32)]  # fmt: skip


class _ExtendedLimits(ctypes.Structure):  # JOBOBJECT_EXTENDED_LIMIT_INFORMATION (IO_COUNTERS: six 64-bit counts)
    _fields_ = [("BasicLimitInformation", _BasicLimits), ("IoInfo", ctypes.c_uint64 * 6),
                ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]  # fmt: skip


class _AccountingInformation(ctypes.Structure):  # JOBOBJECT_BASIC_ACCOUNTING_INFORMATION
    _fields_ = [("TotalUserTime", ctypes.c_int64), ("TotalKernelTime", ctypes.c_int64),
                ("ThisPeriodTotalUserTime", ctypes.c_int64), ("ThisPeriodTotalKernelTime", ctypes.c_int64),
                ("TotalPageFaultCount", ctypes.c_uint32), ("TotalProcesses", ctypes.c_uint32),
                ("ActiveProcesses", ctypes.c_uint32), ("TotalTerminatedProcesses", ctypes.c_uint32)]  # fmt: skip


def _kernel32():
    """kernel32 with the argument types of the job-object calls used here (Windows only)."""
    from ctypes import wintypes

    kernel = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel.CreateJobObjectW.restype = wintypes.HANDLE
    kernel.CreateJobObjectW.argtypes = (wintypes.LPVOID, wintypes.LPCWSTR)
    kernel.SetInformationJobObject.argtypes = (wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD)
    kernel.QueryInformationJobObject.argtypes = (wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD,
                                                 wintypes.LPVOID)  # fmt: skip
    kernel.AssignProcessToJobObject.argtypes = (wintypes.HANDLE, wintypes.HANDLE)
    kernel.TerminateJobObject.argtypes = (wintypes.HANDLE, wintypes.UINT)
    kernel.CloseHandle.argtypes = (wintypes.HANDLE,)
    return kernel


def job_runs(job: int | None, kernel=None) -> bool | None:
    """Whether any process of a job from :func:`end_with_this_process` still runs: the interpreter a PythonSlicer
    launcher started outlives the launcher for a moment, and a cancelled run's folder cannot be removed while it
    holds files there. None when there is no job or the system does not say."""
    if job is None:
        return None
    try:
        information = _AccountingInformation()
        if not (kernel or _kernel32()).QueryInformationJobObject(
                job, _BASIC_ACCOUNTING_INFORMATION, ctypes.byref(information), ctypes.sizeof(information), None):
            return None
        return information.ActiveProcesses > 0
    except (AttributeError, OSError, ctypes.ArgumentError):
        return None


def end_with_this_process(popen: subprocess.Popen, kernel=None) -> int | None:
    """Windows: put ``popen``'s process (and those it starts) in a job object that the system ends when this
    process ends, so that a crashed or killed Slicer leaves no worker computing (POSIX workers watch their parent:
    process.worker_side). Returns the job's handle, to hold while the process runs and give to
    :func:`release_job` after; None elsewhere or when the system refuses (the process then runs as before)."""
    if os.name != "nt" and kernel is None:
        return None
    try:
        kernel = kernel or _kernel32()
        job = kernel.CreateJobObjectW(None, None)
        if not job:
            return None
        limits = _ExtendedLimits()
        limits.BasicLimitInformation.LimitFlags = _KILL_ON_JOB_CLOSE
        done = kernel.SetInformationJobObject(job, _EXTENDED_LIMIT_INFORMATION, ctypes.byref(limits), ctypes.sizeof(limits))
        if not (done and kernel.AssignProcessToJobObject(job, int(popen._handle))):
            kernel.CloseHandle(job)
            return None
        return job
    except (AttributeError, OSError, TypeError, ValueError, ctypes.ArgumentError):
        return None


def release_job(job: int | None, kernel=None) -> None:
    """Close a handle from :func:`end_with_this_process` (what still runs in its job ends with it)."""
    if job is None:
        return
    try:
        (kernel or _kernel32()).CloseHandle(job)
    except (AttributeError, OSError, ctypes.ArgumentError):
        pass
