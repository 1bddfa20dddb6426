"""The files an output set replaces or removes, kept until the set has moved in whole (:class:`.files.OutputSet`).

Each is kept in a ``.replaced-<pid>-*`` folder beside it. On POSIX it is hard-linked there and stays in place, so
the new file replaces it in one step (a reader never finds the name empty) and a process killed meanwhile leaves
it as it was. On Windows it is moved there: a file another program holds open (Excel, a viewer) cannot be moved,
which stops the commit before anything changed (:func:`replace_path`), and a process killed after the moves
leaves its earlier files for the next run in that folder to put back (:func:`recover_replaced`).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from .errors import FileInUseError, InputError
from .processes import orphaned, own_tag
from .removal import remove_entry

REPLACED_PREFIX = ".replaced-"  # then the committing process id: <prefix><pid>-xxxx
FINISHED = ".finished"  # marks a .replaced-* folder whose commit had moved every new file in
OPEN_ELSEWHERE_WAIT_S = 2.0  # Windows: how long a move waits for a file another program holds open
_WINDOWS = os.name == "nt"


def replace_path(source: str | os.PathLike, target: str | os.PathLike, named: str | os.PathLike | None = None) -> None:
    """``os.replace(source, target)``; on Windows, where a file another program holds open (Excel, a viewer, a virus
    scan) can be neither replaced nor moved, retried for up to 2 s. Refused with an :class:`InputError` naming
    ``named`` (default ``target``) when it cannot be done (:class:`.errors.FileInUseError`)."""
    deadline, delay = time.monotonic() + OPEN_ELSEWHERE_WAIT_S, 0.05
    while True:
        try:
            os.replace(source, target)
            return
        except PermissionError as error:
            if not _WINDOWS:  # a folder's permissions, not another program
                raise InputError(f"cannot replace or move {named or target} ({error.strerror or error}): make its "
                                 "folder writable, and run again") from None  # fmt: skip
            if time.monotonic() > deadline:
                raise FileInUseError(f"cannot replace or move {named or target} ({error.strerror or error}): close it "
                                     "where it is open (Excel, a viewer) or make it writable, and run again") from None  # fmt: skip
            time.sleep(delay)
            delay = min(2 * delay, 0.4)


class Replaced:
    """The earlier files of one commit: :meth:`keep` them, then :meth:`finished` and :meth:`drop` (the set moved
    in) or :meth:`put_back` (it did not). A copy is ``l<n>-<name>`` when linked, ``m<n>-<name>`` when moved."""

    def __init__(self) -> None:
        self._folders: dict[Path, Path] = {}  # folder -> its .replaced-* folder
        self._kept: list[tuple[Path, Path]] = []  # (path, its earlier file's copy)

    def keep(self, paths: list[Path]) -> None:
        """Keep each existing path's file; all or none (a failure puts back what was kept and raises)."""
        try:
            for number, path in enumerate(paths):
                if not os.path.lexists(path):
                    continue
                if path.parent not in self._folders:  # one per folder: a move stays on its file system
                    self._folders[path.parent] = Path(
                        tempfile.mkdtemp(prefix=f"{REPLACED_PREFIX}{own_tag()}-", dir=path.parent)
                    )
                copy = self._folders[path.parent] / f"l{number}-{path.name}"
                if _WINDOWS or not _linked(path, copy):
                    copy = copy.with_name(f"m{number}-{path.name}")
                    replace_path(path, copy, path)
                self._kept.append((path, copy))
        except BaseException:
            self.put_back()
            raise

    def finished(self) -> None:
        """Every new file is in: what a killed process leaves now is not to be put back (:func:`recover_replaced`)."""
        for folder in self._folders.values():
            (folder / FINISHED).touch()

    def put_back(self) -> None:
        """Each kept file back at its path, in place of what the commit moved there; a copy that cannot go back
        stays in its folder, named in the error."""
        for folder in self._folders.values():  # a copy that cannot go back must stay recoverable
            (folder / FINISHED).unlink(missing_ok=True)
        stuck = []
        for path, copy in reversed(self._kept):
            try:
                replace_path(copy, path)  # Windows: waits for a virus scan of the new file to let go
            except (OSError, InputError):
                stuck.append(copy)
        self._kept.clear()
        if stuck:
            self._folders.clear()  # not dropped: they hold what could not go back
            raise OSError(f"the earlier {stuck[0].name.split('-', 1)[1]} could not be put back: it is {stuck[0]}")
        self.drop()

    def drop(self) -> None:
        for folder in self._folders.values():
            for entry in folder.iterdir() if folder.is_dir() else []:  # the mark goes last (a kill meanwhile)
                if entry.name != FINISHED:
                    remove_entry(entry, ignore_errors=True)  # the new files are in: a copy left is the next run's
            remove_entry(folder, ignore_errors=True)
        self._folders.clear()
        self._kept.clear()


def _linked(path: Path, copy: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        return False
    try:
        os.link(path, copy, follow_symlinks=False)
        return True
    except (OSError, NotImplementedError):  # a file system without hard links: moved instead
        return False


def recover_replaced(folder: str | os.PathLike) -> None:
    """Put back the earlier files that a process killed while committing had moved into ``folder``'s
    ``.replaced-*`` folders before its new files were all in (linked copies never left their place), then remove
    those folders. Each goes back over what took its name when that is the killed commit's own new file, written
    before the folder last changed (a Windows cancel, which nothing holds off, between two moves had left the new
    T.h5 beside the earlier T.json; a Windows review), not over a file saved there since. A copy that cannot go back
    (open elsewhere) keeps its folder, for the next run."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return
    for entry in entries:
        if not orphaned(entry.name, REPLACED_PREFIX) or not entry.is_dir():
            continue
        stuck = False
        if not (entry / FINISHED).exists():
            last_change = entry.stat().st_mtime_ns
            for copy in sorted(entry.iterdir()):
                moved = re.fullmatch(r"m\d+-(.+)", copy.name, re.DOTALL)  # not a link, nor a sidecar (._m0-T.h5)
                path = Path(folder) / moved.group(1) if moved else None
                if path is None or (os.path.lexists(path) and os.lstat(path).st_mtime_ns > last_change):
                    continue
                try:
                    if path.is_dir() and not path.is_symlink():  # os.replace does not replace a folder
                        remove_entry(path)
                    os.replace(copy, path)
                except OSError:
                    stuck = True
        if not stuck:
            remove_entry(entry, ignore_errors=True)
