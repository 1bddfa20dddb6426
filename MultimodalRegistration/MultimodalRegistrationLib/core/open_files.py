"""How many files this process may hold open, raised when the system allows (a batch's workers need pipes)."""

from __future__ import annotations

try:
    import resource
except ImportError:  # Windows: no per-process soft limit to raise that subprocess pipes count against
    resource = None

# What a batch's parent holds open besides its workers' pipes: its own standard streams, the batch lock, the
# engine logs and images it reads while hashing and committing a case, Python's own.
BASE_FILES = 64
MACOS_OPEN_MAX = 10240  # macOS's OPEN_MAX: the usual kern.maxfilesperproc is higher, the soft limit no more
FILES_PER_WORKER = 3  # a warm worker's stdin and stdout pipes and its stderr log, measured on Linux


def files_for_workers(workers: int) -> int:
    return BASE_FILES + FILES_PER_WORKER * workers


def allow_open_files(needed: int) -> int | None:
    """Raise the soft limit on open files to ``needed`` if it is lower and the hard limit allows; return the limit
    now in force (None: no such limit). macOS starts programs at 256 and refuses a soft limit above
    kern.maxfilesperproc even under an unlimited hard limit: then the limit stays as it was."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None if soft == resource.RLIM_INFINITY else soft
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    for limit in dict.fromkeys((wanted, min(wanted, MACOS_OPEN_MAX))):  # macOS refuses more than its per-process cap
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        except (ValueError, OSError):
            continue
        return limit
    return soft
