"""All section poses at once from the pairwise registrations (least squares), so errors do not accumulate.

A pose ``P_k`` (3x3, mm) maps a point of the volume's section plane to section k's image:
``x_in = P_k x_out``. A pair (i, j) measured ``x_j = M_ij x_i``, so ``P_j = M_ij P_i``. Every section is
registered to several neighbours, and all these equations are solved together, weighted by each pair's
correlation and reweighted (Huber, then Cauchy) by its residual in mm, so one bad pair (a torn section) is outvoted.

Gauge (the anchor): the volume frame is the sections' mean pose: the rigid solve sets the sum of the angles
and of the shifts about the canvas centre to 0; the affine solve sets the mean pose to the identity.
Sequential chaining (:func:`sequential_poses`, the baseline) multiplies the i -> i+1 pairs from the first
section: every pair's error is carried to all later sections (the banana effect).

Rigid: angles first (``theta_j - theta_i = theta_ij``), then the shifts about the centre c
(``s_j - R_ij s_i = s_ij``, with ``x - c = R (x_out - c) + s``): two sparse linear problems.
Affine: the six entries of each pose are linear in ``P_j = M_ij P_i``; written about c, the linear part's
equations are scaled by ``RADIUS_MM`` so every row reads in mm.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import lsqr

from .pairs import PairResult

RADIUS_MM = 50.0  # an angle or linear error counts as the displacement it makes at this radius
ROUNDS = 8


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _wrap(angle):
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def _about(matrix: np.ndarray, center: np.ndarray) -> np.ndarray:
    """``matrix`` written in coordinates centred on ``center``."""
    shift = np.eye(3)
    shift[:2, 2] = center
    return np.linalg.inv(shift) @ matrix @ shift


def _robust(residual: np.ndarray, round_: int) -> np.ndarray:
    """Weights from the pairs' residuals (mm): Huber for the first two rounds, then Cauchy, which sets a pair
    far off (a fold, a tear) nearly to 0 even when it had a large weight and pulled the first solution."""
    scale = max(1.4826 * float(np.median(residual)), 0.25)
    if round_ < 2:
        return np.minimum(1.0, 1.5 * scale / np.maximum(residual, 1e-9))
    return 1.0 / (1.0 + (residual / (2.385 * scale)) ** 2)


def _solve(rows, cols, vals, rhs, shape) -> np.ndarray:
    matrix = coo_matrix((vals, (rows, cols)), shape=shape).tocsr()
    return lsqr(matrix, np.asarray(rhs, float), atol=1e-12, btol=1e-12, iter_lim=20000)[0]


def _circular_median(angles: np.ndarray) -> float:
    """The median of ``angles`` (radians) about their circular mean."""
    mean = float(np.angle(np.exp(1j * np.asarray(angles)).sum()))
    return mean + float(np.median(_wrap(np.asarray(angles) - mean)))


def _unwrapped(count: int, pairs: list[PairResult], angle_ij: np.ndarray) -> np.ndarray:
    """The pairs' angles (radians) each moved by whole turns to agree with the angles chained along the pairs from
    the first section: a section upside down on its slide measures +179 degrees to one neighbour and -179 to
    another, which a linear solve of the differences would average to 0."""
    theta = np.full(count, np.nan)
    neighbours: dict[int, list[tuple[int, int, float]]] = {}
    for k, p in enumerate(pairs):
        neighbours.setdefault(p.i, []).append((p.j, k, 1.0))
        neighbours.setdefault(p.j, []).append((p.i, k, -1.0))
    for start in sorted(neighbours):
        if not np.isnan(theta[start]):
            continue
        theta[start], queue = 0.0, [start]
        while queue:  # breadth first: the nearest neighbours' chain
            i = queue.pop(0)
            for j, k, sign in neighbours[i]:
                if np.isnan(theta[j]):
                    theta[j] = _wrap(theta[i] + sign * angle_ij[k])  # no whole turns carried down the chain
                    queue.append(j)
    chained = np.array([theta[p.j] - theta[p.i] for p in pairs])
    return chained + _wrap(angle_ij - chained)


def solve_rigid(
    count: int, pairs: list[PairResult], weights: np.ndarray, center: np.ndarray, gauge: list[int] | None = None
) -> np.ndarray:
    """(count, 3, 3) rigid poses; NaN for sections no pair reaches (see the module notes). ``gauge``: the sections
    whose mean pose is the volume frame (default: all that pairs reach; the reference is left out)."""
    centred = [_about(p.matrix, center) for p in pairs]
    angle_ij = _unwrapped(count, pairs, np.array([np.arctan2(m[1, 0], m[0, 0]) for m in centred]))
    shift_ij = np.array([m[:2, 2] for m in centred])
    members = sorted({p.i for p in pairs} | {p.j for p in pairs})
    fixing = [m for m in members if gauge is None or m in gauge] or members
    robust = np.ones(len(pairs))
    theta, shifts = np.zeros(count), np.zeros((count, 2))
    for round_ in range(ROUNDS):
        w = np.sqrt(weights * robust)
        rows, cols, vals = [], [], []
        for k, p in enumerate(pairs):
            rows += [k, k]
            cols += [p.j, p.i]
            vals += [w[k], -w[k]]
        rows += [len(pairs)] * len(fixing)
        cols += fixing
        vals += [1.0] * len(fixing)
        theta = _solve(rows, cols, vals, list(w * angle_ij) + [0.0], (len(pairs) + 1, count))
        rows, cols, vals, rhs = [], [], [], []
        for k, p in enumerate(pairs):
            rotation = _rotation(angle_ij[k])
            for axis in range(2):
                row = 2 * k + axis
                rows += [row, row, row]
                cols += [2 * p.j + axis, 2 * p.i, 2 * p.i + 1]
                vals += [w[k], -w[k] * rotation[axis, 0], -w[k] * rotation[axis, 1]]
                rhs.append(w[k] * shift_ij[k, axis])
        for axis in range(2):
            rows += [2 * len(pairs) + axis] * len(fixing)
            cols += [2 * m + axis for m in fixing]
            vals += [1.0] * len(fixing)
            rhs.append(0.0)
        shifts = _solve(rows, cols, vals, rhs, (2 * len(pairs) + 2, 2 * count)).reshape(count, 2)
        residual = np.array([
            np.hypot(np.linalg.norm(shifts[p.j] - _rotation(angle_ij[k]) @ shifts[p.i] - shift_ij[k]),
                     RADIUS_MM * abs(_wrap(theta[p.j] - theta[p.i] - angle_ij[k])))
            for k, p in enumerate(pairs)
        ])  # fmt: skip
        robust = _robust(residual, round_)
    # The volume frame: the gauge fixed the sections' mean angle, which one section upside down on its slide turns
    # by 180/N degrees; turn it to their circular median instead (x_out -> R(q) x_out about the centre adds q to
    # every angle and leaves the shifts).
    theta = theta - _circular_median(theta[fixing])
    poses = np.full((count, 3, 3), np.nan)
    for k in members:
        centred_pose = np.eye(3)
        centred_pose[:2, :2] = _rotation(theta[k])
        centred_pose[:2, 2] = shifts[k]
        poses[k] = _about(centred_pose, -center)
    return poses


def solve_affine(
    count: int, pairs: list[PairResult], weights: np.ndarray, center: np.ndarray, gauge: list[int] | None = None
) -> np.ndarray:
    """(count, 3, 3) affine poses; NaN for sections no pair reaches (see the module notes and :func:`solve_rigid`)."""
    centred = [_about(p.matrix, center) for p in pairs]
    members = sorted({p.i for p in pairs} | {p.j for p in pairs})
    fixing = [m for m in members if gauge is None or m in gauge] or members
    robust = np.ones(len(pairs))
    unknown = np.zeros(6 * count)

    def column(section: int, r: int, c: int) -> int:  # pose entry (row r, column c) of a section
        return 6 * section + 3 * r + c

    for round_ in range(ROUNDS):
        w = np.sqrt(weights * robust)
        rows, cols, vals, rhs = [], [], [], []
        row = 0
        for k, p in enumerate(pairs):
            m = centred[k]
            for r in range(2):
                for c in range(3):
                    scale = w[k] * (RADIUS_MM if c < 2 else 1.0)
                    rows.append(row)
                    cols.append(column(p.j, r, c))
                    vals.append(scale)
                    for q in range(2):
                        rows.append(row)
                        cols.append(column(p.i, q, c))
                        vals.append(-scale * m[r, q])
                    rhs.append(scale * (m[r, 2] if c == 2 else 0.0))
                    row += 1
        for r in range(2):
            for c in range(3):
                rows += [row] * len(fixing)
                cols += [column(s, r, c) for s in fixing]
                vals += [RADIUS_MM if c < 2 else 1.0] * len(fixing)
                rhs.append(len(fixing) * (RADIUS_MM if (c < 2 and r == c) else 0.0))
                row += 1
        unknown = _solve(rows, cols, vals, rhs, (row, 6 * count))
        poses_c = unknown.reshape(count, 2, 3)
        residual = []
        for k, p in enumerate(pairs):
            full_i = np.vstack([poses_c[p.i], [0, 0, 1]])
            difference = poses_c[p.j] - (centred[k] @ full_i)[:2]
            residual.append(np.hypot(np.linalg.norm(difference[:, 2]), RADIUS_MM * np.linalg.norm(difference[:, :2])))
        robust = _robust(np.asarray(residual), round_)
    poses = np.full((count, 3, 3), np.nan)
    poses_c = unknown.reshape(count, 2, 3)
    for k in members:
        poses[k] = _about(np.vstack([poses_c[k], [0, 0, 1]]), -center)
    return poses


def pair_residuals(poses: np.ndarray, pairs: list[PairResult], center: np.ndarray) -> np.ndarray:
    """How far (mm) each pair's measurement is from the solved poses: the largest gap between ``P_j x`` and
    ``M_ij P_i x`` over four points RADIUS_MM from the centre (NaN poses give NaN)."""
    ring = np.asarray(center) + RADIUS_MM * np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    points = np.column_stack([ring, np.ones(4)])
    out = np.empty(len(pairs))
    for k, p in enumerate(pairs):
        gap = (poses[p.j] @ points.T - p.matrix @ poses[p.i] @ points.T)[:2]
        out[k] = float(np.linalg.norm(gap, axis=0).max())
    return out


def sequential_poses(count: int, pairs: list[PairResult]) -> np.ndarray:
    """The baseline: chain each section to the previous usable one from the first at the identity."""
    by_pair = {(p.i, p.j): p for p in pairs}
    members = sorted({p.i for p in pairs} | {p.j for p in pairs})
    poses = np.full((count, 3, 3), np.nan)
    if not members:
        return poses
    poses[members[0]] = np.eye(3)
    for previous, current in pairwise(members):
        pair = by_pair.get((previous, current))
        poses[current] = poses[previous] if pair is None else pair.matrix @ poses[previous]
    return poses


def fill_missing(poses: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Poses for sections with none (NaN): each entry of the centred pose interpolated along the stack."""
    known = np.flatnonzero(~np.isnan(poses[:, 0, 0]))
    if len(known) == 0:
        return np.tile(np.eye(3), (len(poses), 1, 1))
    centred = np.array([_about(poses[k], center)[:2].ravel() for k in known])
    rigid = all(np.allclose(poses[k][:2, :2].T @ poses[k][:2, :2], np.eye(2), atol=1e-6) for k in known)
    out = poses.copy()
    for index in np.flatnonzero(np.isnan(poses[:, 0, 0])):
        values = np.array([np.interp(index, known, centred[:, d]) for d in range(6)]).reshape(2, 3)
        linear = values[:, :2]
        if rigid:  # the nearest rotation: a rigid stack stays rigid
            u, _, vt = np.linalg.svd(linear)
            linear = u @ vt
        out[index] = _about(np.vstack([np.column_stack([linear, values[:, 2]]), [0, 0, 1]]), -center)
    return out
