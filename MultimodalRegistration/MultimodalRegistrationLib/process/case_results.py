"""A batch case's folder of results: what a run of the case writes there, and its earlier result kept aside.

While a case runs again (its inputs or options changed), its earlier result waits in ``.earlier``: dropped once the
case ends, put back when the run is stopped (a cancelled rerun deleted every finished result it had started, its
case.json then saying 'cancelled'; audit), and put back by the next batch when the stopped run could not (a dask
worker stopped with the batch, a batch killed outright).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .manifest import CASE_FILES, DONE

_RESULT_FILES = (*CASE_FILES.values(), "resampled.nrrd", "qa.html", DONE, "qa_figures")
EARLIER = ".earlier"  # a case folder's earlier result while the case runs again


def clear(folder: Path) -> None:
    """Remove what a run of this case wrote (a failed one), so that no stale file outlives a changed case."""
    for name in _RESULT_FILES:
        entry = folder / name
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def set_aside(folder: Path) -> Path:
    """Move the case's earlier result into ``.earlier`` (see the module notes); returns that folder."""
    recover_earlier(folder)  # a batch killed while the case ran: its earlier result first
    earlier = folder / EARLIER
    earlier.mkdir()
    for name in _RESULT_FILES:
        if (folder / name).exists():
            (folder / name).rename(earlier / name)
    return earlier


def restore(folder: Path, earlier: Path) -> None:
    """Put the earlier result back in place of what the stopped run wrote."""
    clear(folder)
    for entry in earlier.iterdir():
        entry.rename(folder / entry.name)
    earlier.rmdir()


def recover_earlier(folder: Path) -> None:
    """Put back a case's earlier result that a stopped run left aside (a dask worker stopped with the batch never
    reached its own restore; review): unless that run finished, its record is the one to keep."""
    earlier = folder / EARLIER
    if not earlier.is_dir():
        return
    if (folder / DONE).exists():
        shutil.rmtree(earlier, ignore_errors=True)
    else:
        restore(folder, earlier)
