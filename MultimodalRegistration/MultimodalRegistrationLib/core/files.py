"""Writing files so that a failed, cancelled or killed run leaves nothing half-written behind.

Scratch folders and partial files carry the id of the process that made them. A process killed
with SIGKILL cannot clean up after itself, so the next run removes what dead processes left.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

PARTIAL_PREFIX = ".partial-"  # then the writing process id: <prefix><pid>-xxxx
# Extensions of two parts that name one format.
DOUBLE_SUFFIXES = (".nii.gz",)
# Image headers whose voxels are in a data file of their own.
DETACHED_SUFFIXES = (".nhdr", ".mhd")

# Image files ITK reads and writes (volumes, 2D images, displacement fields); ".nii.gz" is one suffix.
VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")

# Files of one 2D picture (microscopy, histology, photographs); read by core/images2d.py.
RASTER_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def suffix_of(path: str | os.PathLike) -> str:
    """The lower-case extension of ``path``, ``.nii.gz`` counted as one (``""`` for none)."""
    name = Path(path).name.lower()
    return next((double for double in DOUBLE_SUFFIXES if name.endswith(double)), Path(name).suffix)


def stem_of(path: str | os.PathLike) -> str:
    """The file name of ``path`` without its extension (``T.nii.gz`` -> ``T``)."""
    name = Path(path).name
    return name[: len(name) - len(suffix_of(path))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner(name: str, prefix: str) -> int | None:
    match = re.match(re.escape(prefix) + r"(\d+)-", name)
    return int(match.group(1)) if match else None


def remove_orphans(folder: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the entries of ``folder`` named ``<prefix><pid>-...`` whose process has died; returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid = _owner(entry.name, prefix)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def scratch_folder(prefix: str) -> Path:
    """A new temporary folder ``<prefix><pid>-xxxx``, after removing those of dead processes."""
    remove_orphans(tempfile.gettempdir(), prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def _finish(tmp: str) -> None:
    # mkstemp and mkdtemp make owner-only files; give the result the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _write_detached_atomically(path: Path, write: Callable[[str], None]) -> None:
    """A header and its data file (``.nhdr`` + ``.raw.gz``, ``.mhd`` + ``.raw``): written under their final
    names in a partial folder, so that the header names the final data file; data moved first, header last."""
    folder = tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{os.getpid()}-", dir=path.parent)
    try:
        write(str(Path(folder) / path.name))
        written = sorted(Path(folder).iterdir(), key=lambda entry: entry.name == path.name)
        for entry in written:
            _finish(str(entry))
            os.replace(entry, path.parent / entry.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the finished file onto ``path`` in one step.

    A detached header (``.nhdr``, ``.mhd``) is written beside its data file under their final names, the
    data file moved into place first: the header never names a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent, PARTIAL_PREFIX)
    if suffix_of(path) in DETACHED_SUFFIXES:
        _write_detached_atomically(path, write)
        return
    # Keep the full suffix (.nii.gz), in its own case, so the writer picks the right format.
    suffix = path.name[len(stem_of(path)) :] or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{os.getpid()}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _finish(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` in one step (:func:`write_atomically`)."""
    write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
