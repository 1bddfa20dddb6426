"""Pattern-search refinement of many rigid (or similarity) poses side by side, and picking distinct ones.

Poses are 4x4 matrices (fixed -> moving, LPS mm); moves are applied first, in fixed space, and
measured in mm: a turn counts by how far it moves points at a given radius, and so does a change
of isotropic scale (the radius grows or shrinks by that much).
"""

from __future__ import annotations

import numpy as np

from ...core.rotations import axis_angle_matrices, isotropic_scale, pose_difference, rigid_matrices

DISTINCT_DEG, DISTINCT_MM = 25.0, 25.0


def _moves(deltas_mm: np.ndarray, radius_mm: float, center: np.ndarray) -> np.ndarray:
    """(K, 4, 4) fixed-space moves from (K, 6) parameters in mm: a turn about ``center`` that moves
    points at ``radius_mm`` by the first three (about x, y, z), then a shift by the last three."""
    deltas_mm = np.asarray(deltas_mm, float).reshape(-1, 6)
    rotations = axis_angle_matrices(deltas_mm[:, :3] / radius_mm)
    return rigid_matrices(rotations, center - rotations @ center + deltas_mm[:, 3:])


def _scaled_moves(deltas_mm: np.ndarray, radius_mm: float, center: np.ndarray) -> np.ndarray:
    """As :func:`_moves` from (K, 7) parameters: the seventh scales about ``center`` by
    exp(value / ``radius_mm``) (a change of the radius by about that many mm)."""
    deltas_mm = np.asarray(deltas_mm, float).reshape(-1, 7)
    linear = axis_angle_matrices(deltas_mm[:, :3] / radius_mm) * np.exp(deltas_mm[:, 6] / radius_mm)[:, None, None]
    return rigid_matrices(linear, center - linear @ center + deltas_mm[:, 3:6])


def local_search(
    score, poses: np.ndarray, center, radius_mm: float, start_mm: float, stop_mm: float, rounds: int = 30,
    scale: bool = False,
):  # fmt: skip
    """Refine (K, 4, 4) poses side by side by a pattern search maximising ``score``.

    Each round tries, for every pose, +-step along each of the 6 rigid parameters (7 with
    ``scale``: isotropic scale about ``center`` too; moves applied first, in fixed space) and then
    the Newton step of a parabola through each parameter's three values; it takes the best if it
    improves, else halves the step. A pose stops below ``stop_mm``. Returns the poses and their scores.
    """
    poses = np.array(poses, float)
    values = score(poses)
    steps = np.full(len(poses), float(start_mm))
    count = 7 if scale else 6
    move = _scaled_moves if scale else _moves
    unit = np.concatenate([np.eye(count), -np.eye(count)])
    for _ in range(rounds):
        active = np.flatnonzero(steps >= stop_mm)
        if active.size == 0:
            break
        step = steps[active]
        moves = move((unit[None] * step[:, None, None]).reshape(-1, count), radius_mm, center)
        trials = poses[active][:, None] @ moves.reshape(-1, 2 * count, 4, 4)
        trial_values = score(trials.reshape(-1, 4, 4)).reshape(len(active), 2 * count)
        plus, minus, here = trial_values[:, :count], trial_values[:, count:], values[active][:, None]
        slope, curvature = (plus - minus) / 2, plus + minus - 2 * here
        newton = np.where(curvature < 0, -slope / np.where(curvature < 0, curvature, -1), np.sign(slope))
        newton_poses = poses[active] @ move(np.clip(newton, -1, 1) * step[:, None], radius_mm, center)
        newton_values = score(newton_poses)
        for row, pose in enumerate(active):
            best = int(np.argmax(trial_values[row]))
            candidate, value = trials[row, best], trial_values[row, best]
            if newton_values[row] > value:
                candidate, value = newton_poses[row], newton_values[row]
            if value > values[pose] + 1e-4:
                poses[pose], values[pose] = candidate, value
            else:
                steps[pose] /= 2
    return poses, values


def distinct_poses(
    poses: np.ndarray, values: np.ndarray, count: int, center: np.ndarray,
    degrees: float = DISTINCT_DEG, mm: float = DISTINCT_MM,
) -> list[int]:  # fmt: skip
    """Indices of the best ``count`` poses, each differing from the better ones by a rotation
    (``degrees``) or a shift of ``center`` (``mm``)."""
    chosen: list[int] = []
    for index in np.argsort(-values):
        differences = [pose_difference(poses[index], poses[other], center) for other in chosen]
        if all(angle >= degrees or shift >= mm for angle, shift in differences):
            chosen.append(int(index))
            if len(chosen) == count:
                break
    return chosen



def distinct_scaled_poses(
    poses: np.ndarray, values: np.ndarray, count: int, center: np.ndarray,
    degrees: float = DISTINCT_DEG, mm: float = DISTINCT_MM, scale_ratio: float = 0.12,
) -> list[int]:  # fmt: skip
    """As :func:`distinct_poses` for similarity poses: two also differ when their isotropic scales
    differ by more than ``scale_ratio`` (log ratio); shifts count in the moving image's mm."""
    scales = np.array([isotropic_scale(pose[:3, :3]) for pose in poses])
    chosen: list[int] = []
    for index in np.argsort(-values):
        alike = False
        for other in chosen:
            angle, shift = pose_difference(poses[index], poses[other], center)
            ratio = abs(np.log(scales[index] / scales[other]))
            if angle < degrees and shift < mm * scales[index] and ratio < scale_ratio:
                alike = True
                break
        if not alike:
            chosen.append(int(index))
            if len(chosen) == count:
                break
    return chosen
