"""Defects of the pairing found after the fit (LPS mm): swapped pairs, mirrored lists, implausible scales
and outliers. :func:`pairing_warnings` reports each defect once, by the check that names its cause, as a
plain-language warning that names the points and the fix.
"""

from __future__ import annotations

import numpy as np

from ..core.rotations import orthogonal_fit
from .checks import FLAT_RATIO, flatness, undetermined
from .models import MIN_POINTS, a_fit, apply_model, fit_model, fit_name, fit_rms, linear_part, rms

# Plausible landmark scales between two images of one subject: tissue shrinks 30-40% in clearing (a helper's sweep:
# 0.65 was called a spacing or unit error at (0.67, 1.5)); a unit (10, 25.4, 1000) or a slice step 2 times off is not.
SCALE_RANGE = (0.55, 1.7)
MIN_GAIN_MM = 1.0  # a mirror (or a swap too few pairs can confirm) must also improve the RMS by this much
MAX_SWAP_POINTS = 100  # the swap search weighs every pair (n^2 of them): skipped above this many points
MAX_SWAPS = 3
MIRROR_MESSAGE = "the lists may be left/right swapped or from mirrored sides"
MIRROR = np.array([-1.0, 1.0, 1.0])  # a left-right mirror image (LPS): any reflection is this times a rotation
# Outliers: a pair that a fit to the others misses by more than OUTLIER_SCORE + OUTLIER_FEW_DOF / dof times
# their scatter (per coordinate, at least OUTLIER_FLOOR_MM: a careful manual placement), widened by its
# leverage. The scatter of few residuals is a rough estimate, hence the higher bar for few degrees of
# freedom (dof); below MIN_OUTLIER_DOF no check. In simulations with Gaussian placement noise this flags
# under 0.2% of clean lists and, with 1 mm noise, most 15 mm misplacements from 7 rigid pairs on.
OUTLIER_SCORE = 5.5
OUTLIER_FEW_DOF = 24.0
OUTLIER_FLOOR_MM = 0.5
MIN_OUTLIER_DOF = 6
MAX_OUTLIERS = 2
PARAMETERS = {"translation": 3, "rigid": 6, "similarity": 7, "affine": 12}  # degrees of freedom of each fit
# How the mirror warning starts: a check that a mirror already explains stays quiet (see .frames).
MIRRORED = "only a mirror image fits these points"
# Pairs that do not fit together at all: the fit's RMS above this share of the fixed points' RMS spread about
# their centre (and MISFIT_MM). Five TRUS landmarks paired one place off fit 10.8 mm RMS over a 15 mm spread,
# silently; a 40% shrink under a rigid fit leaves about 0.4 of the spread, deformation and clicks less.
MISFIT_SHARE = 0.6
MISFIT_MM = 5.0


def find_swaps(
    kind: str, fixed: np.ndarray, moving: np.ndarray
) -> tuple[list[tuple[int, int, float, float]], np.ndarray]:
    """Swapped pairs: ``[(i, j, rms before, rms after)]`` and the moving points with those swaps undone.

    Up to ``MAX_SWAPS`` swaps are picked greedily, each the one that cuts the ``kind`` RMS most. The longest
    run of them is accepted in which each swap is confirmed: as given, both pairs stand out from a fit to
    the other pairs, as outliers do; swapped, both fit like the others (see :func:`_swap_confirmed`). With
    too few other pairs to tell, a swap must halve the RMS by itself, and by at least ``MIN_GAIN_MM``.
    """
    moving = np.asarray(moving, float)
    if len(fixed) < 2 or len(fixed) > MAX_SWAP_POINTS:
        return [], moving.copy()
    first, second = np.triu_indices(len(fixed), k=1)
    current_rms = fit_rms(kind, fixed, moving)
    candidates, current = [], moving.copy()
    for _ in range(MAX_SWAPS):
        values = swapped_rms(kind, fixed, current, first, second)
        best = int(np.argmin(values))
        if values[best] >= current_rms:
            break
        i, j = int(first[best]), int(second[best])
        current[[i, j]] = current[[j, i]]
        candidates.append((i, j, current_rms, float(values[best])))
        current_rms = float(values[best])
    for count in range(len(candidates), 0, -1):
        chosen = candidates[:count]
        corrected = moving.copy()
        for i, j, _, _ in chosen:
            corrected[[i, j]] = corrected[[j, i]]
        confirmed = [_swap_confirmed(kind, fixed, moving, corrected, i, j) for i, j, _, _ in chosen]
        if all(ok or (ok is None and _explains(after, before)) for ok, (_, _, before, after) in zip(confirmed, chosen)):
            return chosen, corrected
    return [], moving.copy()


def _swap_confirmed(
    kind: str, fixed: np.ndarray, moving: np.ndarray, corrected: np.ndarray, i: int, j: int
) -> bool | None:
    """Whether pairs ``i`` and ``j`` stand out as given and fit like the others once swapped, judged (as
    outliers are) against a fit to all other pairs of ``corrected``; None with too few of those to tell."""
    rest = np.setdiff1d(np.arange(len(fixed)), [i, j])
    degrees_of_freedom = 3 * len(rest) - PARAMETERS[kind]
    if degrees_of_freedom < MIN_OUTLIER_DOF or undetermined(kind, fixed[rest]) or len(rest) < MIN_POINTS[kind]:
        return None
    model = fit_model(kind, fixed[rest], corrected[rest])
    residuals = np.linalg.norm(apply_model(model, fixed[rest]) - corrected[rest], axis=1)
    sigma = max(float(np.sqrt(np.sum(residuals**2) / degrees_of_freedom)), OUTLIER_FLOOR_MM)
    limit = OUTLIER_SCORE + OUTLIER_FEW_DOF / degrees_of_freedom
    for index in (i, j):
        predicted = apply_model(model, fixed[index : index + 1])[0]
        scale = sigma * np.sqrt(1.0 + _leverage(kind, fixed[rest], fixed[index]))
        if np.linalg.norm(predicted - moving[index]) <= limit * scale:  # as given it does not stand out
            return False
        if np.linalg.norm(predicted - corrected[index]) > limit * scale:  # swapped it still does
            return False
    return True


def swapped_rms(kind: str, fixed: np.ndarray, moving: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """RMS (mm) of a ``kind`` fit after swapping the moving points ``first[k]`` and ``second[k]``, for every k.

    A swap leaves both centroids as they are, so each value follows from the fit as given without a refit:
    for rigid and similarity fits the cross-covariance changes by one outer product (a 3x3 SVD per swap),
    for affine and translation fits the residuals change only in the two rows.
    """
    count = len(fixed)
    delta = moving[second] - moving[first]  # what the first point's moving point moves by
    if kind == "translation":
        residual = moving - fixed - (moving.mean(axis=0) - fixed.mean(axis=0))
        total = float((residual**2).sum())
        r1, r2 = residual[first], residual[second]
        squares = total + 2 * np.einsum("kd,kd->k", delta, r1 - r2) + 2 * np.einsum("kd,kd->k", delta, delta)
    elif kind == "affine":
        design = np.hstack([fixed, np.ones((count, 1))])
        annihilator = np.eye(count) - design @ np.linalg.pinv(design)  # I - hat matrix
        residual = annihilator @ moving
        total = float((residual**2).sum())
        spread = annihilator[first, first] + annihilator[second, second] - 2 * annihilator[first, second]
        gain = np.einsum("kd,kd->k", delta, residual[first] - residual[second])
        squares = total + 2 * gain + spread * np.einsum("kd,kd->k", delta, delta)
    else:
        a = fixed - fixed.mean(axis=0)
        b = moving - moving.mean(axis=0)
        covariance = b.T @ a - np.einsum("kd,ke->kde", b[first] - b[second], a[first] - a[second])
        u, singular, vt = np.linalg.svd(covariance)
        signs = np.ones_like(singular)
        signs[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
        signs[signs[:, 2] == 0, 2] = 1.0
        matched = (singular * signs).sum(axis=1)
        fixed_squares, moving_squares = float((a**2).sum()), float((b**2).sum())
        if kind == "similarity":
            squares = moving_squares - matched**2 / max(fixed_squares, 1e-300)
        else:
            squares = moving_squares + fixed_squares - 2 * matched
    return np.sqrt(np.maximum(squares, 0.0) / count)


def _swap_messages(swaps, labels: list[str], paired_by: str, fit_name: str) -> list[str]:
    return [
        (
            f"points '{labels[i]}' and '{labels[j]}' look swapped: pairing each with the other's moving point "
            f"cuts the {fit_name} RMS from {before:.2f} mm to {after:.2f} mm; check their "
            f"{'labels' if paired_by == 'label' else 'order'} in the two lists"
        )
        for i, j, before, after in swaps
    ]


def _similarity_rms(fixed: np.ndarray, moving: np.ndarray, sign: int = 1) -> float:
    """RMS (mm) of the best rotation (``sign`` 1) or reflection (-1) with a uniform scale."""
    model = orthogonal_fit(fixed, moving, scale=True, sign=sign)
    return rms(np.linalg.norm(apply_model(model, fixed) - moving, axis=1))


def _mirror_message(rotation_rms: float, reflection_rms: float, swapped: bool) -> str:
    after = ", with the swapped pairs named below undone" if swapped else ""
    return (
        f"{MIRRORED} (best rotation {rotation_rms:.2f} mm RMS, best reflection "
        f"{reflection_rms:.2f} mm{after}): {MIRROR_MESSAGE}; check which side each list was placed on"
    )


def _mirror_testable(fixed: np.ndarray) -> bool:
    """A mirror is told from a rotation only by 4 or more points that are not (nearly) in one plane."""
    return len(fixed) >= 4 and flatness(fixed, FLAT_RATIO) is None


def _plane_turned_over(kind: str, model, fixed: np.ndarray) -> str | None:
    """The warning for a rigid or similarity fit that turns the plane of fixed points lying in one plane (or three)
    over: a mirror image of such points fits exactly as a half-turn, so no residual tells it (a helper's sweep: a
    slide's points flipped left-right fitted with FRE 0, and a point 20 mm off the slice landed 40 mm away)."""
    if kind not in ("rigid", "similarity") or len(fixed) < 3 or flatness(fixed, FLAT_RATIO) != "coplanar":
        return None
    normal = np.linalg.svd(fixed - fixed.mean(axis=0))[2][2]
    turned = linear_part(model)[:3, :3] @ normal
    angle = float(np.degrees(np.arccos(np.clip(turned @ normal / np.linalg.norm(turned), -1.0, 1.0))))
    if angle <= 90.0:
        return None
    return (f"the fixed points lie in one plane and the {fit_name(kind)} fit turns that plane over (its normal by "
            f"{angle:.0f} degrees): a mirror image of such points fits as well as a half-turn; unless the images are "
            f"turned over against each other, {MIRROR_MESSAGE}: check which side each list was placed on, or add a "
            "point off the plane")  # fmt: skip


def _explains(better: float, worse: float) -> bool:
    """An explanation is reported when it halves the RMS and gains at least ``MIN_GAIN_MM``."""
    return better <= 0.5 * worse and worse - better >= MIN_GAIN_MM


def _negative_determinant_message(kind: str) -> str:
    return f"the {fit_name(kind)} fit mirrors space (negative determinant): {MIRROR_MESSAGE}"


def pairing_warnings(
    kind: str, model, fixed: np.ndarray, moving: np.ndarray, labels: list[str], paired_by: str
) -> list[str]:
    """Swapped pairs, mirrored lists, implausible scales and outliers, each defect reported once, by the
    check that names its cause.

    The causes are settled first: swaps are searched in the pairs as given and, when they leave something
    to explain, in their mirror image (a mirrored list makes some swap look helpful, and a swapped pair
    can make a reflection fit better than a rotation). The mirror is reported when it halves what the
    swaps as given leave. The scale, mirror-determinant and outlier checks then look at the pairs with
    that explanation undone, so a swap or a mirror does not also show up as a wrong scale or as outliers;
    what remains after it is a defect of its own and is still reported.
    """
    check_kind = "affine" if kind == "tps" else kind
    swaps, corrected = find_swaps(check_kind, fixed, moving)
    warnings: list[str] = []
    mirrored = False
    if _mirror_testable(fixed):
        rotation = _similarity_rms(fixed, corrected, 1)
        if rotation >= MIN_GAIN_MM:  # something left to explain
            flipped = moving * MIRROR
            mirror_swaps, mirror_corrected = find_swaps(check_kind, fixed, flipped)
            reflection = _similarity_rms(fixed, mirror_corrected, 1)
            if _explains(reflection, rotation):
                mirrored = True
                warnings.append(_mirror_message(_similarity_rms(fixed, moving, 1), reflection, bool(mirror_swaps)))
                swaps, corrected = mirror_swaps, mirror_corrected
    warnings += _swap_messages(swaps, labels, paired_by, f"mirror-image {check_kind}" if mirrored else check_kind)
    if swaps or mirrored:
        model = fit_model(kind, fixed, corrected)
    if not mirrored and kind in ("affine", "tps") and np.linalg.det(linear_part(model)[:3, :3]) < 0:
        warnings.append(_negative_determinant_message(kind))
    if turned_over := _plane_turned_over(kind, model, fixed):
        warnings.append(turned_over)
    warnings += scale_warnings(kind, model, fixed, corrected)
    warnings += outlier_warnings(check_kind, fixed, corrected, labels)
    return warnings or misfit_warnings(check_kind, fixed, corrected, paired_by)


def misfit_warnings(kind: str, fixed: np.ndarray, moving: np.ndarray, paired_by: str) -> list[str]:
    """A warning when the ``kind`` fit leaves an RMS (mm) above MISFIT_SHARE of the fixed points' spread and
    MISFIT_MM: no single pair stands out, the pairs as a whole do not mark the same features."""
    if len(fixed) < MIN_POINTS[kind] + 1 or undetermined(kind, fixed):
        return []
    left = fit_rms(kind, fixed, moving)
    spread = rms(np.linalg.norm(fixed - fixed.mean(axis=0), axis=1))
    if left <= max(MISFIT_MM, MISFIT_SHARE * spread):
        return []
    how = "by their order" if paired_by == "order" else "by their labels"
    message = (f"the landmarks do not fit together: {a_fit(kind)} leaves {left:.1f} mm RMS, for points spread "
               f"{spread:.1f} mm RMS about their centre; they were paired {how}: check that each pair marks the same "
               "feature in both lists (label them alike, or put them in the same order)")  # fmt: skip
    return [message]


def outlier_warnings(kind: str, fixed: np.ndarray, moving: np.ndarray, labels: list[str]) -> list[str]:
    """Name pairs that a ``kind`` fit to all the other pairs misses by far more than those pairs' own scatter
    (greedy, worst first, up to ``MAX_OUTLIERS``).

    A pair's miss is compared with the others' scatter (per coordinate, floored at ``OUTLIER_FLOOR_MM``),
    widened by how far the point lies from the others (its leverage): a point far out is predicted less
    exactly. Too few pairs to estimate the scatter: no check.
    """
    keep = np.ones(len(fixed), bool)
    warnings = []
    for _ in range(MAX_OUTLIERS):
        found = _worst_outlier(kind, fixed, moving, keep)
        if found is None:
            break
        index, miss, scatter = found
        others = int(keep.sum()) - 1
        warnings.append(
            f"point '{labels[index]}' does not fit with the others: {a_fit(kind)} to the other {others} "
            f"pairs misses its moving point by {miss:.1f} mm, while they agree within {scatter:.1f} mm RMS; it was "
            "probably placed on a different feature in one of the lists: check the pair, or delete it"
        )
        keep[index] = False
    return warnings


def _worst_outlier(
    kind: str, fixed: np.ndarray, moving: np.ndarray, keep: np.ndarray
) -> tuple[int, float, float] | None:
    """(index, miss mm, RMS of the others mm) of the pair that stands out most, or None."""
    indices = np.flatnonzero(keep)
    degrees_of_freedom = 3 * (len(indices) - 1) - PARAMETERS[kind]
    if degrees_of_freedom < MIN_OUTLIER_DOF:
        return None
    best = None
    for index in indices:
        rest = indices[indices != index]
        if undetermined(kind, fixed[rest]) or len(rest) < MIN_POINTS[kind]:
            continue
        model = fit_model(kind, fixed[rest], moving[rest])
        residuals = np.linalg.norm(apply_model(model, fixed[rest]) - moving[rest], axis=1)
        sigma = max(float(np.sqrt(np.sum(residuals**2) / degrees_of_freedom)), OUTLIER_FLOOR_MM)
        miss = float(np.linalg.norm(apply_model(model, fixed[index : index + 1])[0] - moving[index]))
        score = miss / (sigma * np.sqrt(1.0 + _leverage(kind, fixed[rest], fixed[index])))
        if score > OUTLIER_SCORE + OUTLIER_FEW_DOF / degrees_of_freedom and (best is None or score > best[0]):
            best = (score, int(index), miss, rms(residuals))
    return None if best is None else best[1:]


def _leverage(kind: str, others: np.ndarray, point: np.ndarray) -> float:
    """How much less exactly a ``kind`` fit to ``others`` predicts at ``point`` than the placement noise:
    the prediction's variance (mean over the three coordinates) in units of the noise variance."""
    centre = others.mean(axis=0)
    offset = point - centre
    if kind == "affine":
        design = np.hstack([np.ones((len(others), 1)), others - centre])
        row = np.concatenate([[1.0], offset])
        return float(row @ np.linalg.pinv(design.T @ design) @ row)
    leverage = 1.0 / len(others)  # the translation, fixed at the centre
    if kind == "translation":
        return leverage
    # A small rotation w moves the prediction by w x offset; its covariance is the inverse inertia tensor.
    centred = others - centre
    inertia = (centred**2).sum() * np.eye(3) - centred.T @ centred
    cross = np.array([[0, -offset[2], offset[1]], [offset[2], 0, -offset[0]], [-offset[1], offset[0], 0]])
    leverage += float(np.trace(cross @ np.linalg.pinv(inertia) @ cross.T)) / 3
    if kind == "similarity":  # a scale moves it by s * offset, independently of the rotation
        leverage += float(offset @ offset) / max(float((centred**2).sum()), 1e-300) / 3
    return leverage


def scale_warnings(kind: str, model, fixed: np.ndarray, moving: np.ndarray) -> list[str]:
    """Warn when the fitted scale is outside ``SCALE_RANGE`` (wrong spacing or units). A rigid or translation fit
    has no scale: the similarity fit to the same pairs gives it (a list in cm was blamed on the pairing)."""
    if kind in ("rigid", "translation") and len(fixed) >= 4:  # 3 close points: 6 false alarms in 300 (a reviewer)
        scales = np.linalg.svd(linear_part(fit_model("similarity", fixed, moving))[:3, :3], compute_uv=False)
        described = f"the two lists differ in size by {scales[0]:.2f} (a similarity fit's scale; a {kind} fit keeps 1)"
    elif kind in ("similarity", "affine", "tps"):
        scales = np.linalg.svd(linear_part(model)[:3, :3], compute_uv=False)
        described = None
    else:
        return []
    low, high = SCALE_RANGE
    if scales.min() >= low and scales.max() <= high:
        return []
    if described is None and kind == "similarity":
        described = f"the fitted scale is {scales[0]:.2f}"
    elif described is None:
        described = f"the fitted scales along its principal directions are {', '.join(f'{s:.2f}' for s in scales)}"
    return [
        (
            f"{described}, outside {low}-{high}: check image spacing or units "
            "(a wrong voxel size in a header, or points in cm or um instead of mm)"
        )
    ]
