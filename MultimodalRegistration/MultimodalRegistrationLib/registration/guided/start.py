"""The starting pose of a guided registration, from the paired segments and landmarks (LPS mm).

Candidates: the segments' centroids brought together (keeping the prior rotation), the four proper
rotations that bring the segments' principal axes together, and the rigid fit of three or more
landmarks. With segments, the candidate whose warped segments overlap the fixed ones best wins (Dice);
candidates within ``DICE_TIE`` of the best count as tied and the simpler one (landmarks, then
centroids, then axes) wins, so a round organ keeps the scanner's orientation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ...core.images import index_to_physical_matrix
from ...core.rotations import orthogonal_fit
from ...core.transforms import Transform
from .guidance import PreparedGuidance

DICE_TIE = 0.02
MAX_MOMENT_POINTS = 200_000


@dataclass
class GuidedStart:
    """The chosen start (fixed -> moving) and every candidate's name and Dice, for provenance."""

    name: str
    transform: Transform
    candidates: list[dict]


def mask_points(mask: sitk.Image, max_points: int = MAX_MOMENT_POINTS) -> np.ndarray:
    """LPS mm positions of a mask's voxels (evenly thinned to at most ``max_points``)."""
    indices = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)[:, ::-1].astype(float)  # (i, j, k)
    if len(indices) > max_points:
        indices = indices[:: int(np.ceil(len(indices) / max_points))]
    matrix = index_to_physical_matrix(mask)
    return indices @ matrix[:3, :3].T + matrix[:3, 3]


def _moments(masks: list[sitk.Image]) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (LPS mm) and principal axes (columns, largest spread first) of the masks' union."""
    points = np.concatenate([mask_points(mask) for mask in masks])
    centroid = points.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((points - centroid).T))
    return centroid, vectors[:, ::-1]


def _pose(rotation: np.ndarray, fixed_centre: np.ndarray, moving_centre: np.ndarray) -> Transform:
    """x_moving = rotation (x_fixed - fixed_centre) + moving_centre."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = moving_centre - rotation @ fixed_centre
    return Transform.from_matrix(matrix)


def _segment_candidates(prepared: PreparedGuidance, prior_rotation: np.ndarray) -> list[tuple[str, Transform]]:
    fixed_centre, fixed_axes = _moments(prepared.fixed_masks)
    moving_centre, moving_axes = _moments(prepared.moving_masks)
    candidates = [("segment centroids", _pose(prior_rotation, fixed_centre, moving_centre))]
    for signs in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        flip = np.diag([signs[0], signs[1], 1.0])
        rotation = moving_axes @ flip @ fixed_axes.T
        if np.linalg.det(rotation) < 0:
            rotation = moving_axes @ flip @ np.diag([1.0, 1.0, -1.0]) @ fixed_axes.T
        candidates.append((f"segment axes {signs[0]:+d}{signs[1]:+d}", _pose(rotation, fixed_centre, moving_centre)))
    return candidates


def _points_candidate(prepared: PreparedGuidance, prior_rotation: np.ndarray) -> tuple[str, Transform] | None:
    terms = prepared.engine_terms
    if terms.fixed_points_lps is None:
        return None
    fixed, moving = terms.fixed_points_lps, terms.moving_points_lps
    centred = fixed - fixed.mean(axis=0)
    if len(fixed) >= 3 and np.linalg.matrix_rank(centred, tol=1.0) >= 2:  # not all on one line (1 mm)
        return "landmarks", Transform.from_matrix(orthogonal_fit(fixed, moving, scale=False))
    return "landmark centroid", _pose(prior_rotation, fixed.mean(axis=0), moving.mean(axis=0))


def mean_dice(prepared: PreparedGuidance, transform: Transform) -> float:
    """Mean Dice of the paired segments with the moving ones warped through ``transform`` (fixed -> moving)."""
    values = []
    for fixed_mask, moving_mask in zip(prepared.fixed_masks, prepared.moving_masks):
        warped = sitk.Resample(moving_mask, fixed_mask, transform.sitk, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        a, b = sitk.GetArrayViewFromImage(fixed_mask) != 0, sitk.GetArrayViewFromImage(warped) != 0
        total = int(a.sum()) + int(b.sum())
        values.append(2.0 * int(np.count_nonzero(a & b)) / total if total else 0.0)
    return float(np.mean(values))


def guided_start(prepared: PreparedGuidance, initial_transform: Transform | None = None) -> GuidedStart:
    """The start the guidance suggests; ``initial_transform`` (linear, fixed -> moving) gives the prior rotation."""
    linear = initial_transform is not None and initial_transform.is_linear
    prior = initial_transform.matrix[:3, :3] if linear else np.eye(3)
    candidates = []
    points = _points_candidate(prepared, prior)
    if points is not None:
        candidates.append(points)
    if prepared.pairs:
        candidates += _segment_candidates(prepared, prior)
    if not prepared.pairs:
        name, transform = candidates[0]
        return GuidedStart(name, transform, [{"name": name}])
    scored = [(name, transform, mean_dice(prepared, transform)) for name, transform in candidates]
    best = max(dice for _, _, dice in scored)
    name, transform, _ = next(item for item in scored if item[2] >= best - DICE_TIE)
    return GuidedStart(name, transform, [{"name": n, "dice": round(d, 4)} for n, _, d in scored])
