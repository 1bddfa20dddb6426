"""Removing a file or a folder tree that may hold read-only entries: Windows will not delete a file with its
read-only attribute (a user's protected output, files copied from a disc), so such an earlier output stopped a
finished commit and then blocked its batch case (a Windows review). POSIX deletes them as they are, and its
permission errors (a read-only folder) are left as they are: a mode changed there would outlive the failure."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

_WINDOWS = os.name == "nt"


def _writable_then(function, path, error: BaseException) -> None:
    """``function(path)`` again once ``path`` is writable, on Windows, for a removal that a read-only entry stopped
    (``error``, raised again otherwise)."""
    if not (_WINDOWS and isinstance(error, PermissionError) and function in (os.unlink, os.remove, os.rmdir)):
        raise error
    os.chmod(path, os.lstat(path).st_mode | stat.S_IWRITE)
    function(path)


def remove_entry(path: str | os.PathLike, ignore_errors: bool = False) -> None:
    """Remove ``path`` (a file, a link or a folder tree), read-only entries too; nothing when it is not there.
    With ``ignore_errors`` what still cannot go stays (another program's open file on Windows), and the rest goes."""

    def handler(function, entry, error) -> None:
        try:
            _writable_then(function, entry, error)
        except OSError:
            if not ignore_errors:
                raise

    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            if sys.version_info >= (3, 12):
                shutil.rmtree(path, onexc=handler)
            else:
                shutil.rmtree(path, onerror=lambda function, entry, info: handler(function, entry, info[1]))
            return
        try:
            path.unlink(missing_ok=True)
        except PermissionError as error:
            _writable_then(os.unlink, path, error)
    except OSError:
        if not ignore_errors:
            raise
