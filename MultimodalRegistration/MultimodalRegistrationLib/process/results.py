"""What a worker job returns: its summary and the files it wrote, as records.

The worker sends ``{"event": "result", "summary": {...}, "outputs": {"transform": "T.h5", ...}}`` (plus
``qa`` and ``verdict`` for a cohort case); the parent reads it back as the job type's :class:`JobResult`
(``Job.result_type``), so callers read ``result.outputs.transform``, not ``result["outputs"]["transform"]``.
Standard library only at the top, so that the parent side stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..core.records import Record
from ..prep.summary import PrepSummary
from ..registration.summary import RegistrationSummary

SEGMENT_PREFIX = "transform_"  # a piecewise run's per-segment transforms: ``transform_<segment>``


@dataclass
class JobOutputs(Record):
    """The files a job wrote, by role (absolute paths; a cohort case's record holds them relative to its
    folder). None: not written. ``segment_transforms`` (piecewise runs) maps segment -> rigid transform file;
    in JSON each is ``transform_<segment>``, beside the others."""

    OMIT_NONE = True

    transform: str | None = None  # fixed -> moving (LPS), the registration's result
    transform_3d: str | None = None  # a 2D registration's transform embedded in 3D, for Slicer
    transforms: str | None = None  # a stack's per-section transforms (CSV)
    segment_transforms: dict[str, str] = field(default_factory=dict)
    inverse: str | None = None
    volume: str | None = None  # the moving image resampled onto the fixed grid
    log: str | None = None  # the engine's log
    summary: str | None = None  # the summary JSON
    qa: str | None = None  # a cohort case's QA JSON, its HTML report and pictures, and its checkerboard PNG
    qa_report: str | None = None
    qa_figures: str | None = None
    checkerboard: str | None = None
    fixed: str | None = None  # a preparation's images
    moving: str | None = None
    fixed_mask: str | None = None
    moving_mask: str | None = None

    def to_dict(self) -> dict:
        """Role -> path, in the order the job wrote them; the segments' transforms right after ``transform``."""
        record = {}
        for f in fields(self):
            if f.name == "segment_transforms":
                record.update({SEGMENT_PREFIX + name: path for name, path in self.segment_transforms.items()})
            elif getattr(self, f.name) is not None:
                record[f.name] = getattr(self, f.name)
        return record

    @classmethod
    def from_dict(cls, record: dict, strict: bool = False) -> JobOutputs:
        known = {f.name for f in fields(cls)} - {"segment_transforms"}  # transform_3d is no segment's
        segments = {key[len(SEGMENT_PREFIX):]: path for key, path in record.items()
                    if key.startswith(SEGMENT_PREFIX) and key not in known}  # fmt: skip
        plain = {key: path for key, path in record.items() if key in known}
        return cls(**plain, segment_transforms=segments)

    def items(self) -> list[tuple[str, str]]:
        """(role, path) of every file written, as in the JSON."""
        return list(self.to_dict().items())

    def relative_to(self, folder) -> JobOutputs:
        """The same outputs with paths relative to ``folder`` (a cohort case's record)."""
        import os

        return JobOutputs.from_dict({role: os.path.relpath(path, folder) for role, path in self.items()})


@dataclass
class JobResult(Record):
    """A finished job: its summary (JSON-ready) and the files it wrote."""

    summary: Any
    outputs: JobOutputs = field(default_factory=JobOutputs)

    def event(self) -> dict:
        """The result as the worker sends it."""
        return {"event": "result", **self.to_dict()}

    @classmethod
    def from_event(cls, event: dict) -> JobResult:
        return cls.from_dict({key: value for key, value in event.items() if key not in ("event", "worker")})


@dataclass
class RegistrationJobResult(JobResult):
    """A registration: its :class:`..registration.summary.RegistrationSummary` and the files it wrote."""

    summary: RegistrationSummary


@dataclass
class PrepJobResult(JobResult):
    """A preparation: its :class:`..prep.summary.PrepSummary` and the prepared images and masks."""

    summary: PrepSummary


@dataclass
class CaseJobResult(RegistrationJobResult):
    """A cohort case: the registration, then its QA report (:class:`..qa.report_types.QAReport`) and its triage
    verdict (:class:`..qa.triage.Verdict`); both read lazily, as the QA layer needs numpy and SimpleITK."""

    qa: Any = None
    verdict: Any = None

    @classmethod
    def from_dict(cls, record: dict, strict: bool = False) -> CaseJobResult:
        from ..qa.report_types import QAReport
        from ..qa.triage import Verdict

        result = super().from_dict(record, strict)
        result.qa = QAReport.from_dict(result.qa) if isinstance(result.qa, dict) else result.qa
        result.verdict = Verdict.from_dict(result.verdict) if isinstance(result.verdict, dict) else result.verdict
        return result
