"""A cohort manifest (CSV, one row per case) turned into :class:`.jobs.CaseJob` jobs, and what a case's
inputs hash to, so that a re-run skips the cases that are done and redoes those whose inputs changed.

Columns: ``case``, ``fixed``, ``moving`` (required), and ``fixed_mask``, ``moving_mask``,
``initial_transform``, ``fixed_points``, ``moving_points`` (QA's target points), ``engine``, ``preset``,
``init``; guidance: ``fixed_segmentation``, ``moving_segmentation``, ``segments``, ``metric``,
``guidance_weight``, ``guidance_fixed_points``, ``guidance_moving_points``.
Relative paths are read from the manifest's folder. An empty cell takes the batch's default.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core.errors import InputError
from ..core.records import Record
from ..core.version import __version__
from .jobs import CaseJob

REQUIRED = ("case", "fixed", "moving")
PATHS = ("fixed", "moving", "fixed_mask", "moving_mask", "initial_transform", "fixed_points", "moving_points",
         "fixed_segmentation", "moving_segmentation", "guidance_fixed_points", "guidance_moving_points")  # fmt: skip
CHOICES = ("engine", "preset", "init", "segments", "metric", "guidance_weight")
COLUMNS = REQUIRED + tuple(name for name in PATHS + CHOICES if name not in REQUIRED)
# What a case folder holds; ``case.json`` is written last, so a case is done only when it exists.
CASE_FILES = {"output_transform": "transform.h5", "summary": "summary.json", "qa": "qa.json",
              "checkerboard": "checkerboard.png"}  # fmt: skip
DONE = "case.json"
_CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CaseRecord(Record):
    """What became of one case: ``status`` is ok or failed; ``kind`` says how it failed (input, engine,
    internal, timeout, cancelled); ``hash`` is :func:`case_hash` of the job that ran. Seconds are wall time."""

    case: str
    status: str
    hash: str
    seconds: float = 0.0
    kind: str | None = None
    message: str | None = None
    attempts: int = 1
    outputs: dict = field(default_factory=dict)
    summary: dict | None = None
    qa: dict | None = None
    verdict: dict | None = None  # the case's own triage (:class:`..qa.triage.Verdict` as a dictionary)
    worker: dict | None = None  # the warm worker that ran it: pid, jobs, engines it imported for this case

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, record: dict) -> CaseRecord:
        return cls(**{f.name: record.get(f.name) for f in fields(cls) if f.name in record})


def read_manifest(
    path: str | os.PathLike, output_dir: str | os.PathLike, defaults: dict | None = None
) -> list[CaseJob]:
    """One :class:`CaseJob` per row of the manifest, writing into ``output_dir/<case>/``.

    ``defaults`` (engine, preset, init, seed, threads, stability, output_volume: bool) apply to every
    row; a row's own engine, preset or init win.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest not found: {path}: check the path")
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or []]
        rows = [{key.strip(): (value or "").strip() for key, value in row.items() if key} for row in reader]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(
            f"manifest {path.name} lacks the column(s) {', '.join(missing)}: its header needs case,fixed,moving"
        )
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise InputError(f"manifest {path.name} has unknown column(s) {', '.join(unknown)}: use {', '.join(COLUMNS)}")
    if not rows:
        raise InputError(f"manifest {path.name} has no cases: add one row per case")
    defaults = dict(defaults or {})
    output_volume = defaults.pop("output_volume", False)
    jobs, seen = [], set()
    for line, row in enumerate(rows, start=2):
        name = row.get("case", "")
        if not _CASE_NAME.match(name):
            raise InputError(
                f"manifest {path.name} line {line}: case name '{name}' must be letters, digits, '.', '_' or '-'"
            )
        if name in seen:
            raise InputError(
                f"manifest {path.name} line {line}: case '{name}' appears twice: give each case its own name"
            )
        seen.add(name)
        for required in ("fixed", "moving"):
            if not row.get(required):
                raise InputError(
                    f"manifest {path.name} line {line}: case '{name}' has no {required} image: fill the cell"
                )
        folder = Path(output_dir) / name
        options = {key: value for key, value in defaults.items() if value is not None}
        options.update({key: row[key] for key in CHOICES if row.get(key)})
        if "guidance_weight" in options:
            options["guidance_weight"] = _number(options["guidance_weight"], path.name, line)
        inputs = {key: str((path.parent / row[key]).resolve()) for key in PATHS if row.get(key)}
        outputs = {key: str(folder / file) for key, file in CASE_FILES.items()}
        if output_volume:
            outputs["output_volume"] = str(folder / "resampled.nrrd")
        jobs.append(CaseJob(case=name, **inputs, **outputs, **options).resolved())
    return jobs


def _number(text, manifest: str, line: int) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise InputError(
            f"manifest {manifest} line {line}: guidance_weight '{text}' is not a number: give e.g. 1"
        ) from None


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def case_hash(job: CaseJob) -> str:
    """A hash of what decides a case's result: its options, the library version and each input's bytes.

    Output paths and the scratch folder are left out, so moving the output folder changes nothing.
    """
    record = {key: value for key, value in job.to_json().items() if key not in CaseJob.paths("output") + ("workdir",)}
    for key in CaseJob.paths("input"):
        if record.get(key):
            record[key] = _file_digest(record[key]) if Path(record[key]).is_file() else f"missing:{record[key]}"
    record["library_version"] = __version__
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def read_done(folder: Path) -> CaseRecord | None:
    """The record of a finished case in ``folder``, or None if the case has not finished."""
    try:
        return CaseRecord.from_dict(json.loads((folder / DONE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
