"""Rotation grids and small pose arithmetic on 4x4 matrices (LPS mm), for the any-pose search; least-squares fits
of paired points."""

from __future__ import annotations

import numpy as np


def quaternion_matrices(quaternions: np.ndarray) -> np.ndarray:
    """(K, 4) quaternions (x, y, z, w), any length, to (K, 3, 3) rotation matrices."""
    q = np.asarray(quaternions, float)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x, y, z, w = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def rotation_grid(count: int) -> np.ndarray:
    """``count`` rotation matrices spread evenly over all rotations: a super-Fibonacci spiral
    (Alexa, CVPR 2022). 400 of them leave no rotation farther than ~28 degrees from the grid."""
    s = np.arange(count) + 0.5
    radius, complement = np.sqrt(s / count), np.sqrt(1.0 - s / count)
    alpha, beta = 2 * np.pi * s / np.sqrt(2.0), 2 * np.pi * s / 1.533751168755204288118041
    quaternions = np.stack(
        [radius * np.sin(alpha), radius * np.cos(alpha), complement * np.sin(beta), complement * np.cos(beta)], axis=1
    )
    return quaternion_matrices(quaternions)


def axis_angle_matrices(vectors: np.ndarray) -> np.ndarray:
    """(K, 3) rotation vectors (axis times angle in radians) to (K, 3, 3) matrices."""
    vectors = np.asarray(vectors, float)
    angles = np.linalg.norm(vectors, axis=1)
    axes = np.divide(vectors, angles[:, None], out=np.zeros_like(vectors), where=angles[:, None] > 0)
    half = angles / 2
    return quaternion_matrices(np.concatenate([axes * np.sin(half)[:, None], np.cos(half)[:, None]], axis=1))


def rotation_angle_deg(linear: np.ndarray) -> np.ndarray:
    """Rotation angle (degrees) of (..., 3, 3) orthogonal matrices; of their proper part
    (the matrix times its determinant's sign) for mirrored ones."""
    linear = np.asarray(linear, float)
    proper = linear * np.sign(np.linalg.det(linear))[..., None, None]
    cosine = (np.trace(proper, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def rigid_matrices(linear: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(K, 4, 4) homogeneous matrices from (K, 3, 3) linear parts and (K, 3) translations (mm)."""
    linear = np.asarray(linear, float).reshape(-1, 3, 3)
    matrices = np.tile(np.eye(4), (len(linear), 1, 1))
    matrices[:, :3, :3] = linear
    matrices[:, :3, 3] = np.asarray(translation, float).reshape(-1, 3)
    return matrices


def rotation_part(linear: np.ndarray) -> np.ndarray:
    """The rotation of a 3x3 linear map (the orthogonal factor of its polar decomposition): scale
    and shear removed, so that an affine pose's turn is measured alone. Orthogonal input is returned as is."""
    linear = np.asarray(linear, float)
    if np.allclose(linear.T @ linear, np.eye(3), atol=1e-6):
        return linear
    u, _, vt = np.linalg.svd(linear)
    return u @ vt


# A linear result's scales (singular values) outside these collapsed or exploded: no two scans of one anatomy, at
# their right spacings, differ that much in size (registration/rules/keep.py).
MIN_SCALE, MAX_SCALE = 0.2, 5.0


def isotropic_scale(linear: np.ndarray) -> float:
    """The mean isotropic scale of a 3x3 linear map: the cube root of its determinant's size."""
    return float(abs(np.linalg.det(np.asarray(linear, float))) ** (1.0 / 3.0))


def rotation_2d_deg(matrix: np.ndarray) -> float:
    """The rotation (degrees, counter-clockwise from the x axis to y) of a 2D matrix (3x3 or its 2x2 part)."""
    m = np.asarray(matrix, float)
    return float(np.degrees(np.arctan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1])))


def pose_difference(a: np.ndarray, b: np.ndarray, center: np.ndarray) -> tuple[float, float]:
    """Rotation (degrees, scale and shear left out) and distance between where ``center`` lands
    (mm) for two 4x4 poses. :func:`pose_change` also gives the scale ratio."""
    angle = float(rotation_angle_deg(rotation_part(a[:3, :3]).T @ rotation_part(b[:3, :3])))
    shift = float(np.linalg.norm((a[:3, :3] - b[:3, :3]) @ center + a[:3, 3] - b[:3, 3]))
    return angle, shift


def pose_change(a: np.ndarray, b: np.ndarray, center: np.ndarray) -> tuple[float, float, float]:
    """How pose ``a`` differs from pose ``b`` (4x4): rotation (degrees), isotropic scale of ``a``
    relative to ``b`` (1 = same size) and the distance between where ``center`` lands (mm)."""
    angle, shift = pose_difference(a, b, center)
    return angle, isotropic_scale(a[:3, :3]) / isotropic_scale(b[:3, :3]), shift


def reflection_matrix(normal: np.ndarray, point: np.ndarray) -> np.ndarray:
    """4x4 mirror through the plane with unit ``normal`` through ``point`` (LPS mm)."""
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    matrix = np.eye(4)
    matrix[:3, :3] -= 2 * np.outer(normal, normal)
    matrix[:3, 3] = 2 * normal * (normal @ np.asarray(point, float))
    return matrix


def affine_fit(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Least-squares affine map fixed -> moving (4x4) between paired points (N x 3, LPS mm)."""
    design = np.hstack([fixed, np.ones((len(fixed), 1))])
    solution = np.linalg.lstsq(design, moving, rcond=None)[0]
    matrix = np.eye(4)
    matrix[:3, :3] = solution[:3].T
    matrix[:3, 3] = solution[3]
    return matrix


def orthogonal_fit(fixed: np.ndarray, moving: np.ndarray, scale: bool, sign: int = 1) -> np.ndarray:
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


def orthogonal_fit_rms(fixed: np.ndarray, moving: np.ndarray, scale: bool = False) -> float:
    """RMS residual (mm) of :func:`orthogonal_fit` of these paired points (N, 3 each)."""
    fit = orthogonal_fit(fixed, moving, scale)
    mapped = fixed @ fit[:3, :3].T + fit[:3, 3]
    return float(np.sqrt(np.mean(np.sum((mapped - moving) ** 2, axis=1))))
