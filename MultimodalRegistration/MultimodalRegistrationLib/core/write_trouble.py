"""Why writing a file failed, when the cause is the disk or a limit: a full disk, a used-up quota, a file-size limit.

Said as such, not as a bug or a bad input: ITK's writers say only that they could not write (NRRD: "couldn't
write gzip data"), elastix leaves a result file cut short, and ANTs blames its own scratch file (a helper's sweep
of full disks and ``ulimit -f``).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import DiskError
from .processes import PARTIAL_PREFIX

DISK_HINT = ("free some space, or write the outputs to another disk (the engines' scratch files go to the "
             "temporary folder: set TMPDIR to move it)")  # fmt: skip
# A disk with less than this free, read when a write failed (its partial file still there), is taken for full: a
# merely small one (a 40 MB empty tmpfs) had been called full when a missing folder stopped the write (review).
LOW_FREE_BYTES = 16 * 2**20
_BLOCK = 64 * 2**10  # a file within this of the file-size limit reached it

_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EFBIG: "a file grew past this process's file-size limit"}  # fmt: skip
_SAID = {"no space left on device": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT, "file too large": errno.EFBIG}
_WRITING = ("error writing", "couldn't write", "could not write", "fwrite wrote only", "write failed",
            "not written whole")  # fmt: skip
_OTHER_CAUSES = ("no such file or directory", "permission denied", "read-only file system", "is a directory")
_STAGING = (PARTIAL_PREFIX, "mmreg-")  # the staging folders; the scratch folders (core.files.scratch)
_PATH = re.compile(r"(?:[A-Za-z]:\\|/)[^\s'\"():]+")


def write_trouble(error: BaseException, folders: Iterable[str | os.PathLike] = ()) -> str | None:
    """What stopped a write, as a message naming it, or None when the disk and the limits are not the cause.

    Call it where the write failed, before its partial files are removed. An error that says it could not write,
    and names no other cause, is checked against this process's file-size limit (a file it names, or a file in
    ``folders``, at the limit) and the free space of the disks it names, of ``folders`` and of the temporary
    folder."""
    text = str(error)
    lowered = text.lower()
    code = getattr(error, "errno", None)
    code = code if code in _ERRNOS else next((c for said, c in _SAID.items() if said in lowered), None)
    if code is not None:
        return f"{_ERRNOS[code]}: {text}"
    if not any(phrase in lowered for phrase in _WRITING) or any(other in lowered for other in _OTHER_CAUSES):
        return None
    named = [Path(path) for path in _PATH.findall(text)]
    places = [*map(Path, folders), *(path.parent for path in named)]
    limit = _file_size_limit()
    if limit is not None and any(_at_limit(file, limit) for file in [*named, *_files_in(places)]):
        return f"a file could not be written past this process's file-size limit ({limit} bytes, ulimit -f): {text}"
    for folder in [*(_users_folder(path) for path in named), *map(Path, folders), Path(tempfile.gettempdir())]:
        free = _free_bytes(folder)
        if free is not None and free < LOW_FREE_BYTES:
            return f"the disk holding {folder} is full ({free / 2**20:.0f} MB free): {text}"
    return None


def disk_error(error: BaseException, folders: Iterable[str | os.PathLike] = ()) -> DiskError | None:
    """:func:`write_trouble` as the error to report (exit 1, kind "disk", :data:`DISK_HINT`), or None."""
    trouble = write_trouble(error, folders)
    return None if trouble is None else DiskError(trouble, hint=DISK_HINT)


def _at_limit(file: Path, limit: int) -> bool:
    try:
        return file.is_file() and file.stat().st_size >= limit - _BLOCK
    except OSError:
        return False


def _files_in(folders: list[Path]) -> list[Path]:
    """The files directly in ``folders`` and in the staging folders inside them (where a failed write left its part)."""
    found = []
    for folder in folders:
        try:
            for entry in folder.iterdir():
                inner = entry.iterdir() if entry.is_dir() and entry.name.startswith(PARTIAL_PREFIX) else [entry]
                found.extend(inner)
        except OSError:
            continue
    return found


def _users_folder(path: Path) -> Path:
    """The folder of ``path`` that a user knows: above the staging and scratch folders mmreg writes through."""
    parts = path.parts[:-1]
    cut = next((i for i, part in enumerate(parts) if part.startswith(_STAGING)), len(parts))
    return Path(*parts[:cut]) if cut else path.parent


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _free_bytes(folder: Path) -> int | None:
    """Free bytes on the disk of ``folder`` or of its nearest existing parent; None when none can be read."""
    for candidate in [folder, *folder.parents]:
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None
