"""Landmark prealignment: fit a fixed -> moving transform to paired points and say how far to trust it.

Points come in as world RAS mm (what Slicer shows). The fit runs in LPS mm and returns a library
:class:`~.transforms.Transform` in the resampling direction, so ``transform(fixed_i) ~= moving_i``.

Types: ``translation``; ``rigid`` (closed-form least squares, reflections excluded); ``similarity``
(rigid plus one uniform scale); ``affine``; ``tps``, a thin-plate spline (kernel ``r^2 log r``, the kernel SciPy
calls ``thin_plate_spline``; solved here with numpy) exported as a displacement field. Every fit comes with its residuals, the
fiducial registration error (FRE) and a leave-one-out target error, plus plain-language warnings.

The models live in :mod:`.models`, the sanity checks in :mod:`.checks` (the points' geometry),
:mod:`.pairing` (swaps, mirror, outliers, scale) and :mod:`.bounds` (points inside their image); this file
pairs the points, runs the fit and the checks, and reports residuals and leave-one-out errors.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.files import write_text_atomically
from ..core.transforms import Transform, lps_ras_points
from ..core.version import __version__
from .bounds import PointBounds
from .checks import (
    check_invertible,
    check_moving_shape,
    check_not_one_position,
    check_shape,
    check_spline_grid,
    check_spline_points,
    duplicate_warnings,
    symmetry_warnings,
    undetermined,
)
from .frames import frame_warnings, refuse_turned_and_flipped
from .labels import pair_landmarks, pair_points
from .models import (
    KINDS,
    MIN_POINTS,
    ThinPlateSpline,
    a_fit,
    apply_model,
    bend_box,
    distance_outside,
    field_grid,
    fit_model,
    fit_name,
    linear_part,
    padded_for_taper,
    rms,
    tps_bend_field,
)
from .pairing import pairing_warnings
from .summary import FieldGrid, FitErrors, FitTransform, PointRecord, PrealignSummary

__all__ = ["KINDS", "LandmarkFit", "PointResidual", "fit_landmarks", "pair_landmarks", "pair_points"]

FIELD_TOLERANCE_MM = 0.5  # warn when the sampled field departs more than this from the spline at a point

TPS_NOTE = (
    "thin-plate spline: it passes through every point, so its residuals are near zero by construction "
    "and FRE says nothing about accuracy; the leave-one-out error is the number to trust"
)
# Where a tps field's grid came from, by (reference image given, fixed image given).
GRID_SOURCES = {(True, True): "reference image", (True, False): "reference image", (False, True): "fixed image",
                (False, False): "box around the fixed points"}  # fmt: skip
LINEAR_NOTE = (
    "FRE shows how well the points agree with the transform type, not the accuracy elsewhere; "
    "the leave-one-out error estimates the error at a point that was not used in the fit"
)


# --------------------------------------------------------------------------- result
@dataclass
class PointResidual:
    """One pair: positions in world RAS mm; ``mapped_ras`` is where the transform sends the fixed point."""

    label: str
    moving_label: str
    fixed_ras: np.ndarray
    moving_ras: np.ndarray
    mapped_ras: np.ndarray
    error_mm: float  # |mapped - moving|
    loo_error_mm: float | None  # the same, for a fit made without this pair (None: too few points left)

    def record(self) -> PointRecord:
        """The pair's JSON-ready record (mm rounded to 0.1 micrometre)."""
        loo = None if self.loo_error_mm is None else round(self.loo_error_mm, 4)
        return PointRecord(self.label, self.moving_label, _rounded(self.fixed_ras), _rounded(self.moving_ras),
                           _rounded(self.mapped_ras), round(self.error_mm, 4), loo)  # fmt: skip

    def to_dict(self) -> dict:
        return self.record().to_dict()


@dataclass
class LandmarkFit:
    """A landmark fit: ``transform`` maps fixed to moving points (LPS mm), plus its quality numbers (mm)."""

    transform: Transform
    kind: str
    residuals: list[PointResidual]
    fre_rms_mm: float
    fre_mean_mm: float
    fre_max_mm: float
    loo_rms_mm: float | None  # RMS of the leave-one-out errors that could be computed
    paired_by: str  # "label" or "order"
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    determinant: float | None = None  # of the linear part (a spline's affine part); < 0: it mirrors space
    grid: FieldGrid | None = None  # where a tps field was sampled

    @property
    def mirrors(self) -> bool:
        """The fit mirrors space (an affine or tps fit can; a warning says so)."""
        return self.determinant is not None and self.determinant < 0

    @property
    def loo_errors_mm(self) -> list[float | None]:
        return [row.loo_error_mm for row in self.residuals]

    def summary(self) -> PrealignSummary:
        """The fit's record: linear matrices in LPS and RAS (Slicer's TransformFromParent)."""
        transform = FitTransform(self.transform.kind, mirrors=self.mirrors)
        if self.determinant is not None:
            transform.determinant = round(self.determinant, 9)
        if self.transform.is_linear:
            transform.matrix_lps = np.round(self.transform.matrix, 9).tolist()
            transform.matrix_ras = np.round(self.transform.matrix_ras, 9).tolist()
        return PrealignSummary(
            kind=self.kind,
            paired_by=self.paired_by,
            transform=transform,
            fre_mm=FitErrors(self.fre_rms_mm, self.fre_mean_mm, self.fre_max_mm),
            loo_rms_mm=self.loo_rms_mm,
            points=[row.record() for row in self.residuals],
            warnings=list(self.warnings),
            notes=list(self.notes),
            field_grid=self.grid,
            library_version=__version__,
        )

    def to_dict(self) -> dict:
        """A JSON-ready record (:meth:`summary`'s)."""
        return self.summary().to_dict()

    def residuals_csv(self, path: str | os.PathLike) -> None:
        """Write the residual table (world RAS mm) as CSV."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        axes = ("r", "a", "s")
        writer.writerow(
            ["label", "moving_label"]
            + [f"{role}_{axis}" for role in ("fixed", "moving", "mapped") for axis in axes]
            + ["error_mm", "loo_error_mm"]
        )
        for row in self.residuals:
            positions = [f"{v:.4f}" for v in np.concatenate([row.fixed_ras, row.moving_ras, row.mapped_ras])]
            loo = "" if row.loo_error_mm is None else f"{row.loo_error_mm:.4f}"
            writer.writerow([row.label, row.moving_label, *positions, f"{row.error_mm:.4f}", loo])
        write_text_atomically(path, text.getvalue())

    def report(self) -> str:
        """The residual table and summary numbers as plain text (mm, world RAS)."""
        width = max([5] + [len(row.label) for row in self.residuals])
        lines = [f"{'label':<{width}}  {'fixed R A S':>23}  {'mapped R A S':>23}  {'error':>7}  {'LOO':>7}"]
        for row in self.residuals:
            loo = "-" if row.loo_error_mm is None else f"{row.loo_error_mm:.2f}"
            lines.append(
                f"{row.label:<{width}}  {_triple(row.fixed_ras)}  {_triple(row.mapped_ras)}  "
                f"{row.error_mm:7.2f}  {loo:>7}"
            )
        lines.append(
            f"{self.kind}: FRE rms {self.fre_rms_mm:.2f} mm, mean {self.fre_mean_mm:.2f} mm, max {self.fre_max_mm:.2f} mm"
        )
        loo = "not available" if self.loo_rms_mm is None else f"{self.loo_rms_mm:.2f} mm"
        lines.append(f"leave-one-out target error rms: {loo}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def _rounded(vector: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in vector]


def _triple(vector: np.ndarray) -> str:
    return " ".join(f"{v:7.2f}" for v in vector)


# --------------------------------------------------------------------------- the entry point
def _as_points(values, role: str) -> np.ndarray:
    points = np.asarray(values, float)
    if points.size == 0:
        points = points.reshape(0, 3)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"{role} points must be an (N, 3) array of R, A, S mm, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise InputError(f"{role} points contain NaN or infinite coordinates: place or delete those points")
    return points


def _labels(labels: Sequence[str] | None, count: int, role: str) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != count:
        raise InputError(f"{len(labels)} {role} labels for {count} {role} points: give one label per point")
    return labels


def fit_landmarks(
    fixed_ras: np.ndarray | Sequence[Sequence[float]],
    moving_ras: np.ndarray | Sequence[Sequence[float]],
    kind: str = "rigid",
    fixed_labels: Sequence[str] | None = None,
    moving_labels: Sequence[str] | None = None,
    reference_image: sitk.Image | None = None,
    bounds: PointBounds | None = None,
) -> LandmarkFit:
    """Fit a fixed -> moving transform to paired landmarks given in world RAS mm.

    The transform satisfies ``transform(fixed_i) ~= moving_i`` in LPS (the resampling direction).
    Pairs match by label when both label lists hold the same unique labels, else by order.
    ``reference_image`` (default the ``bounds``' fixed image) is the grid a ``tps`` field is sampled on;
    outside that grid the field is the identity. Without either, the spline is stored as its affine part after
    its bend on a 2 mm box around the fixed points, the bend fading to 0 in the box's margin: the affine part
    beyond the box, no tear at its edge. ``bounds`` (:class:`.bounds.PointBounds`, optional) are the images the points must lie in: all
    of a list outside is refused (with the RAS/LPS fix for the points file, when flipping brings them inside),
    some outside warn, unless the flip also explains a ~180 degree turn from the headers (refused).
    Raises :class:`InputError` when no fit is possible or it would be degenerate (moving points that collapse
    space, a singular linear part, a spline through two fixed points placed twice); everything else is a
    warning.
    """
    if kind not in KINDS:
        raise InputError(f"unknown transform type '{kind}': choose one of {', '.join(KINDS)}")
    fixed = _as_points(fixed_ras, "fixed")
    moving = _as_points(moving_ras, "moving")
    given_fixed_labels = _labels(fixed_labels, len(fixed), "fixed")
    given_moving_labels = _labels(moving_labels, len(moving), "moving")
    fixed, moving, labels, paired_by, warnings = pair_landmarks(fixed, moving, given_fixed_labels, given_moving_labels)
    moving_names = labels if paired_by == "label" else (given_moving_labels or labels)  # by order: their own names
    fixed_lps, moving_lps = lps_ras_points(fixed), lps_ras_points(moving)
    bounds = bounds or PointBounds()
    outside = bounds.check(fixed_lps, moving_lps, labels, moving_names)

    if kind != "translation":  # the fixed points gathered at one position had been called "on one line"
        check_not_one_position(kind, moving_lps, fixed_lps, role="fixed")
    try:
        warnings += check_shape(kind, fixed)
    except InputError as error:  # say which points pairing by label left out, when it did
        left_out = [w for w in warnings if w.startswith("landmarks without a partner")]
        raise InputError(f"{error} ({left_out[0]}: check their labels)" if left_out else str(error)) from None
    check_moving_shape(kind, fixed_lps, moving_lps)
    reference = reference_image if reference_image is not None else bounds.fixed_image
    if kind == "tps":
        check_spline_points(fixed_lps, labels)
        check_spline_grid(reference, "the reference image" if reference_image is not None else "the fixed image")
    warnings += duplicate_warnings(fixed, labels, "fixed") + duplicate_warnings(moving, moving_names, "moving")

    try:
        model = fit_model(kind, fixed_lps, moving_lps)
    except np.linalg.LinAlgError as error:  # the checks above should leave none: say so rather than crash
        raise InputError(
            f"the {fit_name(kind)} fit has no solution for these points ({error}): check for points placed twice or "
            "all in one plane, or use rigid"
        ) from None
    if kind != "translation":
        check_invertible(kind, model)
    notes, grid = [], None
    if isinstance(model, ThinPlateSpline):
        transform, grid, export_warnings, export_notes = _tps_transform(model, reference, fixed_lps, labels)
        grid.source = GRID_SOURCES[(reference_image is not None, bounds.fixed_image is not None)]
        warnings += export_warnings
        notes += export_notes
    else:
        transform = Transform.from_matrix(model)
        notes.append(LINEAR_NOTE)

    mapped_lps = transform.transform_points(fixed_lps)
    errors = np.linalg.norm(mapped_lps - moving_lps, axis=1)
    loo = _leave_one_out(kind, fixed_lps, moving_lps)
    available = [e for e in loo if e is not None]
    if len(available) < len(loo):
        notes.append(
            f"leave-one-out needs {a_fit(kind)} from the remaining points; it was not possible for "
            f"{len(loo) - len(available)} of {len(loo)} points: add points for a trustworthy estimate"
        )

    warnings += pairing_warnings(kind, model, fixed_lps, moving_lps, labels, paired_by)
    if bounds.fixed_system is not None or bounds.moving_system is not None:  # points read from files
        turned = frame_warnings(fixed_lps, moving_lps, bounds.fixed_system, bounds.moving_system, warnings)
        refuse_turned_and_flipped(turned, outside)
        warnings += turned
    warnings += symmetry_warnings(kind, fixed_lps, labels)
    warnings += outside

    mapped_ras = lps_ras_points(mapped_lps)
    residuals = [
        PointResidual(labels[i], moving_names[i], fixed[i], moving[i], mapped_ras[i], float(errors[i]), loo[i])
        for i in range(len(fixed))
    ]
    return LandmarkFit(
        transform=transform,
        kind=kind,
        residuals=residuals,
        fre_rms_mm=rms(errors),
        fre_mean_mm=float(errors.mean()),
        fre_max_mm=float(errors.max()),
        loo_rms_mm=rms(np.array(available)) if available else None,
        paired_by=paired_by,
        warnings=warnings,
        notes=notes,
        determinant=None if kind == "translation" else float(np.linalg.det(linear_part(model)[:3, :3])),
        grid=grid,
    )


def _leave_one_out(kind: str, fixed: np.ndarray, moving: np.ndarray) -> list[float | None]:
    """Per pair: the distance (mm) between the moving point and where a fit without that pair sends it."""
    errors: list[float | None] = []
    for i in range(len(fixed)):
        keep = np.arange(len(fixed)) != i
        if keep.sum() < MIN_POINTS[kind] or undetermined(kind, fixed[keep]):
            errors.append(None)
            continue
        model = fit_model(kind, fixed[keep], moving[keep])
        errors.append(float(np.linalg.norm(apply_model(model, fixed[i : i + 1])[0] - moving[i])))
    return errors


def _tps_transform(
    spline: ThinPlateSpline, reference: sitk.Image | None, fixed_lps: np.ndarray, labels: list[str]
) -> tuple[Transform, FieldGrid, list[str], list[str]]:
    """The spline sampled as a displacement field on the reference grid: (transform, the grid, warnings and notes
    on how faithful that field is at the fixed points)."""
    margin, taper = bend_box(spline, fixed_lps) if reference is None else (None, None)
    grid = exact = field_grid(reference, fixed_lps, margin)
    if reference is not None:
        grid, taper = padded_for_taper(spline, exact)
    described = FieldGrid("", list(grid.GetSize()), list(grid.GetSpacing()), list(grid.GetOrigin()),
                          list(grid.GetDirection()))  # fmt: skip
    # A box round the points, or the reference grid grown by the taper: the affine part beyond it, the bend faded out
    # at its faces. The whole spline as a field on the reference grid was the identity outside it: a registration
    # from it tore space at the grid's faces (Jacobian -27), and every result was refused as folding (a helper's sweep).
    bend = tps_bend_field(spline, grid, taper)
    transform = Transform.from_matrix(spline.affine) @ Transform.from_displacement_field(bend)
    inside = distance_outside(fixed_lps, exact) == 0
    departure = np.linalg.norm(transform.transform_points(fixed_lps) - spline(fixed_lps), axis=1)
    sampling = float(departure[inside].max()) if inside.any() else 0.0
    spacing = max(grid.GetSpacing())
    warnings = []
    if not inside.all():
        names = ", ".join(f"'{labels[i]}'" for i in np.flatnonzero(~inside))
        warnings.append(
            f"fixed points {names} lie outside the reference image that the spline is sampled on, where it fades "
            "to its affine part, so they are not moved as the spline moves them: give a reference image that covers "
            "every fixed point"
        )
    stored = (f"its affine part and its bend as a displacement field on a {'x'.join(map(str, grid.GetSize()))} "
              f"{'box' if reference is None else 'reference grid grown by the fade'} at {spacing:.2f} mm (the affine "
              "part alone beyond it)")  # fmt: skip
    stored_note = f"the spline is stored as {stored}, within {sampling:.2f} mm of the exact spline at the points inside it"
    notes = [TPS_NOTE, stored_note]
    if reference is not None:  # the fade is capped at half the grid's smallest side: a larger bend folds in it
        determinant = float(sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(bend)).min())
        if determinant <= 0.0:  # a helper's 40 mm cube bent 20 mm at its faces: -0.63, 4-16 mm beyond it, unwarned
            warnings.append(
                f"the spline bends too much at the reference image's faces for its {taper:.0f} mm fade: the stored "
                f"transform folds space just beyond the reference image (Jacobian determinant down to "
                f"{determinant:.2f}), where a volume or points carried through it come out scrambled: give a "
                "reference image that reaches further beyond the landmarks, or use affine"
            )
    if sampling > FIELD_TOLERANCE_MM:
        warnings.append(
            f"the displacement field ({spacing:.2f} mm grid) departs up to {sampling:.2f} mm from the spline at "
            "the points because the spline bends sharply: check the pairs, or give a finer reference image"
        )
    return transform, described, warnings, notes
