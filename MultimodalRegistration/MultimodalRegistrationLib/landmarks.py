"""Landmark prealignment: fit a fixed -> moving transform to paired points and say how far to trust it.

Points come in as world RAS mm (what Slicer shows). The fit runs in LPS mm and returns a library
:class:`~.transforms.Transform` in the resampling direction, so ``transform(fixed_i) ~= moving_i``.

Types: ``translation``; ``rigid`` (closed-form least squares, reflections excluded); ``similarity``
(rigid plus one uniform scale); ``affine``; ``tps``, a thin-plate spline (kernel ``r^2 log r``, SciPy's
``thin_plate_spline``) exported as a displacement field. Every fit comes with its residuals, the
fiducial registration error (FRE) and a leave-one-out target error, plus plain-language warnings.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .files import write_atomically
from .images import index_to_physical_matrix
from .transforms import Transform, lps_ras_points

KINDS = ("translation", "rigid", "similarity", "affine", "tps")
MIN_POINTS = {"translation": 1, "rigid": 3, "similarity": 3, "affine": 4, "tps": 4}
# Principal spread (RMS mm about the centre) across a line or plane, as a fraction of the largest:
FLAT_RATIO = 0.1  # below this the points are nearly collinear / coplanar (warning)
DEGENERATE_RATIO = 1e-6  # below this they are exactly so and the fit is undetermined (error)
DUPLICATE_MM = 1.0  # two points of one list closer than this are probably one point placed twice
SCALE_RANGE = (0.67, 1.5)  # plausible landmark scale between two scans of one subject
MIN_GAIN_MM = 1.0  # a swap or a mirror must also improve the RMS by this much to be reported
# A rotation mapping the fixed points onto one another within this fraction of their RMS radius, and
# within SYMMETRY_MM, means a wrong pairing would fit about as well as a manual placement error.
SYMMETRY_RATIO = 0.1
SYMMETRY_MM = 3.0
MAX_SWAP_POINTS = 100  # the swap search refits every pair: skipped above this many points
FIELD_SPACING_MM = 2.0  # TPS field spacing when no reference image is given
FIELD_MARGIN_MM = 20.0
MAX_FIELD_VOXELS = 4_000_000  # a finer reference grid is coarsened (integer factors) to stay under this
FIELD_TOLERANCE_MM = 0.5  # warn when the sampled field departs more than this from the spline at a point

TPS_NOTE = (
    "thin-plate spline: it passes through every point, so its residuals are near zero by construction "
    "and FRE says nothing about accuracy; the leave-one-out error is the number to trust"
)
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

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "moving_label": self.moving_label,
            "fixed_ras_mm": _rounded(self.fixed_ras),
            "moving_ras_mm": _rounded(self.moving_ras),
            "mapped_ras_mm": _rounded(self.mapped_ras),
            "error_mm": round(self.error_mm, 4),
            "loo_error_mm": None if self.loo_error_mm is None else round(self.loo_error_mm, 4),
        }


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

    @property
    def loo_errors_mm(self) -> list[float | None]:
        return [row.loo_error_mm for row in self.residuals]

    def to_dict(self) -> dict:
        """A JSON-ready record: linear matrices in LPS and RAS (Slicer's TransformFromParent)."""
        transform = {"kind": self.transform.kind, "direction": "fixed -> moving (resampling; TransformFromParent)"}
        if self.transform.is_linear:
            transform["matrix_lps"] = np.round(self.transform.matrix, 9).tolist()
            transform["matrix_ras"] = np.round(self.transform.matrix_ras, 9).tolist()
        return {
            "type": self.kind,
            "paired_by": self.paired_by,
            "transform": transform,
            "fre_mm": {"rms": self.fre_rms_mm, "mean": self.fre_mean_mm, "max": self.fre_max_mm},
            "loo_rms_mm": self.loo_rms_mm,
            "points": [row.to_dict() for row in self.residuals],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }

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
        write_atomically(path, lambda tmp: Path(tmp).write_text(text.getvalue(), encoding="utf-8"))

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


# --------------------------------------------------------------------------- fitting (LPS mm)
def _orthogonal_fit(fixed: np.ndarray, moving: np.ndarray, scale: bool, sign: int = 1) -> np.ndarray:
    """Closed-form least squares (Umeyama): rotation with det = ``sign``, optional uniform scale (4x4)."""
    fixed_centre, moving_centre = fixed.mean(axis=0), moving.mean(axis=0)
    a, b = fixed - fixed_centre, moving - moving_centre
    u, singular, vt = np.linalg.svd(b.T @ a)
    d = np.array([1.0, 1.0, sign * np.linalg.det(u) * np.linalg.det(vt)])
    rotation = u @ np.diag(d) @ vt
    factor = float((singular * d).sum() / max((a**2).sum(), 1e-300)) if scale else 1.0
    matrix = np.eye(4)
    matrix[:3, :3] = factor * rotation
    matrix[:3, 3] = moving_centre - factor * rotation @ fixed_centre
    return matrix


def _affine_fit(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    design = np.hstack([fixed, np.ones((len(fixed), 1))])
    solution = np.linalg.lstsq(design, moving, rcond=None)[0]
    matrix = np.eye(4)
    matrix[:3, :3] = solution[:3].T
    matrix[:3, 3] = solution[3]
    return matrix


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _kernel(distances: np.ndarray) -> np.ndarray:
    """The thin-plate kernel ``r^2 log r`` (0 at r = 0). Smooth at the points, unlike ``|r|``, so the
    spline survives sampling on a grid; with the affine part, the result does not depend on the unit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(distances > 0, distances**2 * np.log(distances), 0.0)


class ThinPlateSpline:
    """Thin-plate spline through paired points, fixed LPS -> moving LPS (mm).

    ``f(x) = A x + t + sum_i w_i U(|x - p_i|)`` with ``U(r) = r^2 log r``: exact at the points, smooth
    between them. Needs 4 points not all in one plane.
    """

    def __init__(self, fixed: np.ndarray, moving: np.ndarray):
        self.centre = fixed.mean(axis=0)
        self.points = fixed - self.centre
        count = len(fixed)
        system = np.zeros((count + 4, count + 4))
        system[:count, :count] = _kernel(_distances(self.points, self.points))
        polynomial = np.hstack([np.ones((count, 1)), self.points])
        system[:count, count:] = polynomial
        system[count:, :count] = polynomial.T
        right = np.zeros((count + 4, 3))
        right[:count] = moving
        solution = np.linalg.solve(system, right)
        self.weights, self.polynomial = solution[:count], solution[count:]

    def __call__(self, points_lps: np.ndarray, chunk_values: int = 2_000_000) -> np.ndarray:
        x = np.asarray(points_lps, float).reshape(-1, 3) - self.centre
        out = np.empty_like(x)
        step = max(1, chunk_values // len(self.points))
        for start in range(0, len(x), step):
            part = x[start : start + step]
            out[start : start + step] = (
                _kernel(_distances(part, self.points)) @ self.weights + self.polynomial[0] + part @ self.polynomial[1:]
            )
        return out

    @property
    def affine(self) -> np.ndarray:
        """The affine part as a 4x4 LPS matrix."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.polynomial[1:].T
        matrix[:3, 3] = self.polynomial[0] - matrix[:3, :3] @ self.centre
        return matrix


def fit_model(kind: str, fixed_lps: np.ndarray, moving_lps: np.ndarray) -> np.ndarray | ThinPlateSpline:
    """Fit ``kind`` mapping fixed to moving points (LPS mm): a 4x4 matrix, or a spline for ``tps``."""
    if kind == "translation":
        matrix = np.eye(4)
        matrix[:3, 3] = (moving_lps - fixed_lps).mean(axis=0)
        return matrix
    if kind in ("rigid", "similarity"):
        return _orthogonal_fit(fixed_lps, moving_lps, scale=kind == "similarity")
    if kind == "affine":
        return _affine_fit(fixed_lps, moving_lps)
    return ThinPlateSpline(fixed_lps, moving_lps)


def _apply(model: np.ndarray | ThinPlateSpline, points: np.ndarray) -> np.ndarray:
    if isinstance(model, ThinPlateSpline):
        return model(points)
    return points @ model[:3, :3].T + model[:3, 3]


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else 0.0


def _fit_rms(kind: str, fixed: np.ndarray, moving: np.ndarray) -> float:
    model = fit_model(kind, fixed, moving)
    return _rms(np.linalg.norm(_apply(model, fixed) - moving, axis=1))


# --------------------------------------------------------------------------- geometry
def principal_spreads(points: np.ndarray) -> np.ndarray:
    """RMS distance (mm) of the points from their centre along each principal axis, largest first."""
    centred = points - points.mean(axis=0)
    spreads = np.zeros(3)
    values = np.linalg.svd(centred, compute_uv=False) / np.sqrt(len(points))
    spreads[: len(values)] = values
    return spreads


def flatness(points: np.ndarray, ratio: float) -> str | None:
    """'collinear' or 'coplanar' when the points' spread across a line or plane is below ``ratio``
    of their largest spread, else None."""
    spreads = principal_spreads(points)
    limit = ratio * spreads[0] + 1e-9
    if spreads[1] < limit:
        return "collinear"
    if spreads[2] < limit:
        return "coplanar"
    return None


def _undetermined(kind: str, points: np.ndarray) -> str | None:
    """Why a ``kind`` fit to these fixed points has no unique answer ('collinear', 'coplanar'), or None."""
    shape = flatness(points, DEGENERATE_RATIO)
    if kind == "translation" or shape is None:
        return None
    if shape == "coplanar" and kind not in ("affine", "tps"):
        return None
    return shape


def _check_shape(kind: str, fixed: np.ndarray) -> list[str]:
    """Raise when the fit is undetermined; return warnings when it is poorly determined."""
    count = len(fixed)
    if count < MIN_POINTS[kind]:
        extra = " not all in one plane" if kind in ("affine", "tps") else ""
        instead = ", or use translation" if kind != "translation" else ""
        raise InputError(
            f"a {kind} fit needs at least {MIN_POINTS[kind]} point pairs{extra}, got {count}: add points{instead}"
        )
    undetermined = _undetermined(kind, fixed)
    if undetermined == "collinear":
        raise InputError(
            f"the {count} fixed points lie on one line: the rotation about that line is undetermined; "
            "add a point off the line, or use translation"
        )
    if undetermined == "coplanar":
        raise InputError(
            f"a {kind} fit needs points not all in one plane, and these {count} are: "
            "add a point off the plane, or use rigid or similarity"
        )
    if kind == "translation":
        return []
    spreads = principal_spreads(fixed)
    near = flatness(fixed, FLAT_RATIO)
    if near == "collinear":
        return [
            (
                f"the fixed points lie almost on one line (only {spreads[1]:.1f} mm RMS off it, {spreads[0]:.1f} mm "
                "along it): the rotation about that line is poorly determined; add a point well off the line"
            )
        ]
    if near == "coplanar" and (kind in ("affine", "tps") or count > 3):
        consequence = (
            "the out-of-plane part of the fit is poorly determined"
            if kind in ("affine", "tps")
            else "errors grow with distance from that plane"
        )
        return [
            (
                f"the fixed points lie almost in one plane (only {spreads[2]:.1f} mm RMS off it, {spreads[0]:.1f} mm "
                f"across it): {consequence}; add a point well off the plane"
            )
        ]
    return []


def _duplicates(points: np.ndarray, labels: list[str], role: str) -> list[str]:
    warnings = []
    distances = _distances(points, points)
    for i, j in combinations(range(len(points)), 2):
        if distances[i, j] < DUPLICATE_MM:
            warnings.append(
                f"{role} points '{labels[i]}' and '{labels[j]}' are {distances[i, j]:.2f} mm apart: "
                "probably one point placed twice; delete one, or move it to its own landmark"
            )
    return warnings


# --------------------------------------------------------------------------- checks after the fit
def _swap_warnings(kind: str, fixed: np.ndarray, moving: np.ndarray, labels: list[str], paired_by: str) -> list[str]:
    """Name pairs whose swap cuts the RMS by at least half (greedy, up to three swaps)."""
    check_kind = "affine" if kind == "tps" else kind
    if len(fixed) < 2 or len(fixed) > MAX_SWAP_POINTS:
        return []
    moving = moving.copy()
    warnings = []
    for _ in range(3):
        base = _fit_rms(check_kind, fixed, moving)
        best = None
        for i, j in combinations(range(len(fixed)), 2):
            moving[[i, j]] = moving[[j, i]]
            rms = _fit_rms(check_kind, fixed, moving)
            moving[[i, j]] = moving[[j, i]]
            if rms <= 0.5 * base and base - rms >= MIN_GAIN_MM and (best is None or rms < best[0]):
                best = (rms, i, j)
        if best is None:
            break
        rms, i, j = best
        warnings.append(
            f"points '{labels[i]}' and '{labels[j]}' look swapped: pairing each with the other's moving point "
            f"cuts the {check_kind} RMS from {base:.2f} mm to {rms:.2f} mm; check their "
            f"{'labels' if paired_by == 'label' else 'order'} in the two lists"
        )
        moving[[i, j]] = moving[[j, i]]
    return warnings


MIRROR_MESSAGE = "the lists may be left/right swapped or from mirrored sides"


def _mirror_warnings(kind: str, model, fixed: np.ndarray, moving: np.ndarray) -> list[str]:
    """Warn when only a reflection fits the points (a registration can never mirror)."""
    if len(fixed) >= 4 and flatness(fixed, FLAT_RATIO) is None:
        proper = _orthogonal_fit(fixed, moving, scale=True, sign=1)
        mirrored = _orthogonal_fit(fixed, moving, scale=True, sign=-1)
        rms_proper = _rms(np.linalg.norm(_apply(proper, fixed) - moving, axis=1))
        rms_mirrored = _rms(np.linalg.norm(_apply(mirrored, fixed) - moving, axis=1))
        if rms_mirrored <= 0.5 * rms_proper and rms_proper - rms_mirrored >= MIN_GAIN_MM:
            return [
                (
                    f"only a mirror image fits these points (best rotation {rms_proper:.2f} mm RMS, best reflection "
                    f"{rms_mirrored:.2f} mm): {MIRROR_MESSAGE}; check which side each list was placed on"
                )
            ]
    linear = model.affine if isinstance(model, ThinPlateSpline) else model
    if kind in ("affine", "tps") and np.linalg.det(linear[:3, :3]) < 0:
        return [f"the {kind} fit mirrors space (negative determinant): {MIRROR_MESSAGE}"]
    return []


def _scale_warnings(kind: str, model) -> list[str]:
    if kind not in ("similarity", "affine", "tps"):
        return []
    linear = (model.affine if isinstance(model, ThinPlateSpline) else model)[:3, :3]
    scales = np.linalg.svd(linear, compute_uv=False)
    low, high = SCALE_RANGE
    if scales.min() >= low and scales.max() <= high:
        return []
    if kind == "similarity":
        described = f"the fitted scale is {scales[0]:.2f}"
    else:
        described = f"the fitted scales along its principal directions are {', '.join(f'{s:.2f}' for s in scales)}"
    return [
        (
            f"{described}, outside {low}-{high}: check image spacing or units "
            "(a wrong voxel size in a header, or points in cm or um instead of mm)"
        )
    ]


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.deg2rad(degrees)
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _symmetry_warnings(kind: str, fixed: np.ndarray, labels: list[str]) -> list[str]:
    """Warn when a rotation maps the fixed points onto one another (a wrong pairing would fit as well)."""
    if kind == "translation" or len(fixed) < 3:
        return []
    centred = fixed - fixed.mean(axis=0)
    radius = _rms(np.linalg.norm(centred, axis=1))
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    spreads = np.zeros(3)
    spreads[: len(singular)] = singular
    if len(axes) < 3:
        return []
    candidates = [(axis, 180.0) for axis in axes]
    for k in range(3):
        a, b = [spreads[i] for i in range(3) if i != k]
        if abs(a - b) <= 0.15 * max(a, b):  # round about axis k: turns by 1/n also fit
            candidates += [(axes[k], 360.0 / n) for n in (3, 4, 5, 6)]
    best = None
    for axis, degrees in candidates:
        turned = centred @ _rotation(axis, degrees).T
        nearest = np.argmin(_distances(turned, centred), axis=1)
        if len(set(nearest.tolist())) < len(fixed) or np.all(nearest == np.arange(len(fixed))):
            continue
        rms = _fit_rms("rigid", centred, centred[nearest])
        if best is None or rms < best[0]:
            best = (rms, degrees, nearest)
    if best is None or best[0] > min(SYMMETRY_RATIO * radius, SYMMETRY_MM):
        return []
    rms, degrees, nearest = best
    return [
        (
            f"the fixed points are nearly symmetric: turning them {degrees:.0f} degrees about an axis through their "
            f"centre maps them onto one another within {rms:.1f} mm RMS ({_cycles(nearest, labels)}); paired up "
            f"that wrong way they would still fit within about {rms:.1f} mm RMS, so a low FRE does not show the "
            "pairing is right: check every pair, or add a point that breaks the symmetry"
        )
    ]


def _cycles(permutation: np.ndarray, labels: list[str]) -> str:
    """'A<->B, C->D->E->C' for the points a permutation moves."""
    seen, parts = set(), []
    for start in range(len(permutation)):
        if start in seen or permutation[start] == start:
            continue
        cycle, index = [], start
        while index not in seen:
            seen.add(index)
            cycle.append(labels[index])
            index = int(permutation[index])
        parts.append(f"{cycle[0]}<->{cycle[1]}" if len(cycle) == 2 else "->".join(cycle + [cycle[0]]))
    return ", ".join(parts)


def _outside(points_lps: np.ndarray, image: sitk.Image) -> np.ndarray:
    """Distance (mm) of each point outside the image's voxel box (0 inside)."""
    inverse = np.linalg.inv(index_to_physical_matrix(image))
    index = points_lps @ inverse[:3, :3].T + inverse[:3, 3]
    upper = np.asarray(image.GetSize(), float) - 0.5
    beyond = np.maximum(np.maximum(-0.5 - index, index - upper), 0.0) * np.asarray(image.GetSpacing())
    return np.linalg.norm(beyond, axis=1)


def _bounds_warnings(points_lps: np.ndarray, image: sitk.Image | None, labels: list[str], role: str) -> list[str]:
    if image is None:
        return []
    distance = _outside(points_lps, image)
    outside = np.flatnonzero(distance > 0)
    if not len(outside):
        return []
    names = ", ".join(f"'{labels[i]}'" for i in outside)
    return [
        (
            f"{role} points {names} lie outside the {role} image (up to {distance.max():.1f} mm beyond its edge): "
            f"they were probably placed on another volume, or the volume moved after placing; check the {role} list"
        )
    ]


# --------------------------------------------------------------------------- TPS export
def field_grid(reference: sitk.Image | None, points_lps: np.ndarray) -> sitk.Image:
    """The grid a TPS field is sampled on: the reference's grid (coarsened if huge), else a box
    around the points with a margin, at ``FIELD_SPACING_MM``."""
    if reference is None:
        low, high = points_lps.min(axis=0), points_lps.max(axis=0)
        margin = max(FIELD_MARGIN_MM, 0.25 * float((high - low).max()))
        size = np.ceil((high - low + 2 * margin) / FIELD_SPACING_MM).astype(int) + 1
        grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
        grid.SetSpacing([FIELD_SPACING_MM] * 3)
        grid.SetOrigin(tuple(float(v) for v in low - margin))
        return grid
    size = np.asarray(reference.GetSize()[:3], int)
    spacing = np.asarray(reference.GetSpacing()[:3], float)
    factors = np.ones(3, int)
    shrunk = size
    while np.prod(shrunk.astype(float)) > MAX_FIELD_VOXELS:
        axis = int(np.argmin(spacing * factors))
        factors[axis] += 1
        shrunk = (size - 1 + factors - 1) // factors + 1  # nodes still reach the last voxel centre
    grid = sitk.Image([int(s) for s in shrunk], sitk.sitkUInt8)
    grid.SetSpacing(tuple(float(s) for s in spacing * factors))
    grid.SetOrigin(reference.GetOrigin()[:3])
    grid.SetDirection(tuple(np.asarray(reference.GetDirection(), float).reshape(-1)[:9]))
    return grid


def tps_displacement_field(spline: ThinPlateSpline, grid: sitk.Image) -> sitk.Image:
    """Sample ``spline(x) - x`` (LPS mm) at every node of ``grid``: a vector image for a displacement field."""
    size = grid.GetSize()
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in size[::-1]], indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)
    matrix = index_to_physical_matrix(grid)
    physical = index @ matrix[:3, :3].T + matrix[:3, 3]
    displacement = (spline(physical) - physical).reshape(*size[::-1], 3)
    field_image = sitk.GetImageFromArray(displacement, isVector=True)
    field_image.CopyInformation(grid)
    return field_image


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


def pair_points(
    moving: np.ndarray, fixed_labels: list[str] | None, moving_labels: list[str] | None
) -> tuple[np.ndarray, list[str] | None, str, list[str]]:
    """Reorder the moving points to match the fixed ones by label when every label matches, else keep order.

    Returns (moving points, moving labels, "label" or "order", warnings).
    """
    if fixed_labels is None or moving_labels is None:
        return moving, moving_labels, "order", []
    unique = len(set(fixed_labels)) == len(fixed_labels) and len(set(moving_labels)) == len(moving_labels)
    if unique and set(fixed_labels) == set(moving_labels):
        position = {label: index for index, label in enumerate(moving_labels)}
        order = [position[label] for label in fixed_labels]
        return moving[order], [moving_labels[i] for i in order], "label", []
    common = set(fixed_labels) & set(moving_labels)
    if not common:
        return moving, moving_labels, "order", []
    if not unique:
        reason = "a label appears twice in one list"
    else:
        only_fixed = sorted(set(fixed_labels) - common)
        only_moving = sorted(set(moving_labels) - common)
        reason = f"fixed only: {only_fixed}, moving only: {only_moving}"
    return (
        moving,
        moving_labels,
        "order",
        [
            (
                f"points are paired by order because the labels do not all match ({reason}): "
                "rename them so every label appears once in each list, or check the order"
            )
        ],
    )


def fit_landmarks(
    fixed_ras: np.ndarray | Sequence[Sequence[float]],
    moving_ras: np.ndarray | Sequence[Sequence[float]],
    kind: str = "rigid",
    fixed_labels: Sequence[str] | None = None,
    moving_labels: Sequence[str] | None = None,
    reference_image: sitk.Image | None = None,
    fixed_image: sitk.Image | None = None,
    moving_image: sitk.Image | None = None,
) -> LandmarkFit:
    """Fit a fixed -> moving transform to paired landmarks given in world RAS mm.

    The transform satisfies ``transform(fixed_i) ~= moving_i`` in LPS (the resampling direction).
    Pairs match by label when both label lists hold the same unique labels, else by order.
    ``reference_image`` (default ``fixed_image``) is the grid a ``tps`` field is sampled on; without
    either, a grid around the fixed points at 2 mm. Outside its grid the TPS field is the identity.
    ``fixed_image``/``moving_image`` (LPS, optional) only serve to warn about points outside them.
    Raises :class:`InputError` when no fit is possible; everything else is a warning.
    """
    if kind not in KINDS:
        raise InputError(f"unknown transform type '{kind}': choose one of {', '.join(KINDS)}")
    fixed = _as_points(fixed_ras, "fixed")
    moving = _as_points(moving_ras, "moving")
    if len(fixed) != len(moving):
        raise InputError(
            f"{len(fixed)} fixed points but {len(moving)} moving points: every fixed landmark needs its moving "
            "counterpart; add the missing ones or delete the extra ones"
        )
    given_fixed_labels = _labels(fixed_labels, len(fixed), "fixed")
    given_moving_labels = _labels(moving_labels, len(moving), "moving")
    moving, given_moving_labels, paired_by, warnings = pair_points(moving, given_fixed_labels, given_moving_labels)
    labels = given_fixed_labels or given_moving_labels or [f"P{i + 1}" for i in range(len(fixed))]
    moving_names = given_moving_labels or labels

    warnings += _check_shape(kind, fixed)
    warnings += _duplicates(fixed, labels, "fixed") + _duplicates(moving, moving_names, "moving")
    fixed_lps, moving_lps = lps_ras_points(fixed), lps_ras_points(moving)

    model = fit_model(kind, fixed_lps, moving_lps)
    notes = []
    if isinstance(model, ThinPlateSpline):
        reference = reference_image if reference_image is not None else fixed_image
        grid = field_grid(reference, fixed_lps)
        transform = Transform.from_displacement_field(tps_displacement_field(model, grid))
        inside = _outside(fixed_lps, grid) == 0
        departure = np.linalg.norm(transform.transform_points(fixed_lps) - model(fixed_lps), axis=1)
        sampling = float(departure[inside].max()) if inside.any() else 0.0
        spacing = max(grid.GetSpacing())
        if not inside.all():
            names = ", ".join(f"'{labels[i]}'" for i in np.flatnonzero(~inside))
            warnings.append(
                f"fixed points {names} lie outside the reference image that the spline is sampled on, and the "
                "field does not move them: give a reference image that covers every fixed point"
            )
        notes.append(TPS_NOTE)
        notes.append(
            f"the spline is stored as a displacement field on a {'x'.join(map(str, grid.GetSize()))} grid at "
            f"{spacing:.2f} mm (identity outside it), within {sampling:.2f} mm of the exact spline at the points "
            "inside it"
        )
        if sampling > FIELD_TOLERANCE_MM:
            warnings.append(
                f"the displacement field ({spacing:.2f} mm grid) departs up to {sampling:.2f} mm from the spline at "
                "the points because the spline bends sharply: check the pairs, or give a finer reference image"
            )
    else:
        transform = Transform.from_matrix(model)
        notes.append(LINEAR_NOTE)

    mapped_lps = transform.transform_points(fixed_lps)
    errors = np.linalg.norm(mapped_lps - moving_lps, axis=1)
    loo = _leave_one_out(kind, fixed_lps, moving_lps)
    available = [e for e in loo if e is not None]
    if len(available) < len(loo):
        notes.append(
            f"leave-one-out needs a {kind} fit from the remaining points; it was not possible for "
            f"{len(loo) - len(available)} of {len(loo)} points: add points for a trustworthy estimate"
        )

    warnings += _swap_warnings(kind, fixed_lps, moving_lps, labels, paired_by)
    warnings += _mirror_warnings(kind, model, fixed_lps, moving_lps)
    warnings += _scale_warnings(kind, model)
    warnings += _symmetry_warnings(kind, fixed_lps, labels)
    warnings += _bounds_warnings(fixed_lps, fixed_image, labels, "fixed")
    warnings += _bounds_warnings(moving_lps, moving_image, moving_names, "moving")

    mapped_ras = lps_ras_points(mapped_lps)
    residuals = [
        PointResidual(labels[i], moving_names[i], fixed[i], moving[i], mapped_ras[i], float(errors[i]), loo[i])
        for i in range(len(fixed))
    ]
    return LandmarkFit(
        transform=transform,
        kind=kind,
        residuals=residuals,
        fre_rms_mm=_rms(errors),
        fre_mean_mm=float(errors.mean()),
        fre_max_mm=float(errors.max()),
        loo_rms_mm=_rms(np.array(available)) if available else None,
        paired_by=paired_by,
        warnings=warnings,
        notes=notes,
    )


def _leave_one_out(kind: str, fixed: np.ndarray, moving: np.ndarray) -> list[float | None]:
    """Per pair: the distance (mm) between the moving point and where a fit without that pair sends it."""
    errors: list[float | None] = []
    for i in range(len(fixed)):
        keep = np.arange(len(fixed)) != i
        if keep.sum() < MIN_POINTS[kind] or _undetermined(kind, fixed[keep]):
            errors.append(None)
            continue
        model = fit_model(kind, fixed[keep], moving[keep])
        errors.append(float(np.linalg.norm(_apply(model, fixed[i : i + 1])[0] - moving[i])))
    return errors
