"""Writing files so that a failed, cancelled or killed run leaves nothing half-written behind.

Scratch folders and partial files carry the id of the process that made them. A process killed
with SIGKILL cannot clean up after itself, so the next run removes what dead processes left.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import EngineError, InputError
from .interruptible import SIGNALS
from .processes import PARTIAL_PREFIX, orphaned, own_tag
from .replaced import Replaced, recover_replaced, replace_path

# Longest file or folder name (bytes) that common file systems (ext4, APFS, NTFS) accept (core.name_lengths).
NAME_MAX_BYTES = 255
_MKDTEMP_RANDOM = 8  # characters tempfile.mkdtemp adds to its prefix
# Extensions of two parts that name one format.
DOUBLE_SUFFIXES = (".nii.gz",)

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


def remove_orphans(folder: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the entries of ``folder`` named ``<prefix><pid>-...`` whose process has died; returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not orphaned(entry.name, prefix):
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
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{own_tag()}-")).resolve()  # as resolved job paths name it


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """:func:`scratch_folder`, removed at the end: one a killed process leaves is named by its pid, so the next
    run removes it (a TemporaryDirectory's random name outlived a stability run stopped at its time-out)."""
    folder = scratch_folder(prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _finish(tmp: str, mode: int = 0o666) -> None:
    # mkstemp and mkdtemp make owner-only files; give the result the usual permissions (cosmetic: some network
    # shares refuse chmod, which must not undo a finished set).
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, mode & ~umask)
    except OSError:
        pass


def partial_folder(parent: Path, name: str = "") -> Path:
    """A new folder ``<PARTIAL_PREFIX><pid>.<place>-<name>xxxx`` in the existing ``parent``, to stage files in:
    named by this process, so that a later run, or the worker's owner once it has died, removes it
    (:func:`remove_orphans`) when this process is killed before it is moved into place or removed. Call it with
    signals held (:func:`signals_held`), noting the folder in the same step."""
    prefix = f"{PARTIAL_PREFIX}{own_tag()}-"
    # ``name`` cut so that a legal name stays legal staged (a 228-byte pictures' folder had been refused as too long)
    room = NAME_MAX_BYTES - len(prefix) - _MKDTEMP_RANDOM
    name = name.encode()[: max(room, 0)].decode(errors="ignore")
    folder = Path(tempfile.mkdtemp(prefix=prefix + name, dir=parent))
    _finish(str(folder), 0o777)  # it may become an output folder itself (QA's pictures)
    return folder


_COMMITTED: list[Path] = []  # files this process moved into place (core.files.OutputSet), for what a stop says


def committed() -> list[Path]:
    """The output files this process has moved into place so far (a stopped run says it wrote them)."""
    return list(_COMMITTED)


def file_states(paths: list[Path]) -> dict[Path, tuple | None]:
    """Each path's file as it is now (None: no file), to tell later whether another process replaced it."""
    states: dict[Path, tuple | None] = {}
    for path in paths:
        try:
            found = path.stat()
            states[path] = (found.st_ino, found.st_mtime_ns, found.st_size) if path.is_file() else None
        except OSError:
            states[path] = None
    return states


def note_written(before: dict[Path, tuple | None]) -> list[Path]:
    """The files of ``before`` (:func:`file_states`) that have been written since, counted as this process's
    outputs (:func:`committed`): a worker moved them into place, then was stopped before it said so. Compared with
    their states, not the clock: an earlier run's files written a second before had been counted (a sweep)."""
    written = [path for path, state in file_states(list(before)).items() if state is not None and state != before[path]]
    _COMMITTED.extend(path for path in written if path not in _COMMITTED)
    return written


@contextmanager
def signals_held() -> Iterator[None]:
    """The stop signals (SIGINT, SIGTERM, SIGHUP, SIGBREAK) held back while the block runs, then delivered: for steps
    that must not be cut in two, such as moving a set of finished files into place. Python handles a signal in the
    main thread whichever thread the system gave it to (numpy's BLAS threads take them: blocking them in one thread
    held nothing; review), so the main thread's handlers are swapped for ones that note the signal, which is raised
    again once the block ends. In another thread (no handlers can be set there) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = {}
    for number in SIGNALS:  # SIGHUP too: a logout had cut a commit in two
        handler = signal.getsignal(number)
        if handler in (signal.SIG_IGN, None):  # ignored stays ignored; a handler not set from Python is left
            continue
        previous[number] = handler
        signal.signal(number, lambda received, frame: noted.append(received))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(noted):
            signal.raise_signal(number)


def raise_disk_trouble(error: Exception, folder: Path) -> None:
    """Raise :class:`DiskError` when a full disk or a limit stopped a write: judged here, while the partial file still
    fills the disk (once removed, the disk had room again and the run said "this is a bug"; review)."""
    if isinstance(error, (InputError, EngineError)):
        return
    from .write_trouble import disk_error

    disk = disk_error(error, [folder])
    if disk is not None:
        raise disk from error


class OutputSet:
    """Output files that appear together or not at all.

    Each file is written (``write(tmp_path)``) under its final name in a partial folder beside its place; at
    the end of the ``with`` block all are moved into place in one step, with SIGINT and SIGTERM held back, and an
    error or a cancel before that removes them: a run stopped while writing leaves the earlier run's files as
    they were (audit: a new T.h5 beside an earlier run's R.nrrd and summary). A detached header (``.nhdr``,
    ``.mhd``) is moved after its data file, so it never names a partial file.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (partial folder, final path)
        self._removed: list[Path] = []  # files an earlier run left that this one replaces with nothing
        self._made: list[Path] = []  # folders made for the outputs, removed again when the set leaves them empty

    def make_folder(self, folder: Path) -> None:
        """Make ``folder`` and its missing parents, to be removed again when nothing is moved into them (a run that
        failed while writing had left its new output folders behind, empty; a helper's sweep)."""
        missing = [parent for parent in [folder, *folder.parents] if not parent.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self._made.extend(missing)  # deepest first

    def write(self, path: str | os.PathLike, write: Callable[[str], None]) -> None:
        path = Path(path)
        self.make_folder(path.parent)
        remove_orphans(path.parent, PARTIAL_PREFIX)
        recover_replaced(path.parent)
        with signals_held():  # a signal between making the folder and noting it would leave it behind
            folder = partial_folder(path.parent)
            self._staged.append((folder, path))
        try:
            write(str(folder / path.name))
        except (OSError, RuntimeError) as error:
            raise_disk_trouble(error, folder)
            raise

    def remove(self, path: str | os.PathLike) -> None:
        """Remove ``path`` when the set is moved into place (a file of an earlier run that this one does not make)."""
        self._removed.append(Path(path))

    def commit(self) -> None:
        try:
            moves = [(entry, path.parent / entry.name) for folder, path in self._staged
                     for entry in sorted(folder.iterdir(), key=lambda entry: entry.name == path.name)]  # fmt: skip
            targets = [target for _, target in moves] + self._removed
            blocked = [str(path) for path in targets if path.is_dir() and not path.is_symlink()]
            if blocked:  # checked before any move: a commit either moves every file or none
                raise OSError(f"cannot write {blocked[0]}: it is a folder")
            with signals_held():
                earlier = Replaced()
                earlier.keep(targets)
                moved_in: list[tuple[Path, Path]] = []
                try:
                    for entry, target in moves:
                        _finish(str(entry))
                        replace_path(entry, target)  # on Windows a virus scan holds a file just written
                        moved_in.append((entry, target))
                    earlier.finished()
                    for path in self._removed:
                        path.unlink(missing_ok=True)
                except BaseException:  # put everything back: the set moves in whole or not at all
                    for entry, target in reversed(moved_in):
                        try:
                            os.replace(target, entry)
                        except OSError:
                            continue
                    earlier.put_back()
                    raise
                earlier.drop()
                # a set written into another set's partial folder is not in place until that set is
                _COMMITTED.extend(path for _, path in self._staged if not path.parent.name.startswith(PARTIAL_PREFIX))
                # within the hold: a stop raised as it ends had cut this short, leaving empty partial folders behind
                self.discard()
        finally:
            self.discard()

    def discard(self) -> None:
        for folder, _ in self._staged:
            shutil.rmtree(folder, ignore_errors=True)
        for folder in sorted(self._made, key=lambda made: len(made.parts), reverse=True):  # only empty ones go
            try:
                folder.rmdir()
            except OSError:
                continue
        self._staged.clear()
        self._removed.clear()
        self._made.clear()

    def __enter__(self) -> OutputSet:  # noqa: PYI034 (typing.Self is 3.11+)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the finished file onto ``path`` in one step (an :class:`OutputSet` of one;
    a detached header with its data file)."""
    with OutputSet() as outputs:
        outputs.write(path, write)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` in one step (:func:`write_atomically`)."""
    write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
