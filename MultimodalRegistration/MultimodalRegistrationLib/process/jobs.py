"""The jobs a worker process runs, each a dataclass holding its fields and defaults once.

A job turns itself into the JSON a worker reads (:meth:`Job.to_json`) and back
(:meth:`Job.from_json`, which refuses unknown keys). Fields marked as input or output paths are
made absolute before the job leaves its caller (:meth:`Job.resolved`): the worker runs in its own
folder. Standard library only, so that the parent side stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

from ..core.choices import DEFAULT_INIT, DEFAULT_PRESET, DEFAULT_SEED, FULL_ROTATION_DEG
from ..engines.registry import DEFAULT_ENGINE
from ..core.errors import InputError
from ..core.file_checks import SUPPORTED, TRANSFORM_SUFFIXES, check_output_path
from ..core.records import Record, build


def _path(kind: str, required: bool = False, suffixes: tuple[str, ...] = ()):
    """A field holding an input or output path; a required one must be given (its default None is a
    placeholder); an output's ``suffixes`` are the extensions it can be written to."""
    return field(default=None, metadata={"path": kind, "required": required, "suffixes": suffixes})


@dataclass
class Job(Record):
    """A worker job; subclasses name the worker module that runs them."""

    module: ClassVar[str]

    @classmethod
    def paths(cls, kind: str) -> tuple[str, ...]:
        """The names of the fields that hold ``kind`` ("input" or "output") paths."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("path") == kind)

    def to_json(self) -> dict:
        """The job as the worker reads it: fields left at None are left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def to_dict(self) -> dict:
        return self.to_json()

    @classmethod
    def from_json(cls, record: dict) -> "Job":
        required = [f.name for f in fields(cls) if f.metadata.get("required")]
        missing = [name for name in required if record.get(name) is None]
        if missing:
            raise InputError(f"the job lacks {', '.join(missing)}: give {' and '.join(missing)}")
        return build(cls, record, f"{cls.__name__} keys")

    def resolved(self) -> "Job":
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
    ``prep`` is a :class:`..prep.pipeline.PrepOptions` record (its ``to_dict``): prepare the pair first.
    ``log`` is where the engine's log is written, on success and on failure (see :func:`log_beside`).
    """

    module: ClassVar[str] = "MultimodalRegistrationLib.process.registration_job"

    fixed: str = _path("input", required=True)
    moving: str = _path("input", required=True)
    engine: str = DEFAULT_ENGINE
    preset: str = DEFAULT_PRESET
    fixed_mask: str | None = _path("input")
    moving_mask: str | None = _path("input")
    initial_transform: str | None = _path("input")
    init: str = DEFAULT_INIT
    max_rotation_deg: float = FULL_ROTATION_DEG
    seed: int = DEFAULT_SEED
    threads: int | None = None
    output_transform: str | None = _path("output", suffixes=TRANSFORM_SUFFIXES)
    output_inverse: str | None = _path("output", suffixes=TRANSFORM_SUFFIXES)
    output_volume: str | None = _path("output", suffixes=SUPPORTED)
    summary: str | None = _path("output", suffixes=(".json",))
    log: str | None = _path("output")
    prep: dict | None = None
    workdir: str | None = None
    # Guidance (see registration/guidance.py): labelmaps, the segments that guide (comma-separated
    # names or label values), landmark files, the guidance weight and "intensity" or "segments".
    fixed_segmentation: str | None = _path("input")
    moving_segmentation: str | None = _path("input")
    segments: str | None = None
    guidance_fixed_points: str | None = _path("input")
    guidance_moving_points: str | None = _path("input")
    guidance_weight: float | None = None
    metric: str = "intensity"
    # Piecewise (registration/piecewise.py): these segments (comma-separated) are registered rigidly on
    # their own after the global registration; the output transform is then their blended field.
    piecewise: str | None = None

    def resolved(self) -> "RegistrationJob":
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

    case: str = ""
    fixed_points: str | None = _path("input")
    moving_points: str | None = _path("input")
    qa: str | None = _path("output", suffixes=(".json",))
    checkerboard: str | None = _path("output", suffixes=(".png",))
    stability: int = 0


def log_beside(output_transform: str) -> str:
    """Where ``--keep-log`` puts the engine's log: beside the output transform (``T.h5`` -> ``T.log``)."""
    transform = Path(output_transform)
    stem = transform.name[: -len(".nii.gz")] if transform.name.endswith(".nii.gz") else transform.stem
    return str(transform.with_name(f"{stem}.log"))


@dataclass
class PrepJob(Job):
    """One preparation (:func:`..prep.pipeline.prepare`): the prepared images go to ``output_dir``.

    ``prep`` is a :class:`..prep.pipeline.PrepOptions` record; ``initial_transform`` (fixed -> moving,
    LPS) places the moving image on the fixed one.
    """

    module: ClassVar[str] = "MultimodalRegistrationLib.process.prep_job"

    fixed: str = _path("input", required=True)
    moving: str = _path("input", required=True)
    output_dir: str = _path("output", required=True)
    prep: dict = field(default_factory=dict)
    initial_transform: str | None = _path("input")
    workdir: str | None = None
