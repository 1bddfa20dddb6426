"""The any-pose search's initial grid: proper and mirrored rigid poses over the rotation sphere,
each translated so that the foreground centres meet, and slid along a field of view that cuts
the anatomy short."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.choices import FULL_ROTATION_DEG
from ...core.extents import extents_along, principal_extents
from ...core.rotations import rigid_matrices, rotation_angle_deg, rotation_grid
from .coarse import CoarseImage

GRID_ROTATIONS = 400
# Slides along a cut axis: only when the cut image is shorter than the other by twice this (mm).
SLIDE_MIN_MM, SLIDE_STEP_MM, SLIDE_MAX_MM = 20.0, 15.0, 105.0


def _slides(linear: np.ndarray, fixed_cuts: np.ndarray, moving_cuts: np.ndarray, covariances) -> list[np.ndarray]:
    """Fixed-space shifts (mm) to try with each (K, 3, 3) linear part (fixed -> moving).

    ``fixed_cuts`` (C, 3) are unit directions in fixed space along which the fixed field of view
    cuts the anatomy short, ``moving_cuts`` the same in moving space. An image cut shorter than
    the other may sit anywhere along the other: slide along that direction. Lengths come from
    the foregrounds' covariances (a slab of length L has variance L^2 / 12 across it).
    Returns K arrays (S, 3), zero shift first.
    """
    fixed_covariance, moving_covariance = covariances
    count = len(linear)
    directions = np.concatenate(
        [np.broadcast_to(fixed_cuts, (count, len(fixed_cuts), 3)), np.einsum("kji,cj->kci", linear, moving_cuts)],
        axis=1,
    )  # (K, C, 3) in fixed space
    fixed_is_cut = np.arange(directions.shape[1]) < len(fixed_cuts)
    mapped = np.einsum("kij,kcj->kci", linear, directions)
    fixed_length = extents_along(fixed_covariance, directions.transpose(0, 2, 1))
    moving_length = extents_along(moving_covariance, mapped.transpose(0, 2, 1))
    half_difference = np.abs(moving_length - fixed_length) / 2
    usable = ((fixed_length < moving_length) == fixed_is_cut) & (half_difference > SLIDE_MIN_MM)
    half_difference = np.where(usable, half_difference, 0.0)
    slides = []
    for k in range(count):
        if not usable[k].any():
            slides.append(np.zeros((1, 3)))
            continue
        best = int(np.argmax(half_difference[k]))
        steps = int(min(half_difference[k, best], SLIDE_MAX_MM) // SLIDE_STEP_MM)
        offsets = np.concatenate([[0], np.arange(1, steps + 1), -np.arange(1, steps + 1)]) * SLIDE_STEP_MM
        slides.append(np.outer(offsets, directions[k, best]))
    return slides


def _principal_axes(points: np.ndarray) -> np.ndarray:
    """Columns: principal axes of a point cloud, largest variance first."""
    return principal_extents(np.cov(points.T))[0]


def candidate_poses(
    fixed: sitk.Image, moving: sitk.Image, fixed_coarse: CoarseImage, moving_coarse: CoarseImage,
    to_virtual: np.ndarray, max_rotation_deg: float, check_mirror: bool, dissected: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The initial grid: proper and mirrored (K, 4, 4) poses from fixed space to the prior-mapped
    moving frame (``to_virtual`` maps moving space there).

    Rotations: identity, the principal-axis matches (4 sign choices) and the grid, within
    ``max_rotation_deg``; mirrored: the same after one reflection (any mirrored pose is a
    reflection times a proper one; a limited search tries each moving image axis). Each is
    translated so that the foreground centres meet, and slid along a cut field of view; when
    ``dissected``, also along the moving foreground's principal axes (a hemisphere or a block cut
    from the organ is short along one of them, wherever its box ends).
    """
    moving_points = moving_coarse.points @ to_virtual[:3, :3].T + to_virtual[:3, 3]
    fixed_center, moving_center = fixed_coarse.points.mean(axis=0), moving_points.mean(axis=0)
    fixed_axes, moving_axes = _principal_axes(fixed_coarse.points), _principal_axes(moving_points)
    handedness = np.sign(np.linalg.det(moving_axes) * np.linalg.det(fixed_axes))
    signs = [np.diag([a, b, a * b * handedness]) for a in (1, -1) for b in (1, -1)]
    principal = np.stack([moving_axes @ sign @ fixed_axes.T for sign in signs])
    rotations = np.concatenate([np.eye(3)[None], principal, rotation_grid(GRID_ROTATIONS)])
    rotations = rotations[rotation_angle_deg(rotations) <= max_rotation_deg + 1e-6]
    fixed_direction = np.asarray(fixed.GetDirection()).reshape(3, 3)
    moving_direction = to_virtual[:3, :3] @ np.asarray(moving.GetDirection()).reshape(3, 3)
    moving_direction /= np.linalg.norm(moving_direction, axis=0, keepdims=True)
    mirror_axes = (range(3) if max_rotation_deg < FULL_ROTATION_DEG else range(1)) if check_mirror else range(0)
    mirrors = [np.eye(3) - 2 * np.outer(moving_direction[:, a], moving_direction[:, a]) for a in mirror_axes]
    linear = np.concatenate([rotations] + [mirror @ rotations for mirror in mirrors])
    fixed_cuts = fixed_direction[:, fixed_coarse.cut_axes()].T
    moving_cuts = moving_direction[:, moving_coarse.cut_axes()].T
    if dissected:
        moving_cuts = np.concatenate([moving_cuts, moving_axes.T])
    covariances = (np.cov(fixed_coarse.points.T), np.cov(moving_points.T))
    poses = np.concatenate([
        rigid_matrices(np.tile(part, (len(shifts), 1, 1)), moving_center - part @ fixed_center + shifts @ part.T)
        for part, shifts in zip(linear, _slides(linear, fixed_cuts, moving_cuts, covariances))
    ])  # fmt: skip
    mirrored = np.linalg.det(poses[:, :3, :3]) < 0
    return poses[~mirrored], poses[mirrored]
