"""Landmark errors of a registration: FRE for the points the transform was fitted to, TRE for the others.

Direction: a library :class:`~.transforms.Transform` ``T`` maps fixed points to moving points (the
resampling direction). Points move the other way: a landmark placed on the *moving* image lands in
fixed space at ``T.inverse()(p)`` (Slicer's ToParent / modeling direction). Errors are measured in
fixed space, in mm, between that point and the fixed landmark. Beside them, the forward errors: each fixed
landmark mapped by ``T`` against its moving landmark, in moving space (the definition of issue 22's real-pair
table). A rigid result gives both the same; a deformable one does not where it stretches or compresses (a probe's
push: up to 10% apart on the hard TRUS-like pairs). Input and output points are world RAS
mm (what Slicer shows); the computation runs in LPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..core.errors import InputError
from ..core.records import Record
from ..core.transforms import Transform, lps_ras_points
from ..landmarks.fit import pair_landmarks
from ..landmarks.labels import label_key
from ..landmarks.models import a_fit, apply_model, fit_model, fit_name, fit_rms
from .landmark_outliers import outlier_warning

# A nonlinear transform is inverted point by point (Newton on T) down to INVERSION_TOLERANCE_MM; a point
# left with more than INVERSION_WARNING_MM did not converge, usually because the transform folds there.
INVERSION_TOLERANCE_MM = 1e-4
INVERSION_WARNING_MM = 0.1
_STEP_MM = 0.25  # central-difference step for the Jacobian of T


@dataclass
class ErrorStatistics(Record):
    """Summary of a set of point errors (mm)."""

    count: int
    mean_mm: float
    median_mm: float
    rms_mm: float
    max_mm: float

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "mean_mm": round(self.mean_mm, 4),
            "median_mm": round(self.median_mm, 4),
            "rms_mm": round(self.rms_mm, 4),
            "max_mm": round(self.max_mm, 4),
        }


def error_statistics(errors_mm: Sequence[float]) -> ErrorStatistics | None:
    """Mean, median, RMS and max of point errors (mm); None for no points."""
    values = np.asarray(errors_mm, float)
    if values.size == 0:
        return None
    return ErrorStatistics(
        count=int(values.size),
        mean_mm=float(values.mean()),
        median_mm=float(np.median(values)),
        rms_mm=float(np.sqrt(np.mean(values**2))),
        max_mm=float(values.max()),
    )


def _jacobians(transform: Transform, points: np.ndarray) -> np.ndarray:
    """(N, 3, 3) central-difference Jacobians of ``transform`` at ``points`` (LPS mm)."""
    jacobians = np.empty((len(points), 3, 3))
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = _STEP_MM
        forward = transform.transform_points(points + step)
        backward = transform.transform_points(points - step)
        jacobians[:, :, axis] = (forward - backward) / (2 * _STEP_MM)
    return jacobians


def moving_points_to_fixed(
    points_moving_lps: np.ndarray, transform: Transform, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Map moving-space points (LPS mm) to fixed space through ``transform.inverse()``.

    ``transform`` maps fixed to moving points. Linear transforms are inverted exactly. Nonlinear ones
    (grid, B-spline, composite chains) are inverted point by point: Newton's method on ``T(x) = p``,
    started from the transform's own inverse when it carries one (ANTs SyN), so that the answer is the
    exact inverse of the transform that resampled the image. Returns the fixed-space points and, per
    point, the residual ``|T(x) - p|`` in mm (0 for linear transforms).
    """
    targets = np.asarray(points_moving_lps, float).reshape(-1, 3)
    if transform.is_linear:
        return transform.inverse().transform_points(targets), np.zeros(len(targets))
    estimate = transform.inverse().transform_points(targets) if transform.has_exact_inverse() else targets.copy()
    residual = transform.transform_points(estimate) - targets
    size = np.linalg.norm(residual, axis=1)
    for _ in range(iterations):
        active = np.flatnonzero(size > INVERSION_TOLERANCE_MM)
        if active.size == 0:
            break
        # pinv, not solve: a singular Jacobian (a fold) must not stop the other points.
        steps = (np.linalg.pinv(_jacobians(transform, estimate[active])) @ residual[active][:, :, None])[:, :, 0]
        start = estimate[active]
        scale = np.ones(len(active))
        improved = np.zeros(len(active), bool)
        for _ in range(8):  # damped Newton: halve a step until it reduces the residual
            candidate = start - scale[:, None] * steps
            candidate_residual = transform.transform_points(candidate) - targets[active]
            candidate_size = np.linalg.norm(candidate_residual, axis=1)
            better = ~improved & (candidate_size < size[active])
            chosen = active[better]
            estimate[chosen], residual[chosen] = candidate[better], candidate_residual[better]
            size[chosen] = candidate_size[better]
            improved |= better
            if improved.all():
                break
            scale = np.where(improved, scale, scale / 2)
        if not improved.any():
            break
    return estimate, size


@dataclass
class LandmarkRow(Record):
    """One landmark pair (world RAS mm). ``mapped_ras`` is the moving landmark carried into fixed space."""

    label: str
    role: str  # "fit" (reported as FRE) or "target" (TRE)
    fixed_ras: np.ndarray
    moving_ras: np.ndarray
    mapped_before_ras: np.ndarray
    mapped_ras: np.ndarray
    error_before_mm: float
    error_after_mm: float
    inversion_residual_mm: float
    error_forward_mm: float | None = None  # |T(fixed) - moving|, in moving space

    def to_dict(self) -> dict:
        def rounded(vector):
            return [round(float(v), 4) for v in vector]

        forward = None if self.error_forward_mm is None else round(self.error_forward_mm, 4)
        return {
            "label": self.label,
            "role": self.role,
            "fixed_ras_mm": rounded(self.fixed_ras),
            "moving_ras_mm": rounded(self.moving_ras),
            "mapped_ras_mm": rounded(self.mapped_ras),
            "error_before_mm": round(self.error_before_mm, 4),
            "error_after_mm": round(self.error_after_mm, 4),
            "inversion_residual_mm": round(self.inversion_residual_mm, 6),
            "error_forward_mm": forward,
        }

    @classmethod
    def from_dict(cls, record: dict, strict: bool = False) -> LandmarkRow:
        """A row read back from its JSON (``mapped_before_ras`` is not written: None)."""
        fixed, moving, mapped = (np.asarray(record[f"{name}_ras_mm"]) for name in ("fixed", "moving", "mapped"))
        errors = (record["error_before_mm"], record["error_after_mm"], record["inversion_residual_mm"],
                  record.get("error_forward_mm"))  # fmt: skip
        return cls(record["label"], record["role"], fixed, moving, None, mapped, *errors)


@dataclass
class LandmarkErrors(Record):
    """Per-point errors and their statistics, kept apart: FRE (fit points) and TRE (target points), in mm."""

    rows: list[LandmarkRow]
    fre_before: ErrorStatistics | None
    fre_after: ErrorStatistics | None
    tre_before: ErrorStatistics | None
    tre_after: ErrorStatistics | None
    paired_by: str
    warnings: list[str] = field(default_factory=list)
    fre_forward: ErrorStatistics | None = None  # the fixed landmarks mapped by T, in moving space
    tre_forward: ErrorStatistics | None = None
    # The 'before' pose is a least-squares fit to the target points ("rigid", "similarity", "affine", or
    # "interpolating" for one through them): their error before is a fit residual, not a held-out error.
    before_fitted: str | None = None

    direction: ClassVar[str] = "moving landmarks mapped to fixed space by T.inverse() (T: fixed -> moving)"

    def to_dict(self) -> dict:
        def stats(value):
            return None if value is None else value.to_dict()

        return {
            "direction": self.direction,
            "paired_by": self.paired_by,
            "fre": {"before": stats(self.fre_before), "after": stats(self.fre_after),
                    "forward": stats(self.fre_forward)},
            "tre": {"before": stats(self.tre_before), "after": stats(self.tre_after),
                    "forward": stats(self.tre_forward)},
            "points": [row.to_dict() for row in self.rows],
            "warnings": list(self.warnings),
            "before_fitted_to_targets": self.before_fitted,
        }

    @classmethod
    def from_dict(cls, record: dict, strict: bool = False) -> LandmarkErrors:
        def stats(kind: str, stage: str) -> ErrorStatistics | None:
            value = (record.get(kind) or {}).get(stage)
            return None if value is None else ErrorStatistics.from_dict(value)

        return cls([LandmarkRow.from_dict(row) for row in record.get("points", [])],
                   stats("fre", "before"), stats("fre", "after"), stats("tre", "before"), stats("tre", "after"),
                   record.get("paired_by", ""), list(record.get("warnings", [])), stats("fre", "forward"),
                   stats("tre", "forward"), record.get("before_fitted_to_targets"))  # fmt: skip


def fit_names(given: Sequence[str] | None, labels: list[str], fixed_labels: list[str] | None,
              moving_labels: list[str] | None, paired_by: str) -> list[str]:  # fmt: skip
    """The paired landmarks' labels (``labels``, the fixed list's) that ``given`` names: a name holding commas is
    split at them unless a label holds them ("eye, left"); a moving label names the fixed point it pairs with by
    order ("M-1" for "F-1"). Both had been refused, with messages that were not true (a helper's QA sweep)."""
    known = set(labels) | set(fixed_labels or []) | set(moving_labels or [])
    names = [part.strip() for value in given or [] for part in
             ([str(value)] if str(value).strip() in known else str(value).split(",")) if part.strip()]  # fmt: skip
    partner = {}
    if paired_by == "order" and moving_labels is not None and len(moving_labels) == len(labels):
        partner = {moving: fixed for moving, fixed in zip(moving_labels, labels) if moving not in labels}
    written = {label_key(label): label for label in labels}  # as the labels paired: case and spaces aside
    named = [partner.get(name, name) if name not in labels else name for name in names]
    return [name if name in labels else written.get(label_key(name), name) for name in named]


def paired_landmarks(
    fixed_ras: np.ndarray | Sequence[Sequence[float]],
    moving_ras: np.ndarray | Sequence[Sequence[float]],
    fixed_labels: Sequence[str] | None = None,
    moving_labels: Sequence[str] | None = None,
    fit_labels: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str, list[str]]:
    """The landmark lists checked and paired (:func:`..landmarks.fit.pair_landmarks`), before any measurement:
    (fixed, moving, labels, roles "fit"/"target", "label" or "order", warnings); :class:`InputError` for an empty
    list, NaN, a label count that is not the point count, lists that cannot be paired, or unknown fit labels."""
    fixed = np.asarray(fixed_ras, float).reshape(-1, 3)
    moving = np.asarray(moving_ras, float).reshape(-1, 3)
    if len(fixed) == 0 or len(moving) == 0:
        raise InputError("a landmark list is empty: place landmarks on both images or leave them out")
    if not (np.all(np.isfinite(fixed)) and np.all(np.isfinite(moving))):
        raise InputError("landmarks contain NaN or infinite coordinates: place or delete those points")
    for role, labels, points in (("fixed", fixed_labels, fixed), ("moving", moving_labels, moving)):
        if labels is not None and len(labels) != len(points):
            raise InputError(f"{len(labels)} {role} labels for {len(points)} {role} points: give one label per point")
    fixed_labels = None if fixed_labels is None else [str(label) for label in fixed_labels]
    moving_labels = None if moving_labels is None else [str(label) for label in moving_labels]
    fixed, moving, labels, paired_by, warnings = pair_landmarks(fixed, moving, fixed_labels, moving_labels)

    fit = set(fit_names(fit_labels, labels, fixed_labels, moving_labels, paired_by))
    unknown = sorted(fit - set(labels))
    # A fit point in one list only has no partner (a helper's sweep: "check the names" for a name that was right).
    alone = [label for label in unknown if label in set(fixed_labels or []) | set(moving_labels or [])]
    if alone:
        side = {label: "fixed" if label in (fixed_labels or []) else "moving" for label in alone}
        raise InputError(
            f"fit points {', '.join(f'{label} (in the {side[label]} list only)' for label in alone)} have no partner "
            "in the other list: place them there too, or leave them out of the fit points"
        )
    if unknown:
        raise InputError(
            f"fit points {', '.join(unknown)} are not among the paired landmarks ({', '.join(labels)}): check the names"
        )
    roles = ["fit" if label in fit else "target" for label in labels]
    return fixed, moving, labels, roles, paired_by, warnings


def landmark_errors(
    fixed_ras: np.ndarray | Sequence[Sequence[float]],
    moving_ras: np.ndarray | Sequence[Sequence[float]],
    transform: Transform,
    fixed_labels: Sequence[str] | None = None,
    moving_labels: Sequence[str] | None = None,
    fit_labels: Sequence[str] | None = None,
    before: Transform | None = None,
) -> LandmarkErrors:
    """Errors (mm, fixed space) between fixed landmarks and moving landmarks mapped by ``transform.inverse()``.

    Points are world RAS mm. ``transform`` maps fixed to moving points (LPS). ``fit_labels`` names the
    landmarks the transform was fitted to: their errors are the FRE, all others the TRE; the two are
    never pooled. ``before`` (default identity) is the pose before registration.
    """
    fixed, moving, labels, roles, paired_by, warnings = paired_landmarks(
        fixed_ras, moving_ras, fixed_labels, moving_labels, fit_labels
    )
    fixed_lps, moving_lps = lps_ras_points(fixed), lps_ras_points(moving)
    before = before or Transform.identity()
    mapped_before, _ = moving_points_to_fixed(moving_lps, before)
    mapped, residual = moving_points_to_fixed(moving_lps, transform)
    errors_before = np.linalg.norm(mapped_before - fixed_lps, axis=1)
    errors_after = np.linalg.norm(mapped - fixed_lps, axis=1)
    errors_forward = np.linalg.norm(transform.transform_points(fixed_lps) - moving_lps, axis=1)
    for label, value in zip(labels, residual):
        if value > INVERSION_WARNING_MM:
            warnings.append(
                f"landmark {label}: the transform could not be inverted there (residual {value:.2f} mm), "
                "it may fold: check the Jacobian determinant"
            )
    mapped_before_ras, mapped_ras = lps_ras_points(mapped_before), lps_ras_points(mapped)
    rows = [
        LandmarkRow(
            labels[i],
            roles[i],
            fixed[i],
            moving[i],
            mapped_before_ras[i],
            mapped_ras[i],
            float(errors_before[i]),
            float(errors_after[i]),
            float(residual[i]),
            float(errors_forward[i]),
        )
        for i in range(len(labels))
    ]
    is_fit = np.array([role == "fit" for role in roles])
    targets = np.flatnonzero(~is_fit)
    outliers = outlier_warning([labels[i] for i in targets], fixed_lps[targets], mapped[targets])
    warnings += [outliers] if outliers else []
    fitted = before_fitted_to(before, fixed_lps[~is_fit], moving_lps[~is_fit])
    judged_fit = judged_fitted_to(transform, fixed_lps[~is_fit], moving_lps[~is_fit])
    if judged_fit:
        warnings.append(
            f"{FITTED_TO_TARGETS} ({_which_fit(judged_fit)} to them): their error is that fit's residual (FRE), "
            "not a held-out error, so it says nothing of the accuracy between them; name them as fit points, and "
            "measure with target points the transform was not fitted to"
        )
    if fitted:
        warnings.append(
            f"the pose before registration is {'a' if fitted == 'interpolating' else 'the'} {fitted} fit to these "
            "target points: their error before is what that fit leaves, not a held-out error, so a registration "
            "that is better elsewhere reads as worse here; measure with target points the start was not fitted to"
        )
    return LandmarkErrors(
        rows=rows,
        fre_before=error_statistics(errors_before[is_fit]),
        fre_after=error_statistics(errors_after[is_fit]),
        tre_before=error_statistics(errors_before[~is_fit]),
        tre_after=error_statistics(errors_after[~is_fit]),
        paired_by=paired_by,
        warnings=warnings,
        fre_forward=error_statistics(errors_forward[is_fit]),
        tre_forward=error_statistics(errors_forward[~is_fit]),
        before_fitted=fitted,
    )


# A start maps the points within this of a model's least-squares fit to them (mm): it is that fit (a file's round
# trip changes a mapping by far less; two different fits differ by far more).
SAME_FIT_MM = 0.01


# The transform judged maps target points within these of a fit to them (median, most; a spline is stored as a field
# sampled on a grid: 0.02 and 0.15 mm from its clicks on a 4 mm grid) while they are this far from any rigid map of
# each other: it was fitted to them. Clicked points never land this close after a registration; exact synthetic points
# (no click noise) fit a rigid map and are never called a fit.
FIELD_FIT_MEDIAN_MM, FIELD_FIT_MAX_MM = 0.05, 0.25
CLICK_NOISE_MM = 0.1
FITTED_TO_TARGETS = "the transform judged is fitted to these target points"


def judged_fitted_to(transform: Transform, fixed_lps: np.ndarray, moving_lps: np.ndarray) -> str | None:
    """Which fit to these target pairs (LPS mm, fixed -> moving) the transform being judged is, as
    :func:`before_fitted_to` says, when the clicks are noisy enough to tell (a rigid fit leaves more than
    CLICK_NOISE_MM RMS), a field's sampling allowed FIELD_FIT_MEDIAN_MM and FIELD_FIT_MAX_MM; None otherwise.
    A helper's QA: a thin-plate spline judged on its own fit points read TRE 0.01 mm, with no warning."""
    if len(fixed_lps) < 3 or fit_rms("rigid", fixed_lps, moving_lps) <= CLICK_NOISE_MM:
        return None
    if not transform.is_linear:
        errors = np.linalg.norm(transform.transform_points(fixed_lps) - moving_lps, axis=1)
        exact = np.median(errors) < FIELD_FIT_MEDIAN_MM and errors.max() < FIELD_FIT_MAX_MM
        return "interpolating" if exact else None
    return before_fitted_to(transform, fixed_lps, moving_lps)


def _which_fit(kind: str) -> str:
    """"a thin-plate spline fit" (one of many through the points), else "the rigid fit" (a least-squares fit)."""
    return a_fit("tps") if kind == "interpolating" else f"the {fit_name(kind)} fit"


def before_fitted_to(before: Transform, fixed_lps: np.ndarray, moving_lps: np.ndarray) -> str | None:
    """Which least-squares fit to these pairs (LPS mm, fixed -> moving) ``before`` is: "rigid", "similarity",
    "affine", "interpolating" (a nonlinear start through every pair, a thin-plate spline); None for none, or
    for an identity start (points that agree as the headers place them are not a fit)."""
    if len(fixed_lps) < 3 or (before.is_linear and np.allclose(before.matrix, np.eye(4))):
        return None
    mapped = before.transform_points(fixed_lps)
    if not before.is_linear:
        return "interpolating" if np.linalg.norm(mapped - moving_lps, axis=1).max() < SAME_FIT_MM else None
    for kind in ("rigid", "similarity", "affine")[: 3 if len(fixed_lps) >= 5 else 2]:  # 4: an affine fits exactly
        fit = apply_model(fit_model(kind, fixed_lps, moving_lps), fixed_lps)
        if np.linalg.norm(fit - mapped, axis=1).max() < SAME_FIT_MM:
            return kind
    return None
