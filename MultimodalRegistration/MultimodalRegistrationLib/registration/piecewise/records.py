"""The records of a piecewise registration: each segment's own result, the blended field, and their JSON-ready
summary. Every transform maps fixed points to moving points (LPS mm)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.files import VOLUME_SUFFIXES, suffix_of
from ...core.images import write_image
from ...core.records import Record
from ...core.transforms import Transform
from ..describe import describe_piecewise
from ..guided.score import GuidanceScore
from ..register import METRIC_NAME, RegistrationResult
from .polyrigid import PolyrigidField


@dataclass
class SegmentResult:
    """One segment's own rigid registration, scored against the global result it started from.

    ``transform`` (fixed -> moving, LPS mm) is the segment's result, or the global transform when the
    result was not ``kept`` (``reason`` says why). ``rotation_deg``/``shift_mm`` are how far the result
    lies from the global one (degrees; mm at the segment's centroid). ``metric_before``/``metric_after``
    are mutual information (nats) inside the grown fixed segment at the global and at the kept
    transform; ``score_before``/``score_after`` the segment's Dice, mean surface distance (mm) and
    landmark distances (mm) at the same two.
    """

    name: str
    transform: Transform
    kept: bool
    reason: str
    rotation_deg: float | None
    shift_mm: float | None
    margin_mm: float
    metric_before: float
    metric_after: float
    score_before: GuidanceScore
    score_after: GuidanceScore
    seconds: float
    registration: RegistrationResult | None
    warnings: list[str]

    def to_dict(self) -> dict:
        registration = self.registration
        provenance = None
        if registration is not None:
            record = registration.provenance
            provenance = {
                "start": record.start,
                "starts_tried": record.starts_tried,
                "engine_kept": record.kept,
                "engine_kept_reason": record.kept_reason,
                "timings_s": record.timings_s,
            }
        return {
            "name": self.name,
            "kept": self.kept,
            "reason": self.reason,
            "matrix_lps": np.round(self.transform.matrix, 9).tolist(),
            "from_global": {
                "rotation_deg": None if self.rotation_deg is None else round(self.rotation_deg, 3),
                "shift_mm": None if self.shift_mm is None else round(self.shift_mm, 3),
            },
            "metric": {
                "name": METRIC_NAME,
                "before": round(self.metric_before, 6),
                "after": round(self.metric_after, 6),
            },
            "qa": {"before": self.score_before.to_dict(), "after": self.score_after.to_dict()},
            "seconds": round(self.seconds, 3),
            "margin_mm": round(self.margin_mm, 3),
            "registration": provenance,
            "warnings": list(self.warnings),
        }


@dataclass
class PiecewiseSummary(Record):
    """The JSON-ready record of a piecewise registration: the global summary, each segment's result,
    provenance and QA (before = global, after = own), and the field's grid and Jacobian determinant."""

    global_summary: dict
    segments: list[dict]
    field: dict
    minimum_jacobian: float
    seconds: float
    warnings: list[str]

    def to_dict(self) -> dict:
        return {
            "global": self.global_summary,
            "segments": self.segments,
            "field": self.field,
            "minimum_jacobian": round(self.minimum_jacobian, 6),
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }


@dataclass
class PiecewiseResult:
    """A piecewise registration. ``field`` (fixed -> moving, LPS mm) is the blended displacement field;
    ``minimum_jacobian`` its smallest Jacobian determinant (> 0: it does not fold)."""

    global_result: RegistrationResult
    segments: dict[str, SegmentResult]
    field: Transform
    minimum_jacobian: float
    blend: PolyrigidField
    seconds: float
    warnings: list[str]

    def summary(self) -> PiecewiseSummary:
        return PiecewiseSummary(
            global_summary=self.global_result.summary().to_dict(),
            segments=[segment.to_dict() for segment in self.segments.values()],
            field=self.blend.to_dict(),
            minimum_jacobian=self.minimum_jacobian,
            seconds=self.seconds,
            warnings=list(self.warnings),
        )

    def to_dict(self) -> dict:
        return self.summary().to_dict()

    def table(self) -> list[str]:
        """One line per segment: QA before (global) -> after (own), and the distance from the global result."""
        return describe_piecewise(self.to_dict()).splitlines()

    def write_field(self, path: str | Path) -> None:
        """Write the field: an ITK transform (.h5) or a displacement image (.nii.gz, .nrrd, .mha; LPS mm)."""
        if suffix_of(path) in VOLUME_SUFFIXES:
            write_image(self.blend.field, path)
        else:
            self.field.write(path)
