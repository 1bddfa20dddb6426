"""The record of one registration: its result, how it was made, and what it wrote.

:class:`RegistrationSummary` is built by :func:`.register.register`, completed by the worker (read
and write times, outputs, the preparation) and read by every renderer (status line, node
attributes, terminal). Its JSON form, written by ``mmreg register --json``, keeps these keys:
``transform``, ``has_inverse``, ``metric``, ``seconds``, ``warnings``, ``provenance``, then
``outputs``, ``prep``, ``demo`` and ``piecewise`` when present. Standard library only: the parent side reads it.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

from ..core.records import Record


@dataclass
class Provenance(Record):
    """How a result was made: engine and versions, choices, where it started, inputs, timings (s).

    Matrices are fixed -> moving in LPS mm; ``fixed`` and ``moving`` describe the images (size,
    spacing in mm, origin in LPS mm, pixel type, source file). ``kept`` is "result"; or, when the result
    agreed less than its start or folded (``kept_reason`` says which, with the numbers), the latest
    earlier stage that did not ("affine stage") or else "start".
    ``guidance`` (guided runs only) records the segments, landmark count, weights, the start candidates
    and the guidance scores (Dice, surface distance and landmark distance in mm) at the start and the result.
    ``fixed_sampling`` says where the engine sampled the fixed image when no fixed mask was given and
    too little of it lay inside the moving image at the start (see :mod:`.mask_start`).
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
    starts_tried: list[dict]
    any_pose: dict | None
    start_offset: dict | None
    fixed: dict
    moving: dict
    fixed_mask: str | None
    moving_mask: str | None
    timings_s: dict[str, float] = field(default_factory=dict)
    kept: str = "result"
    kept_reason: str = ""
    guidance: dict | None = None  # segments, landmarks, weights and their scores at the start and the result
    fixed_sampling: str | None = None  # without a fixed mask: where the engine sampled, if not everywhere

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> Provenance:
        # A key missing from an older record takes its field's default (``kept``: "result"), else None.
        return cls(**{f.name: record.get(f.name, None if f.default is MISSING else f.default) for f in fields(cls)})


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
    piecewise: dict | None = None  # per-segment results and the blended field (registration/piecewise.py)

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
                record[name] = getattr(self, name)
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
            piecewise=record.get("piecewise"),
        )
