"""The record of one registration: its result, how it was made, and what it wrote.

:class:`RegistrationSummary` is built by :func:`.register.register`, completed by the worker (read
and write times, outputs, the preparation) and read by every renderer (status line, node
attributes, terminal). Its JSON form, written by ``mmreg register --json``, keeps these keys:
``transform``, ``has_inverse``, ``metric``, ``seconds``, ``warnings``, ``provenance``, then
``outputs``, ``prep``, ``demo`` and ``piecewise`` when present. Its parts are records down to the leaves
(:class:`Provenance`'s ``starts_tried``, ``any_pose``, ``start_offset``, ``fixed``/``moving``, ``guidance``;
:class:`PiecewiseRecord`), each writing the keys 0.1.0 wrote. No numpy or SimpleITK types: the parent side reads it.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from ..core.records import Record, from_json, to_json


def _omitted(default=None):
    """A field left out of the JSON while it is None (a key only some records have)."""
    return field(default=default, metadata={"omit_none": True})


@dataclass
class ImageDescription(Record):
    """An input image: its file (None: given in memory), size (voxels), spacing (mm), origin (LPS mm), pixel type."""

    source: str | None = None
    size: list[int] = field(default_factory=list)
    spacing_mm: list[float] = field(default_factory=list)
    origin_lps_mm: list[float] = field(default_factory=list)
    pixel_type: str = ""


@dataclass
class StartRun(Record):
    """One start the engine ran from: the metric after it (mutual information, nats), or the engine's
    ``error`` there, and where it sampled the fixed image when not everywhere (``fixed_sampling``); a run again
    without some of the preset's stages names them (``stages_skipped``, :mod:`.without_affine`)."""

    start: str
    metric_after: float | None = _omitted()
    error: str | None = _omitted()
    fixed_sampling: str | None = _omitted()
    stages_skipped: list[str] | None = _omitted()


@dataclass
class StartOffset(Record):
    """How far the chosen start lies from the pose before any search (``from``: "image centres" or
    "initial transform"): rotation in degrees, shift in mm at the fixed image's centre, and its isotropic
    ``scale`` relative to that pose when it changes size (1 = same size)."""

    from_: str = field(metadata={"key": "from"})
    rotation_deg: float = 0.0
    shift_mm: float = 0.0
    scale: float | None = _omitted()


@dataclass
class MirrorCheck(Record):
    """The best mirrored pose's margin over the best proper one (mutual information, nats), its noise, the
    margin needed to call it mirrored, and the verdict: "proper", "doubtful" or "mirrored"."""

    gap: float
    noise: float
    needed: float
    verdict: str


@dataclass
class AnyPoseSearch(Record):
    """The pose search (``--init any-pose``): the best pose (fixed -> moving, LPS mm), its metric and the best
    mirrored one's (nats), poses tried, seconds, and the mirror check; a scaled search adds the ``scale``
    found (moving / fixed size), the ``scale_seeds`` it started from and the ``scales_searched``."""

    scale: float | None = _omitted()
    scale_seeds: dict[str, float] | None = _omitted()
    scales_searched: list[float] | None = _omitted()
    seed_margin: float | None = _omitted()  # sample seeds found distinct starts: the kept one's score over the next's
    matrix_lps: list[list[float]] = field(default_factory=list)
    metric: float = 0.0
    mirrored_metric: float | None = None
    candidates: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    mirror_checked: bool = False
    mirror: MirrorCheck | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class GuidedSegment(Record):
    """A segment that guides: its name and label value in the fixed and the moving labelmaps, and how they were
    paired ("name", "label value", or "only segment": one segment a side, whatever its name; absent in summaries
    written before 2026-11-27)."""

    name: str
    fixed_value: int
    moving_value: int
    paired_by: str | None = _omitted()


@dataclass
class GuidanceChannel(Record):
    """One segment channel the engine was given, and its weight."""

    name: str
    weight: float


@dataclass
class EngineTerms(Record):
    """What the engine was given: the intensity term's weight, the segment channels, the landmark count and weight."""

    intensity_weight: float = 1.0
    channels: list[GuidanceChannel] = field(default_factory=list)
    points: int = 0
    points_weight: float = 0.0


@dataclass
class StartCandidate(Record):
    """One candidate start: its rotation from the prior (degrees), mean surface distance (mm), mutual
    information (nats), advantage over the prior (SDs of its bootstrap noise), confidence (0..1) and why it
    won or could not. (0.1.0 wrote only the name and its ``dice``.)"""

    name: str
    rotation_from_prior_deg: float | None = None
    surface_mm: float | None = None
    mutual_information: float | None = None
    z_vs_prior: float | None = None
    confidence: float = 0.0
    reason: str = ""
    dice: float | None = _omitted()


@dataclass
class StartChoice(Record):
    """Which candidate start won, why, and the scores' noise (surface mm, mutual information nats)."""

    chosen: str
    reason: str = ""
    noise: dict[str, float | None] = field(default_factory=dict)


@dataclass
class GuidanceScores(Record):
    """Agreement of one pose with the guidance: Dice and mean surface distance (mm) per segment, each
    landmark's distance (mm), and their means (RMS for the landmarks); None where nothing was measured."""

    dice: dict[str, float | None] = field(default_factory=dict)
    surface_mm: dict[str, float | None] = field(default_factory=dict)
    points_mm: list[float | None] = field(default_factory=list)
    mean_dice: float | None = None
    mean_surface_mm: float | None = None
    points_rms_mm: float | None = None


@dataclass
class GuidanceRecord(Record):
    """A guided run's guidance: the metric ("intensity" or "segments"), the segments, the landmark count, what
    the engine was given, the start candidates and the choice among them, and the guidance scores at the
    start, the result returned and (with segments) the segments' centroids brought together; when the run
    returned another pose than the engine's result (its start, an earlier stage, the centroids), also at the
    engine's result."""

    metric: str = "intensity"
    segments: list[GuidedSegment] = field(default_factory=list)
    points: int = 0
    engine_terms: EngineTerms | None = None
    start_candidates: list[StartCandidate] | None = None
    start_choice: StartChoice | None = None
    score_start: GuidanceScores | None = None
    score_result: GuidanceScores | None = None  # of what the run returned
    score_centroids: GuidanceScores | None = _omitted()
    score_engine: GuidanceScores | None = _omitted()  # the engine's own result, when the run returned another pose
    # RMS (mm) of the landmarks' own least-squares rigid fit: their click scatter, below which no rigid result
    # gets at the clicks (4 or more landmarks)
    points_fit_rms_mm: float | None = _omitted()
    # The landmarks' labels, pair by pair (each fixed point's, or its number), and how the two lists were paired
    # ("label" or "order"): a record of five points said nothing of which five.
    point_labels: list[str] | None = _omitted()
    points_paired_by: str | None = _omitted()


@dataclass
class Provenance(Record):
    """How a result was made: engine and versions, choices, where it started, inputs, timings (s).

    Matrices are fixed -> moving in LPS mm; ``fixed`` and ``moving`` describe the images (size,
    spacing in mm, origin in LPS mm, pixel type, source file). ``kept`` is "result"; or, when the result
    agreed less than its start or folded (``kept_reason`` says which, with the numbers), the latest
    earlier stage that did not ("affine stage") or else "start"; a guided run with segments whose result
    agrees less with them than the segments' centroids brought together keeps "segment centroids".
    ``guidance`` (guided runs only) records the segments, landmark count, weights, the start candidates
    (each with its score, confidence and reason; ``start_choice`` says which won and why) and the guidance
    scores (Dice, surface distance and landmark distance in mm) at the start, the result and the centroids.
    ``fixed_sampling`` says where the engine sampled the fixed image when no fixed mask was given and
    too little of it lay inside the moving image at the start (see :mod:`.mask_start`).
    ``command`` is the equivalent ``mmreg register`` command line, set by the worker that ran the job.
    A guided deformable run (presets with ``guided_from_start``) runs its rigid stages from the guided start
    first, judged as a rigid run; ``rigid_stage`` says "kept" or why not, and its deformable stages start from
    the pose kept. ``stages_skipped`` names the similarity and affine stages it left out.
    ``before_matrix_lps`` is the pose of ``metric_before`` (the initial transform, else the image centres
    aligned), so that a QA of the result can measure "before" where the registration did.
    """

    engine: str
    engine_version: str
    preset: str
    preset_files: list[str]
    library_version: str
    simpleitk_version: str
    python_version: str
    seed: int
    threads: int
    init: str
    max_rotation_deg: float
    initial_transform: str | None
    start: str
    start_matrix_lps: list | None
    starts_tried: list[StartRun]
    any_pose: AnyPoseSearch | None
    start_offset: StartOffset | None
    fixed: ImageDescription
    moving: ImageDescription
    fixed_mask: str | None
    moving_mask: str | None
    timings_s: dict[str, float] = field(default_factory=dict)
    # Each of preset_files' SHA-256, in its order: an edited preset file shows as another run (a helper's copy with
    # fewer iterations gave results 0.29 mm apart under records that were otherwise the same).
    preset_sha256: list[str] = field(default_factory=list)
    kept: str = "result"
    kept_reason: str = ""
    guidance: GuidanceRecord | None = None  # segments, landmarks, weights and their scores at the start and the result
    fixed_sampling: str | None = None  # without a fixed mask: where the engine sampled, if not everywhere
    command: str | None = None  # the ``mmreg register`` command line that repeats the run (process/command.py)
    before_matrix_lps: list | None = None  # the pose the metric "before" is measured at (fixed -> moving), if linear
    stages_skipped: list[str] = field(default_factory=list)
    rigid_stage: str = ""
    # Small anatomy registered with its geometry this many times larger (registration/working_scale.py).
    working_scale: float | None = _omitted()
    # Why the pair was registered moving -> fixed and the result inverted (registration/other_way.py).
    other_way_round: str | None = _omitted()
    # Why a nonlinear preset ran from a rigid result placed first, both ways round (registration/placed_first.py).
    placed_first: str | None = _omitted()
    # Why the run started from the headers' pose alone: the fixed image is a small view inside the moving anatomy,
    # sampled inside it (registration/rules/view_mask.py).
    small_view: str | None = _omitted()

    def __post_init__(self) -> None:
        # The parts may be given as their JSON (as register() builds them): read each as its record.
        hints = typing.get_type_hints(type(self))
        for name in ("starts_tried", "any_pose", "start_offset", "fixed", "moving", "guidance"):
            value = getattr(self, name)
            if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
                setattr(self, name, from_json(hints[name], value))


@dataclass
class RegistrationSummary(Record):
    """A registration's result and provenance. ``matrix_lps`` (fixed -> moving) is set for linear results;
    ``metric_before``/``metric_after`` are mutual information in nats (higher agrees better)."""

    transform_kind: str
    matrix_lps: list | None
    has_inverse: bool
    metric_name: str
    metric_before: float
    metric_after: float
    seconds: float
    warnings: list[str]
    provenance: Provenance
    outputs: dict[str, str] | None = None
    prep: dict | None = None
    demo: dict | None = None
    piecewise: PiecewiseRecord | None = None  # per-segment results and the blended field (registration/piecewise)

    def to_dict(self) -> dict:
        transform: dict = {"kind": self.transform_kind}
        if self.matrix_lps is not None:
            transform["matrix_lps"] = self.matrix_lps
        record = {
            "transform": transform,
            "has_inverse": self.has_inverse,
            "metric": {"name": self.metric_name, "before": self.metric_before, "after": self.metric_after},
            "seconds": self.seconds,
            "warnings": list(self.warnings),
            "provenance": self.provenance.to_dict(),
        }
        for name in ("outputs", "prep", "demo", "piecewise"):
            if getattr(self, name) is not None:
                record[name] = to_json(getattr(self, name))
        return record

    @classmethod
    def from_dict(cls, record: dict) -> RegistrationSummary:
        metric = record["metric"]
        return cls(
            transform_kind=record["transform"]["kind"],
            matrix_lps=record["transform"].get("matrix_lps"),
            has_inverse=record["has_inverse"],
            metric_name=metric["name"],
            metric_before=metric["before"],
            metric_after=metric["after"],
            seconds=record["seconds"],
            warnings=list(record.get("warnings", [])),
            provenance=Provenance.from_dict(record["provenance"]),
            outputs=record.get("outputs"),
            prep=record.get("prep"),
            demo=record.get("demo"),
            piecewise=PiecewiseRecord.from_dict(record["piecewise"]) if record.get("piecewise") else None,
        )


@dataclass
class FromGlobal(Record):
    """How far a segment's own result lies from the global one: degrees, and mm at the segment's centroid."""

    rotation_deg: float | None = None
    shift_mm: float | None = None


@dataclass
class MetricChange(Record):
    """A metric (``name``, e.g. mutual information in nats) before and after."""

    name: str
    before: float
    after: float


@dataclass
class SegmentQA(Record):
    """A segment's guidance scores at the global result (``before``) and at its own (``after``)."""

    before: GuidanceScores
    after: GuidanceScores


@dataclass
class SegmentRun(Record):
    """How a segment's own registration ran: its start, the starts tried, what the engine run kept and why."""

    start: str | None = None
    starts_tried: list[StartRun] = field(default_factory=list)
    engine_kept: str = "result"
    engine_kept_reason: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass
class PiecewiseSegment(Record):
    """One segment of a piecewise run: kept or not (``reason``), its transform (fixed -> moving, LPS mm), how
    far it lies from the global one, its metric and guidance scores before (global) and after (own), the margin
    its fixed mask grew by (mm), seconds, and how its registration ran (None when it did not run)."""

    name: str
    kept: bool
    reason: str
    matrix_lps: list[list[float]]
    from_global: FromGlobal
    metric: MetricChange
    qa: SegmentQA
    seconds: float = 0.0
    margin_mm: float = 0.0
    registration: SegmentRun | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class PiecewiseRecord(Record):
    """A piecewise registration: the global summary (``global`` in JSON), each segment's result, the blended
    field's grid and checks (``blend``; ``field`` in JSON), its smallest Jacobian determinant, seconds and warnings."""

    global_summary: RegistrationSummary = field(metadata={"key": "global"})
    segments: list[PiecewiseSegment] = field(default_factory=list)
    blend: dict[str, Any] = field(default_factory=dict, metadata={"key": "field"})
    minimum_jacobian: float = 0.0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
