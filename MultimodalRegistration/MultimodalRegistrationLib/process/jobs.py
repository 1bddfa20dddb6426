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

from ..core.choices import (
    DEFAULT_INIT,
    DEFAULT_PRESET,
    DEFAULT_RESTARTS,
    DEFAULT_ROTATION_DEG,
    DEFAULT_SEED,
    DEFAULT_SHIFT_MM,
    DEFAULT_THRESHOLD_MM,
    FULL_ROTATION_DEG,
    GUIDANCE_METRICS,
    INIT_METHODS,
    LANDMARK_TRANSFORMS,
    comma_names,
)
from ..core.errors import InputError
from ..core.file_checks import TRANSFORM_SUFFIXES, check_output_path
from ..core.files import VOLUME_SUFFIXES
from ..core.output_safety import resolved_path
from ..core.records import Record, to_json
from ..engines.registry import DEFAULT_ENGINE, ENGINE_NAMES
from ..prep.options import PrepOptions
from .results import CaseJobResult, JobResult, PrepJobResult, RegistrationJobResult


def _path(kind: str, required: bool = False, suffixes: tuple[str, ...] = (), panel: str = "", node: str = "",
          cli: dict | None = None):  # fmt: skip
    """A field holding an input or output path; a required one must be given (its default None is a
    placeholder); an output's ``suffixes`` are the extensions it can be written to. ``cli``: the field's
    command-line option (see :func:`_choice`)."""
    metadata = {"path": kind, "required": required, "suffixes": suffixes, "panel": panel, "node": node, "cli": cli}
    return field(default=None, metadata=metadata)


def _choice(default: Any, panel: str | tuple[str, ...] = "", unset: Any = None, switch: str = "",
            cli: dict | None = None):  # fmt: skip
    """A choice a panel sets through its ``panel`` attribute (or the first set one of several), only while its
    ``switch`` box is checked; the panel's ``unset`` value (0, an empty list) means "the default", which is None
    for a field whose default the engine or its preset decides. ``cli`` is the field's command-line option:
    argparse's keywords (``help``, ``metavar``, ``choices``...), plus ``flag`` when its name is not the field's
    (``--json`` for ``summary``), ``group`` (an argument group), ``always`` for a choice a recorded command
    line always names, and ``column`` for a choice a batch manifest may set per case."""
    return field(default=default, metadata={"panel": panel, "unset": unset, "switch": switch, "cli": cli})


def option_fields(record_class: type) -> list:
    """The fields of a job (or of the prep options) that the command line sets, each with ``metadata["cli"]``."""
    return [f for f in fields(record_class) if f.metadata.get("cli") is not None]


def option_flag(field) -> str:
    """The command-line option of a job field: ``--fixed-mask`` for ``fixed_mask``, unless its ``cli`` says."""
    return (field.metadata.get("cli") or {}).get("flag") or "--" + field.name.replace("_", "-")


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

    @classmethod
    def options(cls, kind: str) -> dict[str, str]:
        """Field name -> command-line option of the fields that hold ``kind`` ("input", "output") paths."""
        return {f.name: option_flag(f) for f in fields(cls) if f.metadata.get("path") == kind}

    @classmethod
    def suffixes(cls, name: str) -> tuple[str, ...]:
        """The extensions the output field ``name`` can be written to (none: any)."""
        return next(f.metadata["suffixes"] for f in fields(cls) if f.name == name)

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
            name: str(resolved_path(getattr(self, name), name.replace("_", " "), name in self.paths("output")))
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

    fixed: str = _path("input", required=True, panel="fixedVolume", node="volume",
                       cli={"required": True, "help": "fixed (reference) image file"})  # fmt: skip
    moving: str = _path("input", required=True, panel="movingVolume", node="volume", cli={
        "required": True, "help": "moving image file, resampled onto the fixed one"})  # fmt: skip
    engine: str = _choice(DEFAULT_ENGINE, "engine", cli={"choices": ENGINE_NAMES, "always": True, "column": True})
    preset: str = _choice(DEFAULT_PRESET, ("customPresetFile", "preset"), cli={  # a custom file before the chosen one
        "always": True, "column": True, "help": "rigid, similarity, affine, deformable, distance-map, or a preset file path"})  # fmt: skip
    fixed_mask: str | None = _path("input", panel="fixedMask", node="mask", cli={
        "help": "label image: nonzero voxels of the fixed image drive the metric"})  # fmt: skip
    moving_mask: str | None = _path("input", panel="movingMask", node="mask",
                                    cli={"help": "label image for the moving image"})  # fmt: skip
    initial_transform: str | None = _path("input", panel="initialTransform", node="transform", cli={
        "help": "ITK transform file (fixed -> moving), e.g. from mmreg prealign"})  # fmt: skip
    init: str = _choice(DEFAULT_INIT, "init", cli={"choices": INIT_METHODS, "always": True, "column": True, "help": "how to find the "
        "starting pose: auto (default) searches all poses, unless --initial-transform is given"})  # fmt: skip
    max_rotation_deg: float = _choice(FULL_ROTATION_DEG, "maxRotationDeg", cli={"help": "search only rotations up "
        "to this angle (degrees) from the start: faster for images known to be close"})  # fmt: skip
    seed: int = _choice(DEFAULT_SEED, "seed", cli={
        "default": None, "always": True, "help": "random seed (default: fixed, so runs repeat)"})  # fmt: skip
    threads: int | None = _choice(None, "threads", unset=0, cli={
        "help": "engine threads (ANTs repeats results only with 1)"})  # fmt: skip
    output_transform: str | None = _path("output", suffixes=TRANSFORM_SUFFIXES, panel="outputTransform", cli={
        "required": True, "help": "ITK transform file to write (.h5, .hdf5, .tfm, .txt, .mat; a nonlinear result "
        "needs .h5)"})  # fmt: skip
    output_inverse: str | None = _path("output", suffixes=TRANSFORM_SUFFIXES, cli={
        "help": "also write the inverse transform (.h5): linear results and ANTs deformable (an elastix B-spline "
        "has none)"})  # fmt: skip
    output_volume: str | None = _path("output", suffixes=VOLUME_SUFFIXES, panel="outputVolume",
                                      cli={"help": "moving image resampled onto the fixed grid"})  # fmt: skip
    summary: str | None = _path("output", suffixes=(".json",), cli={"flag": "--json", "help": "write a JSON "
        "summary of the result and its provenance (- : to standard output, messages to stderr)"})  # fmt: skip
    log: str | None = _path("output", panel="log")
    prep: PrepOptions | None = _choice(None, "prep")
    workdir: str | None = None
    fixed_segmentation: str | None = _path("input", panel="fixedSegmentation", node="labels", cli={
        "group": "guidance", "help": "labelmap on the fixed image (.nrrd, .seg.nrrd, .nii.gz)"})  # fmt: skip
    moving_segmentation: str | None = _path("input", panel="movingSegmentation", node="labels", cli={
        "group": "guidance", "help": "labelmap on the moving image: segments pair by name, else value"})  # fmt: skip
    segments: list[str] | None = _choice(None, "segments", unset=[], cli={
        "group": "guidance", "column": True, "metavar": "A,B", "help": "only these segments guide (names or label "
        "values); FIXED=MOVING pairs two named apart, e.g. gland=prostate"})  # fmt: skip
    guidance_fixed_points: str | None = _path("input", panel="fixedLandmarks", node="points", cli={
        "group": "guidance", "flag": "--fixed-points", "help": "landmarks on the fixed image (.mrk.json, .fcsv, "
        ".csv)"})  # fmt: skip
    guidance_moving_points: str | None = _path("input", panel="movingLandmarks", node="points", cli={
        "group": "guidance", "flag": "--moving-points", "help": "the same landmarks on the moving image, paired by "
        "label"})  # fmt: skip
    guidance_weight: float | None = _choice(None, "guidanceWeight", unset=0.0, cli={
        "group": "guidance", "column": True, "metavar": "W", "help": "weight of the segment and landmark terms against the image "
        "term (1); default: Presets/guidance.json"})  # fmt: skip
    metric: str = _choice("intensity", "metric", cli={
        "group": "guidance", "column": True, "choices": GUIDANCE_METRICS, "help": "intensity (default): mutual information plus "
        "the guidance; segments: the guidance only, for images whose intensities do not correspond (ultrasound, "
        "histology)"})  # fmt: skip
    piecewise: list[str] | None = _choice(None, "piecewise", unset=[], cli={
        "group": "guidance", "metavar": "A,B", "help": "after the global registration, register these segments "
        "(bones) rigidly on their own; the output transform becomes their blended displacement field and each "
        "segment's transform goes beside it (T_A.h5)"})  # fmt: skip
    # What writing the panel's input nodes found (two segments of a segmentation sharing a label value, one
    # renumbered): the result's warnings start with these.
    input_warnings: list[str] | None = None

    def __post_init__(self) -> None:
        # A comma-separated string (as 0.1.0 wrote it, or typed on a command line) is the same list.
        for name in ("segments", "piecewise"):
            if isinstance(value := getattr(self, name), str):
                setattr(self, name, comma_names(value, f"--{name}"))

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


@dataclass
class PrepJob(Job):
    """One preparation (:func:`..prep.pipeline.prepare`): the prepared images go to ``output_dir``.

    ``initial_transform`` (fixed -> moving, LPS) places the moving image on the fixed one.
    """

    module: ClassVar[str] = "MultimodalRegistrationLib.process.prep_job"
    result_type: ClassVar[type[JobResult]] = PrepJobResult

    fixed: str = _path("input", required=True, panel="fixedVolume", node="volume",
                       cli={"required": True, "help": "fixed (reference) image file"})  # fmt: skip
    moving: str = _path("input", required=True, panel="movingVolume", node="volume",
                        cli={"required": True, "help": "moving image file"})  # fmt: skip
    output_dir: str = _path("output", required=True, cli={
        "required": True, "help": "folder for fixed.nrrd, moving.nrrd, masks and prep.json"})  # fmt: skip
    # A panel's options are its step boxes (PrepOptions' own ``panel`` fields); a script may give them whole.
    prep: PrepOptions = field(default_factory=PrepOptions, metadata={"panel": "prep", "node": "options"})
    # The moving volume's parents and the panel's current transform (counted once), as one file.
    initial_transform: str | None = _path("input", panel="currentTransform", node="placement", cli={
        "help": "ITK transform file (fixed -> moving) placing the images"})  # fmt: skip
    workdir: str | None = None


_POINTS = "(.mrk.json, .fcsv, .csv label,x,y,z RAS)"


@dataclass
class QAJob(Job):
    """One measurement of a registration (``mmreg qa``, the MultimodalRegistrationQA panel): its transform
    (fixed -> moving, LPS), target landmarks (TRE) and the ``fit_points`` labels among them or the panel's
    own fit lists (FRE), labelmaps (Dice), masks, and ``stability`` perturbed restarts (0: none). Runs in
    the calling process (its restarts in workers)."""

    fixed: str = _path("input", required=True, panel="fixedVolume", node="volume",
                       cli={"required": True, "help": "fixed (reference) image file"})  # fmt: skip
    moving: str = _path("input", required=True, panel="movingVolume", node="volume",
                        cli={"required": True, "help": "moving image file"})  # fmt: skip
    transform: str = _path("input", required=True, panel="transform", node="transform", cli={
        "required": True, "help": "the registration result (fixed -> moving), e.g. T.h5"})  # fmt: skip
    inverse: str | None = _path("input", cli={
        "help": "its inverse (mmreg register --output-inverse): inverse-consistency error"})  # fmt: skip
    fixed_points: str | None = _path("input", panel="fixedTargetPoints", node="points", cli={
        "help": f"landmarks on the fixed image {_POINTS}; refused when all lie outside it"})  # fmt: skip
    moving_points: str | None = _path("input", panel="movingTargetPoints", node="points",
                                      cli={"help": "the same landmarks on the moving image"})  # fmt: skip
    fixed_fit_points: str | None = _path("input", panel="fixedFitPoints", node="points")
    moving_fit_points: str | None = _path("input", panel="movingFitPoints", node="points")
    fit_points: list[str] | None = _choice(None, cli={
        "nargs": "+", "metavar": "NAME", "help": "labels of the landmarks the transform was fitted to (reported as "
        "FRE; the rest as TRE); space- or comma-separated"})  # fmt: skip
    fixed_labels: str | None = _path("input", panel="fixedSegmentation", node="labels", cli={
        "aliases": ("--fixed-segmentation",), "help": "labelmap on the fixed image (.nrrd, .seg.nrrd)"})  # fmt: skip
    moving_labels: str | None = _path("input", panel="movingSegmentation", node="labels", cli={
        "aliases": ("--moving-segmentation",), "help": "labelmap on the moving image, paired by name"})  # fmt: skip
    label_interpolation: str = _choice("nearest", cli={"choices": ("nearest", "gaussian")})
    segments: list[str] | None = _choice(None, cli={
        "nargs": "+", "metavar": "FIXED=MOVING", "help": "pair segments named apart, as mmreg register's --segments "
        "pairs them (e.g. gland=prostate); space- or comma-separated"})  # fmt: skip
    fixed_mask: str | None = _path("input", cli={
        "help": "restrict image agreement and the Jacobian to this fixed-image mask"})  # fmt: skip
    moving_mask: str | None = _path("input", cli={"help": "moving mask, used by the stability restarts"})
    stability: int = _choice(0, "stabilityRestarts", switch="stability", cli={
        "nargs": "?", "const": DEFAULT_RESTARTS, "metavar": "K", "help": "re-run the registration from K perturbed "
        f"starts (default K={DEFAULT_RESTARTS}) and report the spread"})  # fmt: skip
    engine: str = _choice(DEFAULT_ENGINE, cli={"choices": ENGINE_NAMES, "help": "engine of the restarts"})
    preset: str | None = _choice(None, cli={
        "help": "preset of the restarts (default: rigid, affine or deformable, as the transform)"})  # fmt: skip
    stability_threshold: float = _choice(DEFAULT_THRESHOLD_MM, cli={"metavar": "MM", "help": "flag 'unstable' "
        f"above this 95th-percentile spread (default {DEFAULT_THRESHOLD_MM:g} mm)"})  # fmt: skip
    stability_shift: float = _choice(DEFAULT_SHIFT_MM, cli={
        "metavar": "MM", "help": f"shift of each perturbed start (default {DEFAULT_SHIFT_MM:g} mm)"})  # fmt: skip
    stability_rotation: float = _choice(DEFAULT_ROTATION_DEG, cli={"metavar": "DEG",
        "help": f"rotation of each perturbed start (default {DEFAULT_ROTATION_DEG:g} degrees)"})  # fmt: skip
    stability_timeout: float | None = _choice(None, cli={"metavar": "S", "help": "stop a restart after S seconds"})
    report: str | None = _path("output", suffixes=(".html", ".htm"), panel="reportPath", cli={
        "required": True, "help": "HTML report to write (pictures go beside it)"})  # fmt: skip
    summary: str | None = _path("output", suffixes=(".json",), cli={
        "flag": "--json", "help": "also write the metrics as JSON (- : to standard output)"})  # fmt: skip

    def stability_options(self) -> dict:
        """The restarts' options (:func:`.stability.stability_check`'s keywords)."""
        return {"engine": self.engine, "preset": self.preset, "threshold_mm": self.stability_threshold,
                "shift_mm": self.stability_shift, "rotation_deg": self.stability_rotation,
                "timeout_s": self.stability_timeout}  # fmt: skip


@dataclass
class PrealignJob(Job):
    """One landmark fit (``mmreg prealign``, the FiducialPrealign panel): a ``type`` transform fixed -> moving
    from two point lists paired by label (else by order), with its residuals. Runs in the calling process."""

    fixed_points: str = _path("input", required=True, panel="fixedPoints", node="points",
                              cli={"required": True, "help": "landmarks on the fixed image (.mrk.json, .fcsv, .csv)"})  # fmt: skip
    moving_points: str = _path("input", required=True, panel="movingPoints", node="points",
                               cli={"required": True, "help": "the same landmarks on the moving image"})  # fmt: skip
    type: str = _choice("rigid", "transformType", cli={
        "choices": LANDMARK_TRANSFORMS, "help": "transform type (default rigid)"})  # fmt: skip
    output_transform: str | None = _path("output", suffixes=TRANSFORM_SUFFIXES, panel="outputTransform", cli={
        "required": True, "help": "ITK transform file to write; tps needs .h5"})  # fmt: skip
    reference_image: str | None = _path("input", panel="referenceVolume", node="volume", cli={
        "help": "grid for the tps displacement field (default: --fixed-image, else a 2 mm box around the fixed "
        "points)"})  # fmt: skip
    fixed_image: str | None = _path("input", cli={
        "help": "fixed image: refuse fixed points that all lie outside it, warn about some outside"})  # fmt: skip
    moving_image: str | None = _path("input", cli={
        "help": "moving image: refuse moving points that all lie outside it, warn about some outside"})  # fmt: skip
    report: str | None = _path("output", suffixes=(".csv",), panel="residualTable",
                               cli={"help": "write the residual table as CSV (RAS mm)"})  # fmt: skip
    summary: str | None = _path("output", suffixes=(".json",), cli={
        "flag": "--json", "help": "write a JSON summary of the fit (- : to standard output)"})  # fmt: skip


@dataclass
class StackJob(Job):
    """Serial 2D sections aligned and stacked into a volume (:func:`..stack.align.stack_sections`).

    ``sections``: a folder or glob of sections in name order; ``pixel_mm`` (None: from the files) and
    ``section_mm`` in mm; ``reference``: an optional volume whose third axis is the cutting direction, section 0
    at ``reference_offset_mm`` from its first slice (:mod:`..stack.reference`); every ``reference_every``-th section
    is registered to it (None: :func:`..stack.anchors.anchor_every`).
    """

    module: ClassVar[str] = "MultimodalRegistrationLib.process.stack_job"

    sections: str = field(default=None, metadata={"required": True})
    section_mm: float = field(default=None, metadata={"required": True})
    output_volume: str = _path("output", required=True, suffixes=(".nrrd",))
    output_transforms: str | None = _path("output", suffixes=(".csv",))
    pixel_mm: float | None = None
    affine: bool = False
    neighbours: int | None = None
    threads: int = 2
    reference: str | None = _path("input")
    reference_offset_mm: float = 0.0
    reference_every: int | None = None  # sections between reference pairs (None: from the stack's depth)
    summary: str | None = _path("output", suffixes=(".json",))
    workdir: str | None = None

    def resolved(self) -> StackJob:
        """A copy with absolute paths, the sections' folder or glob's included."""
        job = super().resolved()
        if self.sections:
            job.sections = str(Path(self.sections).expanduser().resolve())
        return job
