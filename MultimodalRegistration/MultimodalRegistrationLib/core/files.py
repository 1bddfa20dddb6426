"""Writing files so that a failed or cancelled run leaves nothing half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the finished file onto ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    # Keep the full suffix (.nii.gz) so the writer picks the right format.
    suffix = ".nii.gz" if name.endswith(".nii.gz") else (path.suffix or ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes owner-only files; give the result the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
