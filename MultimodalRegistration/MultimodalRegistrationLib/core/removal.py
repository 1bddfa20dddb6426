"""Removing a file or a folder tree that may hold read-only entries: Windows will not delete a file with its
read-only attribute (a user's protected output, files copied from a disc), so such an earlier output stopped a
finished commit and then blocked its batch case (a Windows review). POSIX deletes them as they are."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path


def _writable_then(function, path, _error) -> None:
    os.chmod(path, stat.S_IWRITE)
    function(path)


def _onerror(function, path, _info) -> None:  # Python < 3.12
    _writable_then(function, path, None)


def remove_entry(path: str | os.PathLike, ignore_errors: bool = False) -> None:
    """Remove ``path`` (a file, a link or a folder tree), read-only entries too; nothing when it is not there.
    With ``ignore_errors`` what still cannot go stays (another program's open file on Windows)."""
    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            handler = {"onexc": _writable_then} if sys.version_info >= (3, 12) else {"onerror": _onerror}
            shutil.rmtree(path, **handler)
            return
        try:
            path.unlink(missing_ok=True)
        except PermissionError:
            os.chmod(path, stat.S_IWRITE)
            path.unlink(missing_ok=True)
    except OSError:
        if not ignore_errors:
            raise
