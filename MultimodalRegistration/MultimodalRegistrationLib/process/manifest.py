"""A cohort manifest (CSV, one row per case) turned into :class:`.jobs.CaseJob` jobs, and what a case's
inputs hash to, so that a re-run skips the cases that are done and redoes those whose inputs changed.

Columns: ``case``, ``fixed``, ``moving`` (required), and ``fixed_mask``, ``moving_mask``,
``initial_transform``, ``fixed_points``, ``moving_points`` (QA's target points), ``engine``, ``preset``,
``init``; guidance: ``fixed_segmentation``, ``moving_segmentation``, ``segments``, ``metric``,
``guidance_weight``, ``guidance_fixed_points``, ``guidance_moving_points``.
Relative paths (a preset file's too) are read from the manifest's folder. An empty cell takes the batch's default.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core.digest import file_sha256
from ..core.errors import InputError
from ..core.file_checks import check_output_folder, check_output_path
from ..core.file_headers import check_not_empty
from ..core.files import PARTIAL_PREFIX
from ..core.name_lengths import WINDOWS_DEVICES
from ..core.open_files import BASE_FILES, FILES_PER_WORKER, allow_open_files, files_for_workers
from ..core.output_safety import input_places, same_place
from ..core.records import Record
from ..core.version import __version__
from ..qa.report_types import QAReport
from ..qa.triage import Verdict
from ..registration.summary import RegistrationSummary
from .jobs import CaseJob, option_fields, option_flag
from .results import JobOutputs

REQUIRED = ("case", "fixed", "moving")
PATHS = CaseJob.paths("input")  # a case's input files
CHOICES = tuple(f.name for f in option_fields(CaseJob) if f.metadata["cli"].get("column"))  # a case's own choices
NUMBERS = {f.name for f in option_fields(CaseJob) if f.name in CHOICES and "float" in str(f.type)}
CHOICE_VALUES = {f.name: f.metadata["cli"]["choices"] for f in option_fields(CaseJob)
                 if f.name in CHOICES and f.metadata["cli"].get("choices")}  # fmt: skip
# Columns given both or neither: target points (TRE) and guiding landmarks.
PAIRED = (("fixed_points", "moving_points"), ("guidance_fixed_points", "guidance_moving_points"))
COHORT_FILES = ("batch.csv", "report.html")  # what the batch writes beside the case folders
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
    row; a row's own engine, preset or init win. Every row is checked here, with its line number, as far as
    that needs no image: a wrong manifest is refused before any case runs.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"manifest {path} is a folder, not a manifest file: give the CSV file in it (a header "
                         "case,fixed,moving and one row per case)")  # fmt: skip
    if not path.is_file():
        raise InputError(f"manifest not found: {path}: check the path")
    check_not_empty(path, "manifest", "write its header case,fixed,moving and one row per case")
    check_output_folder(output_dir)
    for name in COHORT_FILES:  # a manifest saved as <output-dir>/batch.csv was replaced by the results (a sweep)
        if same_place(path.resolve(), (Path(output_dir) / name).resolve()):
            raise InputError(f"manifest {path} is the {name} the batch writes into --output-dir: rename the manifest "
                             "(e.g. cohort.csv), or choose another --output-dir")  # fmt: skip
    check_output_path(Path(output_dir) / COHORT_FILES[0], "batch results table")  # a read-only folder: no traceback
    header, rows = _read_table(path)
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
    jobs, seen, checked = [], {}, {}
    for line, row in rows:
        where = f"manifest {path.name} line {line}"
        name = row.get("case", "")
        _check_case_name(name, where, seen, Path(output_dir))
        seen[name.casefold()] = (name, line)
        where += f": case '{name}'"
        for required in ("fixed", "moving"):
            if not row.get(required):
                raise InputError(f"{where} has no {required} image: fill the cell")
        for first, second in PAIRED:
            if bool(row.get(first)) != bool(row.get(second)):
                raise InputError(f"{where} has {first if row.get(first) else second} without "
                                 f"{second if row.get(first) else first}: fill both cells, or neither")  # fmt: skip
        folder = Path(output_dir) / name
        if folder.exists() and not folder.is_dir():
            raise InputError(
                f"{where} writes into {folder}, which is a file: "
                "rename the case (or move the file), or choose another --output-dir"
            )
        try:  # a name too long for a folder, or a case folder that cannot be written: refused, not a traceback
            check_output_path(folder / CASE_FILES["summary"], "case's results")
        except InputError as error:
            raise InputError(f"{where}: {error}") from None
        options = {key: value for key, value in defaults.items() if value is not None}
        options.update(_row_choices(row, path, where))
        inputs = {key: str((path.parent / Path(row[key]).expanduser()).resolve()) for key in PATHS if row.get(key)}
        outputs = {key: str(folder / file) for key, file in CASE_FILES.items()}
        if output_volume:
            outputs["output_volume"] = str(folder / "resampled.nrrd")
        in_columns = _columns_words(row, defaults)
        try:
            job = CaseJob(case=name, **inputs, **outputs, **options).resolved()
        except InputError as error:  # a segments cell naming nothing
            raise InputError(f"{where}: {in_columns(str(error))}") from None
        _check_case_outputs_apart(job, folder, Path(output_dir), where)
        row_chose = bool(row.get("engine") or row.get("preset"))
        _check_preset(job, f"{where}: " if row_chose else "", checked, where, in_columns)
        jobs.append(job)
    return jobs


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The manifest's column names and its rows, each with the line it starts on; all-empty rows (a blank line,
    or the ``,,`` a spreadsheet saves) are skipped. Refuses a nameless or repeated column and a row with more
    cells than columns."""
    text = _manifest_text(path)
    first = text.split("\n", 1)[0]
    # A spreadsheet set to a comma-decimal locale saves ';' (or tabs): read the separator the header uses.
    delimiter = next((mark for mark in ";\t" if mark in first and "," not in first), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip() for name in next(reader, [])]
    for number, name in enumerate(header, start=1):
        if not name:
            raise InputError(f"manifest {path.name}: column {number} of the header has an empty name (a trailing "
                             f"'{delimiter}'?): name the column, or delete it")  # fmt: skip
    twice = [name for number, name in enumerate(header) if name in header[:number]]
    if twice:
        raise InputError(f"manifest {path.name}: column '{twice[0]}' appears twice in the header: keep one")
    rows, start = [], reader.line_num + 1
    for cells in reader:
        line, start = start, reader.line_num + 1
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        if any(cells[len(header) :]):
            raise InputError(
                f"manifest {path.name} line {line} has {len(cells)} cells for {len(header)} columns "
                f'({",".join(header)}): a path with a comma must be in double quotes ("my dir/ct,1.nrrd")'
            )
        rows.append((line, dict(zip(header, cells + [""] * (len(header) - len(cells))))))
    return header, rows


def _check_case_name(name: str, where: str, seen: dict[str, tuple[str, int]], output_dir: Path) -> None:
    """Refuse a case name that is not a plain folder name, is taken, or is a file the batch writes beside the
    case folders (``batch.csv``, ``report.html``, a ``.partial-*`` file being written)."""
    if not _CASE_NAME.match(name) or name.endswith("."):
        raise InputError(f"{where}: case name '{name}' must start with an ASCII letter or digit, then ASCII letters, "
                         "digits, '.', '_' or '-', not ending in '.'")  # fmt: skip
    if name.split(".")[0].upper() in WINDOWS_DEVICES:
        raise InputError(f"{where}: case name '{name}' is a device name on Windows, where its folder cannot be "
                         "made: rename the case")  # fmt: skip
    same, first = seen.get(name.casefold(), (None, 0))  # seen: casefolded name -> (name, line)
    if same is not None:
        also = "" if same == name else f" as '{same}': case names differing only in capitals share one folder on macOS and Windows"
        raise InputError(f"{where}: case '{name}' appears twice (first on line {first}{also}): give each case its "
                         "own name")  # fmt: skip
    if name.lower() in COHORT_FILES or name.startswith(PARTIAL_PREFIX):
        raise InputError(f"{where}: case name '{name}' is a file the batch writes itself ({output_dir / name}): "
                         "rename the case")  # fmt: skip


def _row_choices(row: dict[str, str], manifest: Path, where: str) -> dict:
    """The row's own choices, checked: a value among its column's choices, a number where one is due, and a
    preset file found from the manifest's folder (as the paths are)."""
    options = {key: row[key] for key in CHOICES if row.get(key)}
    for key, value in options.items():
        allowed = CHOICE_VALUES.get(key)
        if allowed and value not in allowed:
            raise InputError(f"{where}: {key} '{value}' is not one of {', '.join(allowed)}: choose one")
    for key in NUMBERS & set(options):
        options[key] = _number(key, options[key], where)
    preset = Path(options.get("preset", "")).expanduser()
    if preset.suffix in (".txt", ".json"):
        preset = (manifest.parent / preset).resolve()
        if not preset.is_file():
            raise InputError(f"{where}: preset file not found: {preset}: check the path (relative to the manifest)")
        options["preset"] = str(preset)
    return options


def _columns_words(row: dict[str, str], defaults: dict):
    """A refusal's options in the manifest's words: ``--fixed-segmentation`` as 'the fixed_segmentation column'
    (someone editing the CSV had been told flags), except a choice ``mmreg batch`` was given for every case and
    the row leaves empty."""
    flags: dict[str, str] = {}
    for f in fields(CaseJob):  # the first field with a flag names it: --fixed-points guides (QA's targets follow)
        if f.name in COLUMNS and not (defaults.get(f.name) is not None and not row.get(f.name)):
            flags.setdefault(option_flag(f), f.name)
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, flags)) + r")(?![\w-])")
    return lambda message: pattern.sub(lambda found: f"the {flags[found.group(1)]} column", message)


def _check_preset(job: CaseJob, chosen_where: str, checked: dict, where: str, in_columns=str) -> None:
    """Refuse an engine or preset that cannot run (a typo in --preset, refusing every case, or in one row, refusing
    the batch: the manifest is wrong), and the choices preflight would refuse with that preset (``segments``
    without segmentations...), before any case runs. ``chosen_where`` names the row when the row chose the engine
    or preset; ``checked`` holds the presets already loaded, by (engine, preset)."""
    from ..engines.presets import load_preset
    from .preflight import check_choices

    if (job.engine, job.preset) not in checked:
        try:
            checked[job.engine, job.preset] = load_preset(job.engine, job.preset)
        except InputError as error:
            raise InputError(f"{chosen_where}{error}") from None
    preset = checked[job.engine, job.preset]
    try:
        preset.check_needs(bool(job.fixed_segmentation and job.moving_segmentation))
        check_choices(job, preset.is_linear)
    except InputError as error:
        raise InputError(f"{where}: {in_columns(str(error))}") from None


def _check_case_outputs_apart(job: CaseJob, folder: Path, output_dir: Path, where: str) -> None:
    """Refuse a case whose inputs lie where the batch writes (or clears, before the case runs) its files."""
    from ..core.output_safety import check_outputs_apart

    written = [*CASE_FILES.values(), "resampled.nrrd", "qa.html", DONE]  # what a run of the case removes, then writes
    outputs = {f"case output {name}": folder / name for name in written}
    outputs |= {f"cohort file {name}": output_dir / name for name in COHORT_FILES}
    fix = (f"move the input out of {folder} (the batch clears and rewrites it for each run), "
           "or choose another --output-dir")  # fmt: skip
    inputs = {key.replace("_", " "): getattr(job, key) for key in CaseJob.paths("input")}
    try:
        check_outputs_apart(inputs, outputs, fix)
        for role, given in inputs.items():  # the folders a run empties first: an image kept there was deleted
            for cleared in (folder / "qa_figures", folder / ".earlier"):
                if given and any(same_place(above, cleared.resolve()) for above in Path(given).resolve().parents):
                    raise InputError(f"the {role} {given} lies in {cleared}, which each run of the case empties "
                                     f"first: {fix}")  # fmt: skip
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


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


def check_batch_options(defaults: dict, workers: int | None = None, timeout_s: float | None = None,
                        local: bool = True) -> None:  # fmt: skip
    """Refuse batch options no case can use, before any case runs (seed, threads, stability, workers, timeout).
    ``local``: the workers run here (not on Dask), so they must fit this process's open files."""
    from ..core.choices import check_seed, check_threads, check_timeout

    check_seed(defaults.get("seed"))
    check_threads(defaults.get("threads"), "the cores shared among the workers")
    stability = defaults.get("stability")
    if stability is not None and stability < 0:
        raise InputError(f"--stability {stability}: give the number of perturbed restarts, 0 or more (e.g. 5)")
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: give 1 or more (or leave it out: one per two cores)")
    limit = None if workers is None or not local else allow_open_files(files_for_workers(workers))
    if limit is not None and files_for_workers(workers) > limit:
        most = max(1, (limit - BASE_FILES) // FILES_PER_WORKER)
        raise InputError(f"--workers {workers}: this system lets mmreg hold {limit} files open, enough for {most} "
                         f"workers: give at most {most}, or raise the limit first (ulimit -n)")  # fmt: skip
    check_timeout(timeout_s)
    _check_default_preset(defaults.get("engine"), defaults.get("preset"))


def _check_default_preset(engine: str | None, preset: str | None) -> None:
    """Refuse a --preset no engine the batch may use can load (a typo ran a whole batch whose rows each named
    their own preset, exit 0: a helper's sweep); the rows' own presets are checked with them."""
    from ..engines.presets import load_preset
    from ..engines.registry import ENGINE_NAMES

    if not preset:
        return
    errors = []
    for name in (engine,) if engine else ENGINE_NAMES:
        try:
            load_preset(name, preset)
            return
        except InputError as error:
            errors.append(str(error))
    raise InputError(f"--preset: {errors[0]}")


def _number(column: str, text, where: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {column} '{text}' is not a number: give e.g. 1") from None


def case_hash(job: CaseJob) -> str:
    """A hash of what decides a case's result: its options, the library version, each input's bytes and the
    bytes of its preset's files (a preset file the case names, or the built-in one it uses).

    Output paths and the scratch folder are left out, so moving the output folder changes nothing; so are
    threads the user did not set (the batch fills them in after hashing: see :func:`.batch.run_batch`).
    """
    record = {key: value for key, value in job.to_json().items() if key not in CaseJob.paths("output") + ("workdir",)}
    for key in CaseJob.paths("input"):
        if record.get(key):
            record[key] = _input_digest(record[key])
    record["preset_files"] = _preset_digests(job.engine, job.preset)
    if Path(job.preset).suffix in (".txt", ".json"):  # a preset file: its bytes count, not where it lies
        record["preset"] = Path(job.preset).suffix
    record["library_version"] = __version__
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def _input_digest(path: str) -> str | list[str]:
    """The input's bytes: a detached header's data file too (.mhd/.raw, .nhdr/.raw.gz: a case whose voxels were
    replaced had been 'done before'); "missing:<path>" for a file that is not there."""
    if not Path(path).is_file():
        return f"missing:{path}"
    places = input_places(path)
    if len(places) == 1:
        return file_sha256(path)
    return [file_sha256(place) if place.is_file() else f"missing:{place}" for place in places]


def _preset_digests(engine: str, preset: str) -> list[str]:
    """The digests of the files ``preset`` reads (editing Resources/Presets changes them, with no new version)."""
    from ..engines.presets import load_preset

    try:
        return [file_sha256(name) for name in load_preset(engine, preset).files]
    except (InputError, OSError):  # the case will fail on it, and say why
        return [f"unreadable:{preset}"]


def read_done(folder: Path) -> CaseRecord | None:
    """The record of a finished case in ``folder``, or None if the case has not finished."""
    try:
        return CaseRecord.from_dict(json.loads((folder / DONE).read_text()))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # unreadable: run the case again
        return None
