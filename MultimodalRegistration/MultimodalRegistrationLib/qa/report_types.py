"""The QA report of one case as one typed record: what was measured, on what, and how long it took.

:func:`.assess.assess_registration` builds a :class:`QAReport`; the renderers (terminal summary,
HTML report, Slicer table and status text) read its attributes. Its JSON form (``mmreg qa --json``)
is :meth:`QAReport.to_dict`, with these keys: ``inputs``, ``transform``, ``library_version``,
``warnings``, ``made_by`` (versions; not in older records), then ``landmarks`` and ``segmentation`` when
given, ``images``, ``jacobian``, ``inverse_consistency``, ``stability`` when run, ``seconds``, and
``pictures`` once written.
Scripts read its attributes (``report.landmarks.tre``), or that dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..core.made_by import made_by
from ..core.records import Record
from ..core.transforms import Transform
from ..core.version import __version__
from .images import ImageAgreement
from .jacobian import InverseConsistency, JacobianStatistics
from .landmarks import LandmarkErrors
from .overlap import SegmentationOverlap
from .stability import StabilityResult


@dataclass
class TransformDescription(Record):
    """The transform under test: its kind and, when linear, its 4x4 matrix (fixed -> moving, LPS mm)."""

    kind: str
    matrix_lps: list[list[float]] | None = None

    direction: ClassVar[str] = "fixed -> moving (LPS mm, resampling direction); points move by its inverse"

    @classmethod
    def of(cls, transform: Transform) -> TransformDescription:
        matrix = np.round(transform.matrix, 9).tolist() if transform.is_linear else None
        return cls(transform.kind, matrix)

    def to_dict(self) -> dict:
        record = {"kind": self.kind, "direction": self.direction}
        if self.matrix_lps is not None:
            record["matrix_lps"] = self.matrix_lps
        return record


@dataclass
class QAReport(Record):
    """Every measure of one registration's quality. "Before" is the moving image without the transform
    under test, "after" with it. ``inputs`` names the input files (or nodes) by role; ``timings`` holds
    the seconds per step; ``pictures`` maps kind -> stage -> PNG path relative to the HTML report."""

    transform: TransformDescription
    images_before: ImageAgreement
    images_after: ImageAgreement
    jacobian: JacobianStatistics
    inverse_consistency: InverseConsistency
    landmarks: LandmarkErrors | None = None
    segmentation: SegmentationOverlap | None = None
    stability: StabilityResult | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    library_version: str = __version__
    made_by: dict = field(default_factory=made_by)  # versions (core.made_by); {} in older records
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    pictures: dict[str, dict[str, str]] | None = None

    def to_dict(self) -> dict:
        record: dict = {
            "inputs": dict(self.inputs),
            "transform": self.transform.to_dict(),
            "library_version": self.library_version,
            "warnings": list(self.warnings),
        }
        if self.made_by:  # not in records written before it was kept
            record["made_by"] = dict(self.made_by)
        if self.landmarks is not None:
            record["landmarks"] = self.landmarks.to_dict()
        if self.segmentation is not None:
            record["segmentation"] = self.segmentation.to_dict()
        record["images"] = {"before": self.images_before.to_dict(), "after": self.images_after.to_dict()}
        record["jacobian"] = self.jacobian.to_dict()
        record["inverse_consistency"] = self.inverse_consistency.to_dict()
        if self.stability is not None:
            record["stability"] = self.stability.to_dict()
        record["seconds"] = dict(self.timings)
        if self.pictures is not None:
            record["pictures"] = self.pictures
        return record

    @classmethod
    def from_dict(cls, record: dict, strict: bool = False) -> QAReport:
        """A report read back from its JSON (``mmreg qa --json``, a cohort case's ``qa.json``)."""
        images = record["images"]
        parts = {
            "transform": TransformDescription.from_dict(record["transform"]),
            "images_before": ImageAgreement.from_dict(images["before"]),
            "images_after": ImageAgreement.from_dict(images["after"]),
            "jacobian": JacobianStatistics.from_dict(record["jacobian"]),
            "inverse_consistency": InverseConsistency.from_dict(record["inverse_consistency"]),
        }
        for name, kind in (("landmarks", LandmarkErrors), ("segmentation", SegmentationOverlap),
                           ("stability", StabilityResult)):  # fmt: skip
            parts[name] = kind.from_dict(record[name]) if record.get(name) is not None else None
        return cls(**parts, inputs=dict(record.get("inputs", {})), library_version=record.get("library_version", ""),
                   made_by=dict(record.get("made_by") or {}),
                   warnings=list(record.get("warnings", [])), timings=dict(record.get("seconds", {})),
                   pictures=record.get("pictures"))  # fmt: skip
