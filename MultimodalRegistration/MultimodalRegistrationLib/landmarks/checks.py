"""Checks of the points' geometry (LPS mm): too few, collinear or coplanar points for the fit (fixed, and moving
points that would make it collapse space), points placed twice, a singular fit, and symmetric layouts that a
wrong pairing would fit as well.

The ``check_*`` functions raise :class:`~.errors.InputError` when no fit is possible; the other checks return
plain-language warnings that name the points and the fix.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from .models import MIN_POINTS, a_fit, fit_name, fit_rms, linear_part, pairwise_distances, rms

# Principal spread (RMS mm about the centre) across a line or plane, as a fraction of the largest:
FLAT_RATIO = 0.1  # below this the points are nearly collinear / coplanar (warning)
DEGENERATE_RATIO = 1e-6  # below this they are exactly so and the fit is undetermined (error)
DUPLICATE_MM = 1.0  # two points of one list closer than this are probably one point placed twice
SPLINE_CLOSE_FRACTION = 0.01  # for a spline, of the points' extent, when that is less than DUPLICATE_MM
# A fit that shrinks one direction this many times more than another flattens space: refused.
SINGULAR_RATIO = 0.01
# A rotation mapping the fixed points onto one another within this fraction of their RMS radius, and
# within SYMMETRY_MM, means a wrong pairing would fit about as well as a manual placement error.
SYMMETRY_RATIO = 0.1
SYMMETRY_MM = 3.0


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


def undetermined(kind: str, points: np.ndarray) -> str | None:
    """Why a ``kind`` fit to these fixed points has no unique answer ('collinear', 'coplanar'), or None."""
    shape = flatness(points, DEGENERATE_RATIO)
    if kind == "translation" or shape is None:
        return None
    if shape == "coplanar" and kind not in ("affine", "tps"):
        return None
    return shape


# --------------------------------------------------------------------------- checks before the fit
def check_shape(kind: str, fixed: np.ndarray) -> list[str]:
    """Raise when the fit is undetermined; return warnings when it is poorly determined."""
    count = len(fixed)
    if count < MIN_POINTS[kind]:
        extra = " not all in one plane" if kind in ("affine", "tps") else ""
        instead = ", or use translation" if kind != "translation" else ""
        raise InputError(
            f"{a_fit(kind)} needs at least {MIN_POINTS[kind]} point pairs{extra}, got {count}: add points{instead}"
        )
    shape = undetermined(kind, fixed)
    if shape == "collinear":
        raise InputError(
            f"the {count} fixed points lie on one line: the rotation about that line is undetermined; "
            "add a point off the line, or use translation"
        )
    if shape == "coplanar":
        raise InputError(
            f"{a_fit(kind)} needs points not all in one plane, and these {count} are: "
            "add a point off the plane, or use rigid or similarity"
        )
    if kind == "translation":
        return []
    spreads = principal_spreads(fixed)
    near = flatness(fixed, FLAT_RATIO)
    if near == "collinear":
        placed = (f"the fixed points lie almost on one line (only {spreads[1]:.1f} mm RMS off it, {spreads[0]:.1f} mm "
                  "along it)")  # fmt: skip
        if kind in ("affine", "tps"):  # a helper's spinal cord: scales 0.87 and 1.12 across it from 0.6 mm of scatter
            return [f"{placed}: {a_fit(kind)}'s scales and shears across that line rest on that scatter and are poorly "
                    "determined, and its error grows fast away from the line; use rigid or similarity, or add points "
                    "well off the line"]  # fmt: skip
        return [f"{placed}: the rotation about that line is poorly determined; add a point well off the line"]
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


def close_groups(points: np.ndarray, limit_mm: float = DUPLICATE_MM) -> list[tuple[list[int], float]]:
    """Groups of points (indices) linked by distances below ``limit_mm``, each with its largest such link (mm)."""
    distances = pairwise_distances(points, points)
    group = list(range(len(points)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    links = [(i, j) for i, j in combinations(range(len(points)), 2) if distances[i, j] < limit_mm]
    for i, j in links:
        group[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for index in range(len(points)):
        members.setdefault(root(index), []).append(index)
    found = []
    for indices in members.values():
        if len(indices) > 1:
            found.append((indices, max(distances[i, j] for i, j in links if i in indices)))
    return found


def _named(indices: list[int], labels: list[str]) -> str:
    names = [f"'{labels[i]}'" for i in indices]
    return " and ".join(names) if len(names) == 2 else ", ".join(names)


def duplicate_warnings(points: np.ndarray, labels: list[str], role: str) -> list[str]:
    """Name points of one list closer than ``DUPLICATE_MM``, one warning per group of them."""
    warnings = []
    for indices, largest in close_groups(points):
        if len(indices) == 2:
            where = f"are {largest:.2f} mm apart: probably one point placed twice"
        else:
            where = f"lie within {DUPLICATE_MM:.0f} mm of one another: probably one point placed {len(indices)} times"
        warnings.append(
            f"{role} points {_named(indices, labels)} {where}; delete the extra ones, or move each to its own landmark"
        )
    return warnings


def check_spline_points(fixed: np.ndarray, labels: list[str]) -> None:
    """Refuse fixed points (LPS mm) closer than ``DUPLICATE_MM``, or than a hundredth of the points' extent if
    that is less (a mouse brain's landmarks 0.7 mm apart are distinct), for a thin-plate spline, which must pass
    through every pair: one fixed point cannot go to two moving points."""
    extent = float(pairwise_distances(fixed, fixed).max())
    for indices, largest in close_groups(fixed, min(DUPLICATE_MM, SPLINE_CLOSE_FRACTION * extent)):
        raise InputError(
            f"fixed points {_named(indices, labels)} are {largest:.2f} mm apart: a thin-plate spline cannot pass "
            "through two different moving points from one fixed point; delete one of each such pair (or move it "
            "to its own landmark), or use affine"
        )


def check_spline_grid(reference: sitk.Image | None, said: str) -> None:
    """Refuse a grid a thin-plate spline cannot be sampled on: an image that is not 3D, or one voxel thick along an
    axis (a slide). ``said``: how the user named it ("the reference image"). Its bend had faded over 0 mm: every
    field voxel NaN, written with exit 0, and a volume under it vanished in Slicer (a helper's sweep)."""
    if reference is None:
        return
    size = reference.GetSize()
    if reference.GetDimension() != 3 or min(size) < 2:
        shape = "x".join(map(str, size))
        raise InputError(
            f"{said} is {shape} voxels: a thin-plate spline is sampled on a 3D grid two or more voxels along every "
            "axis; choose the fixed volume (a 3D scan) as the reference, or none: the field then covers the points "
            "with a margin"
        )


def check_moving_shape(kind: str, fixed: np.ndarray, moving: np.ndarray) -> None:
    """Refuse moving points (LPS mm) that would make a ``kind`` fit collapse space: all at one position, or
    on one line (or, for affine and tps, in one plane) while the fit needs more."""
    if kind == "translation":
        return
    check_not_one_position(kind, fixed, moving)
    count = len(moving)
    shape = undetermined(kind, moving)
    if shape == "collinear":
        raise InputError(
            f"the {count} moving points lie on one line: {a_fit(kind)} to them is undetermined or flattens space "
            "onto that line; place moving points off that line, or use translation"
        )
    if shape == "coplanar":
        raise InputError(
            f"the {count} moving points lie in one plane (the fixed points do not): {a_fit(kind)} would flatten "
            "space onto that plane; use rigid or similarity, or place moving points off that plane"
        )


def check_not_one_position(kind: str, fixed: np.ndarray, moving: np.ndarray, role: str = "moving") -> None:
    """Refuse ``role`` points (LPS mm; ``moving``, named by ``role``) gathered at one position while the others
    (``fixed``) spread: no ``kind`` fit (nor a landmark-guided registration, which had blamed the spacing and turned
    90 degrees) can use them."""
    count, other = len(moving), "fixed" if role == "moving" else "moving"
    spread, fixed_spread = principal_spreads(moving)[0], principal_spreads(fixed)[0]
    if spread < SINGULAR_RATIO * fixed_spread:
        raise InputError(
            f"the {count} {role} points lie within {spread:.2f} mm RMS of one position while the {other} points "
            f"spread {fixed_spread:.1f} mm: {_collapse(kind)}; place each {role} point on "
            "its landmark (were they moved from where they were created?), and check that both lists are in mm"
        )


def _collapse(kind: str) -> str:
    if kind == "rigid":
        return "no rotation can be fitted to them"
    return f"{a_fit(kind)} would shrink space to a point"


def check_invertible(kind: str, model) -> None:
    """Refuse a fit whose linear part (for a spline, its affine part) is singular or nearly so: it flattens
    space, and Slicer cannot invert it to show the moving volume."""
    scales = np.linalg.svd(linear_part(model)[:3, :3], compute_uv=False)
    if scales[0] > 0 and scales[2] >= SINGULAR_RATIO * scales[0]:
        return
    listed = ", ".join(f"{s:.3g}" for s in scales)
    raise InputError(
        f"the {fit_name(kind)} fit is singular or nearly so (scales {listed} along its principal directions): it "
        "flattens space, because the moving points lie (nearly) in one plane or line while the fixed points do not, or "
        "the pairs are wrong; use rigid, or place moving points off that plane"
    )


# --------------------------------------------------------------------------- symmetry
def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.deg2rad(degrees)
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def symmetry_warnings(kind: str, fixed: np.ndarray, labels: list[str]) -> list[str]:
    """Warn when a rotation maps the fixed points onto one another (a wrong pairing would fit as well)."""
    if kind == "translation" or len(fixed) < 3:
        return []
    centred = fixed - fixed.mean(axis=0)
    radius = rms(np.linalg.norm(centred, axis=1))
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
        nearest = np.argmin(pairwise_distances(turned, centred), axis=1)
        if len(set(nearest.tolist())) < len(fixed) or np.all(nearest == np.arange(len(fixed))):
            continue
        value = fit_rms("rigid", centred, centred[nearest])
        if best is None or value < best[0]:
            best = (value, degrees, nearest)
    if best is None or best[0] > min(SYMMETRY_RATIO * radius, SYMMETRY_MM):
        return []
    value, degrees, nearest = best
    return [
        (
            f"the fixed points are nearly symmetric: turning them {degrees:.0f} degrees about an axis through their "
            f"centre maps them onto one another within {value:.1f} mm RMS ({_cycles(nearest, labels)}); paired up "
            f"that wrong way they would still fit within about {value:.1f} mm RMS, so a low FRE does not show the "
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
