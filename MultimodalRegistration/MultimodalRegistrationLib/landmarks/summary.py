"""The record of one landmark prealignment (``mmreg prealign --json``): the fit, its errors per point and
overall (mm, world RAS), and, as the command writes it, its inputs and outputs.

Keys on disk: ``type``, ``paired_by``, ``transform``, ``fre_mm``, ``loo_rms_mm``, ``points``, ``warnings``,
``notes``, then ``inputs`` and ``outputs`` when set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.records import Record


def _omitted():
    return field(default=None, metadata={"omit_none": True})


@dataclass
class FitTransform(Record):
    """The fitted transform's kind, its direction (fixed -> moving, Slicer's TransformFromParent) and, when
    linear, its 4x4 matrix in LPS and in RAS."""

    kind: str
    direction: str = "fixed -> moving (resampling; TransformFromParent)"
    matrix_lps: list[list[float]] | None = _omitted()
    matrix_ras: list[list[float]] | None = _omitted()


@dataclass
class FitErrors(Record):
    """The fiducial registration error over the pairs used in the fit (mm): RMS, mean and largest."""

    rms: float
    mean: float
    max: float


@dataclass
class PointRecord(Record):
    """One pair (world RAS mm): where the fit maps the fixed point, its distance to the moving point, and the
    same for a fit made without this pair (``loo_error_mm``; None: too few points left)."""

    label: str
    moving_label: str
    fixed_ras_mm: list[float]
    moving_ras_mm: list[float]
    mapped_ras_mm: list[float]
    error_mm: float
    loo_error_mm: float | None = None


@dataclass
class PrealignSummary(Record):
    """A landmark fit's record: its ``kind`` ("type" in JSON: rigid, similarity, affine, tps), how points were
    paired ("label" or "order"), the transform, FRE and leave-one-out RMS (mm), each point, warnings and notes;
    ``inputs`` and ``outputs`` (files by role) are set by ``mmreg prealign``."""

    kind: str = field(metadata={"key": "type"})
    paired_by: str
    transform: FitTransform
    fre_mm: FitErrors
    loo_rms_mm: float | None
    points: list[PointRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, str | None] | None = _omitted()
    outputs: dict[str, str] | None = _omitted()
