"""A batch case's folder of results: what a run of the case writes there, and its earlier result kept aside.

While a case runs again (its inputs or options changed), its earlier result waits in ``.earlier``: dropped once the
case ends, put back when the run is stopped (a cancelled rerun deleted every finished result it had started, its
case.json then saying 'cancelled'; audit), and put back by the next batch when the stopped run could not (a dask
worker stopped with the batch, a batch killed outright). The batch keeps its own ``batch.csv`` and ``report.html``
aside the same way, in the output folder's ``.earlier``, while cases run (``names``: the files kept aside; ``finished``:
the file a run that ended writes last).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import InputError
from ..core.removal import remove_entry
from ..core.replaced import replace_path
from .manifest import CASE_FILES, COHORT_FILES, DONE

_RESULT_FILES = (*CASE_FILES.values(), "resampled.nrrd", "qa.html", DONE, "qa_figures")
EARLIER = ".earlier"  # a case folder's earlier result while the case runs again


def clear(folder: Path, names: tuple[str, ...] = _RESULT_FILES) -> None:
    """Remove what a run of this case wrote (a failed one), so that no stale file outlives a changed case."""
    for name in names:
        entry = folder / name
        remove_entry(entry, ignore_errors=entry.is_dir())


def set_aside(folder: Path, names: tuple[str, ...] = _RESULT_FILES, finished: str = DONE) -> Path:
    """Move the case's earlier result into ``.earlier`` (see the module notes); returns that folder."""
    recover_earlier(folder, names, finished)  # a batch killed while the case ran: its earlier result first
    earlier = folder / EARLIER
    try:
        earlier.mkdir()
    except FileExistsError:  # Windows: a file in it was open elsewhere, so it could not be removed
        raise InputError(f"cannot remove {earlier} (a file in it may be open in another program): close it or delete "
                         "the folder, and run again") from None  # fmt: skip
    try:
        for name in names:
            if (folder / name).exists():
                replace_path(folder / name, earlier / name, folder / name)
    except BaseException:
        restore(folder, earlier, ())  # what moved goes back: the folder as it was
        raise
    return earlier


def restore(folder: Path, earlier: Path, names: tuple[str, ...] = _RESULT_FILES) -> None:
    """Put the earlier result back in place of what the stopped run wrote."""
    clear(folder, names)
    for entry in earlier.iterdir():
        replace_path(entry, folder / entry.name)
    earlier.rmdir()


def recover_earlier(folder: Path, names: tuple[str, ...] = _RESULT_FILES, finished: str = DONE) -> None:
    """Put back a case's earlier result that a stopped run left aside (a dask worker stopped with the batch never
    reached its own restore; review): unless that run finished, its record is the one to keep."""
    earlier = folder / EARLIER
    if not earlier.is_dir():
        return
    if (folder / finished).exists():
        remove_entry(earlier, ignore_errors=True)
    else:
        restore(folder, earlier, names)


@contextmanager
def cohort_files_aside(output_dir: Path, case_folders: list[Path]) -> Iterator[None]:
    """While cases run, ``batch.csv`` and ``report.html`` (they describe results being redone) wait in ``.earlier``;
    a stopped run puts them back when no case's earlier record changed (a stopped rerun removed them; review),
    else drops them: a run that ends writes them again."""
    before = {folder: _record_bytes(folder) for folder in case_folders}
    earlier = set_aside(output_dir, COHORT_FILES, COHORT_FILES[0])
    try:
        yield
    except BaseException:
        if all(_record_bytes(folder) == kept for folder, kept in before.items() if kept is not None):
            restore(output_dir, earlier, COHORT_FILES)
        raise
    finally:
        remove_entry(earlier, ignore_errors=True)


def _record_bytes(folder: Path) -> bytes | None:
    try:
        return (folder / DONE).read_bytes()
    except OSError:
        return None
