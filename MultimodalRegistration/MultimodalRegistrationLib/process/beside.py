"""The files a job writes beside its output transform: the engine's log (``--keep-log``: ``T.h5`` -> ``T.log``) and
the JSON record of how the result was made (``T.h5`` -> ``T.json``), so that every written transform has one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.files import stem_of, write_text_atomically
from ..core.output_safety import input_places, same_place


def _beside(output: str, suffix: str) -> str:
    """``output``'s folder and stem with ``suffix``: ``T.h5`` -> ``T.log``; ``T.nii.gz`` -> ``T.log``."""
    path = Path(output)
    return str(path.with_name(f"{stem_of(path)}{suffix}"))


def log_beside(output_transform: str) -> str:
    """Where ``--keep-log`` puts the engine's log: beside the output transform (``T.h5`` -> ``T.log``)."""
    return _beside(output_transform, ".log")


def _read_places(job: Any) -> list[Path]:
    """Every file ``job`` reads: its inputs (a detached header's data file too) and a custom preset file."""
    given = [getattr(job, name) for name in job.paths("input") if getattr(job, name)]
    preset = getattr(job, "preset", None)
    if preset and Path(preset).expanduser().is_file():
        given.append(str(Path(preset).expanduser()))
    return [place for path in given for place in input_places(path)]


def summary_beside(job: Any) -> str | None:
    """Where ``job``'s JSON record goes beside its output transform (``T.h5`` -> ``T.json``); None without an output
    transform, when that name is a file the job reads (an input, a custom preset: never overwritten) or a folder."""
    if not job.output_transform:
        return None
    summary = _beside(job.output_transform, ".json")
    # an ANTs preset my.json beside --output-transform my.h5 had been overwritten by the record (a helper's sweep)
    if Path(summary).is_dir() or any(same_place(Path(summary).resolve(), place) for place in _read_places(job)):
        return None
    return summary


def with_summary_beside(job: Any) -> Any:
    """``job`` with its JSON summary beside its output transform (:func:`summary_beside`) when it names none, so that
    every written transform records how it was made."""
    beside = summary_beside(job) if job.summary is None else None
    return job if beside is None else replace(job, summary=beside)


def copy_summary_beside(job: Any) -> str | None:
    """After a finished job whose summary went elsewhere (``--json other.json``), the same record beside its output
    transform too, so that an earlier run's ``T.json`` does not stay beside the new ``T.h5`` (a reviewer's
    walkthrough). Returns the path written, or None."""
    beside = summary_beside(job)
    if not (beside and job.summary and Path(job.summary).is_file()):
        return None
    if Path(beside).resolve() == Path(job.summary).resolve():
        return None
    write_text_atomically(beside, Path(job.summary).read_text(encoding="utf-8"))
    return beside
