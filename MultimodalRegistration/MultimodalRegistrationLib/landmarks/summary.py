"""The record of one landmark prealignment (``mmreg prealign --json``): the fit, its errors per point and
overall (mm, world RAS), and, as the command writes it, its inputs and outputs.

Keys on disk: ``type``, ``paired_by``, ``transform``, ``fre_mm``, ``loo_rms_mm``, ``points``, ``warnings``,
``notes``, ``library_version``, ``field_grid`` (tps), then, as the command sets them, ``command``, ``inputs``
(absolute paths), ``points_systems`` and ``outputs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.records import Record

OMIT = {"omit_none": True}  # a None value is left out of the JSON


@dataclass
class FitTransform(Record):
    """The fitted transform's kind, its direction (fixed -> moving, Slicer's TransformFromParent) and, when
    linear, its 4x4 matrix in LPS and in RAS."""

    kind: str
    direction: str = "fixed -> moving (resampling; TransformFromParent)"
    matrix_lps: list[list[float]] | None = field(default=None, metadata=OMIT)
    matrix_ras: list[list[float]] | None = field(default=None, metadata=OMIT)
    # of the linear part (a spline's affine part); below 0 the fit mirrors space, a warning says so
    determinant: float | None = field(default=None, metadata=OMIT)
    mirrors: bool | None = field(default=None, metadata=OMIT)  # None: a record written before it was kept


@dataclass
class FieldGrid(Record):
    """The grid a tps displacement field was sampled on (LPS mm): where it came from ("reference image", "fixed
    image" or "box around the fixed points"), its size (voxels), spacing, origin and direction."""

    source: str
    size: list[int]
    spacing_mm: list[float]
    origin_lps_mm: list[float]
    direction: list[float]


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
    paired ("label" or "order"), the transform, FRE and leave-one-out RMS (mm), each point, warnings and notes,
    the library version and a spline's grid; ``command``, ``inputs`` (absolute paths by role), ``points_systems``
    and ``outputs`` are set by ``mmreg prealign``."""

    kind: str = field(metadata={"key": "type"})
    paired_by: str
    transform: FitTransform
    fre_mm: FitErrors
    loo_rms_mm: float | None
    points: list[PointRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    library_version: str | None = field(default=None, metadata=OMIT)  # set by the fit; None in older records
    field_grid: FieldGrid | None = field(default=None, metadata=OMIT)
    command: str | None = field(default=None, metadata=OMIT)
    working_folder: str | None = field(default=None, metadata=OMIT)  # where ``command`` was typed (its relative paths)
    inputs: dict[str, str | None] | None = field(default=None, metadata=OMIT)
    # each points file's coordinate system as read ("RAS"/"LPS") and what in the file said so
    points_systems: dict[str, dict[str, str]] | None = field(default=None, metadata=OMIT)
    outputs: dict[str, str] | None = field(default=None, metadata=OMIT)
