"""The jobs a worker process runs, each a dataclass holding its fields and defaults once.

A job turns itself into the JSON a worker reads (:meth:`Job.to_json`) and back
(:meth:`Job.from_json`, which refuses unknown keys). Fields marked as input or output paths are
made absolute before the job leaves its caller (:meth:`Job.resolved`): the worker runs in its own
folder. A field a Slicer panel sets names its parameter-node attribute (``panel``) and, for a file,
the kind of node that file is written from (``node``: volume, mask, labels, points, transform); the
node layer builds the job from a parameter node through these, the command line through the field
names. Standard library only, so that the parent side stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from ..core.choices import DEFAULT_INIT, DEFAULT_PRESET, DEFAULT_SEED, FULL_ROTATION_DEG
from ..core.errors import InputError
from ..core.file_checks import SUPPORTED, TRANSFORM_SUFFIXES, check_output_path
from ..core.files import stem_of
from ..core.records import Record, to_json
from ..engines.registry import DEFAULT_ENGINE
from ..prep.options import PrepOptions
from .results import CaseJobResult, JobResult, PrepJobResult, RegistrationJobResult


def _path(kind: str, required: bool = False, suffixes: tuple[str, ...] = (), panel: str = "", node: str = ""):
    """A field holding an input or output path; a required one must be given (its default None is a
    placeholder); an output's ``suffixes`` are the extensions it can be written to."""
    metadata = {"path": kind, "required": required, "suffixes": suffixes, "panel": panel, "node": node}
    return field(default=None, metadata=metadata)


def _choice(default: Any, panel: str | tuple[str, ...], unset: Any = None):
    """A choice a panel sets through its ``panel`` attribute (or the first set one of several); the panel's ``unset`` value (0, an empty list)
    means "the default", which is None for a field whose default the engine or its preset decides."""
    return field(default=default, metadata={"panel": panel, "unset": unset})


@dataclass
class Job(Record):
    """A worker job; subclasses name the worker module that runs them and the result it returns."""

    module: ClassVar[str]
    result_type: ClassVar[type[JobResult]] = JobResult

    @classmethod
    def paths(cls, kind: str) -> tuple[str, ...]:
        """The names of the fields that hold ``kind`` ("input" or "output") paths."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("path") == kind)

    @classmethod
    def panel_fields(cls) -> list:
        """The fields a Slicer panel sets, each naming its parameter-node attribute in ``metadata["panel"]``."""
        return [f for f in fields(cls) if f.metadata.get("panel")]

    def to_json(self) -> dict:
        """The job as the worker reads it: fields left at None are left out."""
        return {f.name: to_json(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}

    def to_dict(self) -> dict:
        return self.to_json()

    @classmethod
    def from_json(cls, record: dict) -> Job:
        if not isinstance(record, dict):
            raise InputError(f"a job must be a JSON object, not {type(record).__name__}")
        required = [f.name for f in fields(cls) if f.metadata.get("required")]
        missing = [name for name in required if record.get(name) is None]
        if missing:
            raise InputError(f"the job lacks {', '.join(missing)}: give {' and '.join(missing)}")
        return cls.from_dict(record, strict=True)

    def resolved(self) -> Job:
        """A copy whose path fields are absolute (the worker runs in its own folder)."""
        changes = {
            name: str(Path(getattr(self, name)).expanduser().resolve())
            for name in self.paths("input") + self.paths("output")
            if getattr(self, name)
        }
        return replace(self, **changes)

    def missing_inputs(self) -> list[tuple[str, str]]:
        """(field, path) of every input file that does not exist."""
        return [(name, getattr(self, name)) for name in self.paths("input")
                if getattr(self, name) and not Path(getattr(self, name)).exists()]  # fmt: skip

    def check_outputs(self) -> None:
        """Refuse, before the run, an output with an unsupported extension or a folder that cannot be made."""
        for f in fields(self):
            if f.metadata.get("path") == "output" and getattr(self, f.name):
                check_output_path(getattr(self, f.name), f.name.replace("_", " "), f.metadata["suffixes"])


@dataclass
class RegistrationJob(Job):
    """One registration: inputs (files), choices, and where the results go.

    Transforms map fixed to moving points (LPS mm); ``initial_transform`` is where the search starts.
    ``prep`` prepares the pair first (:func:`..prep.pipeline.prepare`). ``log`` is where the engine's
    log is written, on success and on failure (see :func:`log_beside`).
    Guidance (see registration/guidance.py): labelmaps, the ``segments`` that guide (names or label
    values; None: every paired one), landmark files, the guidance weight (None: the engine's default)
    and ``metric`` "intensity" or "segments". ``piecewise`` segments are registered rigidly on their own
    after the global registration; the output transform is then their blended field.
    """

    module: ClassVar[str] = "MultimodalRegistrationLib.process.registration_job"
    result_type: ClassVar[type[JobResult]] = RegistrationJobResult

    fixed: str = _path("input", required=True, panel="fixedVolume", node="volume")
    moving: str = _path("input", required=True, panel="movingVolume", node="volume")
    engine: str = _choice(DEFAULT_ENGINE, "engine")
    preset: str = _choice(DEFAULT_PRESET, ("customPresetFile", "preset"))  # a custom file before the chosen one
    fixed_mask: str | None = _path("input", panel="fixedMask", node="mask")
    moving_mask: str | None = _path("input", panel="movingMask", node="mask")
    initial_transform: str | None = _path("input", panel="initialTransform", node="transform")
    init: str = _choice(DEFAULT_INIT, "init")
    max_rotation_deg: float = _choice(FULL_ROTATION_DEG, "maxRotationDeg")
    seed: int = _choice(DEFAULT_SEED, "seed")
    threads: int | None = _choice(None, "threads", unset=0)
    output_transform: str | None = _path("output", suffixes=TRANSFORM_SUFFIXES, panel="outputTransform")
    output_inverse: str | None = _path("output", suffixes=TRANSFORM_SUFFIXES)
    output_volume: str | None = _path("output", suffixes=SUPPORTED, panel="outputVolume")
    summary: str | None = _path("output", suffixes=(".json",))
    log: str | None = _path("output", panel="log")
    prep: PrepOptions | None = _choice(None, "prep")
    workdir: str | None = None
    fixed_segmentation: str | None = _path("input", panel="fixedSegmentation", node="labels")
    moving_segmentation: str | None = _path("input", panel="movingSegmentation", node="labels")
    segments: list[str] | None = _choice(None, "segments", unset=[])
    guidance_fixed_points: str | None = _path("input", panel="fixedLandmarks", node="points")
    guidance_moving_points: str | None = _path("input", panel="movingLandmarks", node="points")
    guidance_weight: float | None = _choice(None, "guidanceWeight", unset=0.0)
    metric: str = _choice("intensity", "metric")
    piecewise: list[str] | None = _choice(None, "piecewise", unset=[])

    def __post_init__(self) -> None:
        # A comma-separated string (as 0.1.0 wrote it, or typed on a command line) is the same list.
        for name in ("segments", "piecewise"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [part.strip() for part in value.split(",") if part.strip()] or None)

    def resolved(self) -> RegistrationJob:
        """A copy with absolute paths, a custom preset file's included (the worker runs in its own folder)."""
        job = super().resolved()
        preset = Path(self.preset).expanduser()
        if preset.suffix in (".txt", ".json") and preset.is_file():
            job.preset = str(preset.resolve())
        return job

    def sources(self) -> dict:
        """Where the inputs came from, for provenance."""
        return {name: getattr(self, name) for name in self.paths("input")}


@dataclass
class CaseJob(RegistrationJob):
    """One case of a cohort (``mmreg batch``): a registration, then its QA, in one worker call.

    ``qa`` is the QA JSON to write, ``checkerboard`` a PNG of fixed and moving before and after;
    ``fixed_points``/``moving_points`` (landmark files) give the target registration error;
    ``stability`` is the number of perturbed restarts the QA runs (0: none).
    """

    module: ClassVar[str] = "MultimodalRegistrationLib.process.case_job"
    result_type: ClassVar[type[JobResult]] = CaseJobResult

    case: str = ""
    fixed_points: str | None = _path("input")
    moving_points: str | None = _path("input")
    qa: str | None = _path("output", suffixes=(".json",))
    checkerboard: str | None = _path("output", suffixes=(".png",))
    stability: int = 0


def log_beside(output_transform: str) -> str:
    """Where ``--keep-log`` puts the engine's log: beside the output transform (``T.h5`` -> ``T.log``)."""
    transform = Path(output_transform)
    return str(transform.with_name(f"{stem_of(transform)}.log"))


@dataclass
class PrepJob(Job):
    """One preparation (:func:`..prep.pipeline.prepare`): the prepared images go to ``output_dir``.

    ``initial_transform`` (fixed -> moving, LPS) places the moving image on the fixed one.
    """

    module: ClassVar[str] = "MultimodalRegistrationLib.process.prep_job"
    result_type: ClassVar[type[JobResult]] = PrepJobResult

    fixed: str = _path("input", required=True)
    moving: str = _path("input", required=True)
    output_dir: str = _path("output", required=True)
    prep: PrepOptions = field(default_factory=PrepOptions)
    initial_transform: str | None = _path("input")
    workdir: str | None = None
