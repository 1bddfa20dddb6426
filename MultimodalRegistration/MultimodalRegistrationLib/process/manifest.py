"""A cohort manifest (CSV, one row per case) turned into :class:`.jobs.CaseJob` jobs, and what a case's
inputs hash to, so that a re-run skips the cases that are done and redoes those whose inputs changed.

Columns: ``case``, ``fixed``, ``moving`` (required), and ``fixed_mask``, ``moving_mask``,
``initial_transform``, ``fixed_points``, ``moving_points`` (QA's target points), ``engine``, ``preset``,
``init``; guidance: ``fixed_segmentation``, ``moving_segmentation``, ``segments``, ``metric``,
``guidance_weight``, ``guidance_fixed_points``, ``guidance_moving_points``.
Relative paths are read from the manifest's folder. An empty cell takes the batch's default.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError
from ..core.records import Record
from ..core.version import __version__
from ..qa.report_types import QAReport
from ..qa.triage import Verdict
from ..registration.summary import RegistrationSummary
from .jobs import CaseJob, option_fields
from .results import JobOutputs

REQUIRED = ("case", "fixed", "moving")
PATHS = CaseJob.paths("input")  # a case's input files
CHOICES = tuple(f.name for f in option_fields(CaseJob) if f.metadata["cli"].get("column"))  # a case's own choices
NUMBERS = {f.name for f in option_fields(CaseJob) if f.name in CHOICES and "float" in str(f.type)}
COLUMNS = REQUIRED + tuple(name for name in PATHS + CHOICES if name not in REQUIRED)
# What a case folder holds; ``case.json`` is written last, so a case is done only when it exists.
CASE_FILES = {"output_transform": "transform.h5", "summary": "summary.json", "qa": "qa.json",
              "checkerboard": "checkerboard.png"}  # fmt: skip
DONE = "case.json"
_CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CaseRecord(Record):
    """What became of one case: ``status`` is ok or failed; ``kind`` says how it failed (input, engine,
    internal, timeout, cancelled); ``hash`` is :func:`case_hash` of the job that ran. Seconds are wall time.
    ``outputs`` are relative to the case's folder; ``summary``, ``qa`` and ``verdict`` (the case's own triage)
    are None for a failed case (a failed case has a verdict)."""

    case: str
    status: str
    hash: str
    seconds: float = 0.0
    kind: str | None = None
    message: str | None = None
    attempts: int = 1
    outputs: JobOutputs = field(default_factory=JobOutputs)
    summary: RegistrationSummary | None = None
    qa: QAReport | None = None
    verdict: Verdict | None = None
    worker: dict | None = None  # the warm worker that ran it: pid, jobs, engines it imported for this case


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
    check_output_folder(output_dir)
    text = _manifest_text(path)
    first = text.split("\n", 1)[0]
    # A spreadsheet set to a comma-decimal locale saves ';' (or tabs): read the separator the header uses.
    delimiter = next((mark for mark in ";\t" if mark in first and "," not in first), ",")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
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
    jobs, seen, checked = [], set(), set()
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
        if folder.exists() and not folder.is_dir():
            raise InputError(
                f"manifest {path.name} line {line}: case '{name}' writes into {folder}, which is a file: "
                "rename the case (or move the file), or choose another --output-dir"
            )
        options = {key: value for key, value in defaults.items() if value is not None}
        options.update({key: row[key] for key in CHOICES if row.get(key)})
        for key in NUMBERS & set(options):
            options[key] = _number(key, options[key], path.name, line)
        inputs = {key: str((path.parent / row[key]).resolve()) for key in PATHS if row.get(key)}
        outputs = {key: str(folder / file) for key, file in CASE_FILES.items()}
        if output_volume:
            outputs["output_volume"] = str(folder / "resampled.nrrd")
        job = CaseJob(case=name, **inputs, **outputs, **options).resolved()
        _check_case_outputs_apart(job, folder, Path(output_dir), path.name, line)
        _check_preset(job, f"manifest {path.name} line {line}: case '{name}': " if row.get("engine") or row.get("preset")
                      else "", checked)  # fmt: skip
        jobs.append(job)
    return jobs


def _check_preset(job: CaseJob, where: str, checked: set) -> None:
    """Refuse an engine or preset that cannot run (a typo in --preset, refusing every case, or in one row, refusing
    the batch: the manifest is wrong), before any case runs; ``where`` names the row when the row chose them. ``checked`` holds the (engine, preset) pairs already loaded."""
    from ..engines.presets import load_preset

    if (job.engine, job.preset) in checked:
        return
    try:
        load_preset(job.engine, job.preset)
    except InputError as error:
        raise InputError(f"{where}{error}") from None
    checked.add((job.engine, job.preset))


def _check_case_outputs_apart(job: CaseJob, folder: Path, output_dir: Path, manifest: str, line: int) -> None:
    """Refuse a case whose inputs lie where the batch writes (or clears, before the case runs) its files."""
    from ..core.output_safety import check_outputs_apart

    written = [*CASE_FILES.values(), "resampled.nrrd", DONE]  # what a run of the case removes, then writes
    outputs = {f"case output {name}": folder / name for name in written}
    outputs |= {f"cohort file {name}": output_dir / name for name in ("batch.csv", "report.html")}
    fix = (f"move the input out of {folder} (the batch clears and rewrites it for each run), "
           "or choose another --output-dir")  # fmt: skip
    try:
        check_outputs_apart({key.replace("_", " "): getattr(job, key) for key in CaseJob.paths("input")}, outputs, fix)
    except InputError as error:
        raise InputError(f"manifest {manifest} line {line}: case '{job.case}': {error}") from None


def _manifest_text(path: Path) -> str:
    """The manifest's text: UTF-8 (with or without a byte-order mark) or UTF-16 with its mark; else refused."""
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            f"manifest {path.name} is not UTF-8 text (byte 0x{data[error.start]:02x} at {error.start}, perhaps Latin-1 "
            "or Windows-1252): save it as UTF-8 (in Excel: 'CSV UTF-8'), so that accented paths read as written"
        ) from None


def check_output_folder(output_dir: str | os.PathLike) -> None:
    """Refuse an output folder that is a file, or lies under one."""
    folder = Path(output_dir)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"--output-dir {output_dir}: {folder} is a file, not a folder: choose another --output-dir")


def check_batch_options(defaults: dict, workers: int | None = None, timeout_s: float | None = None) -> None:
    """Refuse batch options no case can use, before any case runs (seed, threads, stability, workers, timeout)."""
    from .preflight import MAX_SEED

    seed, threads, stability = defaults.get("seed"), defaults.get("threads"), defaults.get("stability")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InputError(f"--seed {seed} is out of range: give a whole number from 0 to {MAX_SEED}")
    if threads is not None and threads < 1:
        raise InputError(f"--threads {threads}: give 1 or more (or leave it out: the cores shared among the workers)")
    if stability is not None and stability < 0:
        raise InputError(f"--stability {stability}: give the number of perturbed restarts, 0 or more (e.g. 5)")
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: give 1 or more (or leave it out: one per two cores)")
    if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s > 0):
        raise InputError(f"--timeout {timeout_s} s: give a positive number of seconds (or leave it out: no limit)")


def _number(column: str, text, manifest: str, line: int) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise InputError(f"manifest {manifest} line {line}: {column} '{text}' is not a number: give e.g. 1") from None


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
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # unreadable: run the case again
        return None
