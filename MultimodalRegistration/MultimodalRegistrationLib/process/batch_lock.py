"""One batch at a time in an output folder: an operating-system lock on a file naming the batch that holds it.

Two batches writing into one folder (a cluster job submitted twice) cleared each other's case files and
overwrote each other's table, and reported cases as failed that had not failed. The second one is refused now
(exit 2, before it writes anything). The lock is the operating system's (``flock`` on POSIX, ``msvcrt`` on
Windows): a batch that was killed (SIGKILL: no cleanup) holds nothing, so its folder is free at once, and two
batches cannot both take a folder over, as they could when a lock was a file's existence and a dead
holder's file was deleted by whoever came next.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import InputError

LOCK_NAME = ".mmreg-batch.lock"
_WINDOWS_LOCK_OFFSET = 1 << 20  # msvcrt locks bytes against reading too: lock one far past the holder's text


def _try_lock(descriptor: int) -> bool:
    """Take the descriptor's file lock without waiting; False if another open file holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (some cluster file systems): run unguarded, as before the lock
        return True
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _still_the_file(descriptor: int, path: Path) -> bool:
    """Whether ``path`` still names the file we locked (a finishing batch removes it as it lets go)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _refusal(output_dir: Path, path: Path) -> InputError:
    holder = _holder(path)
    who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('started', '?')}"
    return InputError(
        f"another mmreg batch is writing into {output_dir} ({who}): wait for it to end, or give another "
        f"--output-dir"
    )


@contextmanager
def batch_lock(output_dir: Path) -> Iterator[None]:
    """Hold ``output_dir``'s lock while the block runs; :class:`InputError` if a running batch holds it."""
    path = Path(output_dir) / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    while True:
        descriptor = os.open(path, os.O_CREAT | os.O_RDWR)
        if not _try_lock(descriptor):
            os.close(descriptor)
            raise _refusal(output_dir, path)
        if _still_the_file(descriptor, path):
            break
        os.close(descriptor)  # locked a file its batch removed while letting go: lock the one there now
    try:
        os.ftruncate(descriptor, 0)
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, json.dumps(me).encode())
        yield
    finally:
        try:
            path.unlink()  # while still held, so a batch waiting on this file sees it go and locks afresh
            removed = True
        except OSError:
            removed = False  # Windows keeps an open file; the next batch locks it as it is
        os.close(descriptor)
        if not removed:
            try:
                path.unlink()  # closed now (fails harmlessly if another batch has opened it meanwhile)
            except OSError:
                pass
