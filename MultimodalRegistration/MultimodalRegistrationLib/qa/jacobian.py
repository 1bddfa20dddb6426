"""Deformable sanity: Jacobian determinant statistics of a transform, and inverse consistency.

The Jacobian determinant of the fixed -> moving mapping is the local volume ratio: 1 keeps volume,
above 1 the moving anatomy there is larger, and a value <= 0 means the transform folds (it maps
two fixed points to one moving point, or turns space inside out). It is sampled on an axis-aligned
grid (LPS mm) over the fixed image, and taken on each displacement field's own cells, by
:func:`..core.folding.folding`, the check by which the registration keeps a nonlinear result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.folding import SAMPLING_SPACING_MM, folding
from ..core.records import Record
from ..core.transforms import Transform, lps_ras_points


@dataclass
class JacobianStatistics(Record):
    """Jacobian determinant over the fixed image (no unit): extremes, folding and percentiles."""

    minimum: float
    maximum: float
    mean: float
    folding_percent: float  # % of samples with determinant <= 0
    percentile_1: float
    percentile_99: float
    minimum_at_ras: list[float] = field(metadata={"key": "minimum_at_ras_mm"})  # where it is smallest (RAS mm)
    samples: int
    spacing_mm: float | None  # grid spacing (None: linear, the determinant is the same everywhere)

    def to_dict(self) -> dict:
        return {
            "minimum": round(self.minimum, 6),
            "maximum": round(self.maximum, 6),
            "mean": round(self.mean, 6),
            "folding_percent": round(self.folding_percent, 6),
            "percentile_1": round(self.percentile_1, 6),
            "percentile_99": round(self.percentile_99, 6),
            "minimum_at_ras_mm": [round(v, 3) for v in self.minimum_at_ras],
            "samples": self.samples,
            "spacing_mm": self.spacing_mm,
        }


def jacobian_statistics(
    transform: Transform,
    fixed: sitk.Image,
    spacing_mm: float = SAMPLING_SPACING_MM,
    fixed_mask: sitk.Image | None = None,
) -> JacobianStatistics:
    """Jacobian determinant statistics over the fixed image (or its mask), sampled every ``spacing_mm`` (mm), by
    :func:`..core.folding.folding`, the registration's keep rule's check too: the minimum and the folding share also
    hold every displacement field's folds on its own grid (at 27 points of each cell, as ITK and Slicer interpolate
    it). The sampled grid averages over two of its cells and missed such folds: a field folding over 3532 mm^3
    (down to -0.50) read 0.062 and no folding when its grid lay 1 mm off the sampling grid. A field's folding share
    is its folded cells' volume against the region's. Folds of a B-spline thinner than ``spacing_mm`` can be missed.
    """
    found = folding(transform, fixed, fixed_mask, spacing_mm)
    values = found.sampled
    statistics = JacobianStatistics(
        minimum=float(values.min()),
        maximum=float(values.max()),
        mean=float(values.mean()),
        folding_percent=float(100.0 * np.count_nonzero(values <= 0) / values.size),
        percentile_1=float(np.percentile(values, 1)),
        percentile_99=float(np.percentile(values, 99)),
        minimum_at_ras=_ras(found.sampled_at_lps),
        samples=int(values.size),
        spacing_mm=found.spacing_mm,
    )
    for folds in found.fields:  # the first applied first; a field counts where it lowers the minimum
        if folds.minimum >= statistics.minimum:
            continue
        statistics.minimum = folds.minimum
        statistics.minimum_at_ras = _ras(folds.at_lps)
        share = min(100.0, 100.0 * folds.folded_mm3 / found.region_mm3)
        statistics.folding_percent = max(statistics.folding_percent, share)
    return statistics


def _ras(point_lps: np.ndarray) -> list[float]:
    return [float(v) for v in lps_ras_points(np.asarray(point_lps).reshape(1, 3))[0]]


# An engine's inverse undoes its result to a few hundredths of a mm; an inverse that misses by more than this
# (mm) is not the inverse of that result (an earlier run's, or the transform itself given twice).
INVERSE_MISS_MM = 0.5


@dataclass
class InverseConsistency(Record):
    """How far ``inverse(transform(x))`` lands from ``x`` (mm) at fixed-space points (LPS), or, with
    ``mean_mm`` None, the ``reason`` it was not measured."""

    mean_mm: float | None
    p95_mm: float | None = None
    max_mm: float | None = None
    points: int = 0
    reason: str | None = None

    def to_dict(self) -> dict:
        if self.mean_mm is None:
            return {"mean_mm": None, "reason": self.reason}
        return {
            "mean_mm": round(self.mean_mm, 6),
            "p95_mm": round(self.p95_mm, 6),
            "max_mm": round(self.max_mm, 6),
            "points": self.points,
        }


def inverse_consistency(transform: Transform, inverse: Transform, points_lps: np.ndarray) -> InverseConsistency:
    """How far ``inverse(transform(x))`` lands from ``x`` (mm) at fixed-space points: mean, 95th percentile, max."""
    points = np.asarray(points_lps, float).reshape(-1, 3)
    if len(points) == 0:
        raise InputError("no points to measure inverse consistency at: give points inside the fixed image")
    errors = np.linalg.norm(inverse.transform_points(transform.transform_points(points)) - points, axis=1)
    return InverseConsistency(float(errors.mean()), float(np.percentile(errors, 95)), float(errors.max()), len(points))
