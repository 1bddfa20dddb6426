"""One batch at a time in an output folder: a lock file naming the batch that holds it.

Two batches writing into one folder (a cluster job submitted twice) cleared each other's case files and
overwrote each other's table, and reported cases as failed that had not failed. The second one is refused now
(exit 2, before it writes anything). A lock left by a batch that was killed (SIGKILL: no cleanup) on this
machine is taken over when its process no longer runs.
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


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def batch_lock(output_dir: Path) -> Iterator[None]:
    """Hold ``output_dir``'s lock while the block runs; :class:`InputError` if a running batch holds it."""
    path = Path(output_dir) / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(path)
            here = holder.get("host") == me["host"]
            if here and isinstance(holder.get("pid"), int) and not _running(holder["pid"]):
                path.unlink(missing_ok=True)  # its batch was killed: take the folder over
                continue
            who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('started', '?')}"
            raise InputError(
                f"another mmreg batch is writing into {output_dir} ({who}): wait for it to end, or give another "
                f"--output-dir; if no batch runs there any more, delete {path}"
            ) from None
        with os.fdopen(descriptor, "w") as file:
            json.dump(me, file)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
