"""Principal axes and extents of a point cloud's covariance (mm): a band of length L has variance L² / 12 along it.

One place for that reading, used by the start searches in 2D and 3D (how long a foreground is, and along which
axes to slide a partial one).
"""

from __future__ import annotations

import numpy as np


def principal_extents(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes (columns, largest variance first) and the extents (mm) along them."""
    variances, axes = np.linalg.eigh(np.asarray(covariance, float))
    return axes[:, ::-1], np.sqrt(12 * np.clip(variances[::-1], 0, None))


def extents_along(covariance: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Extents (mm) along unit ``directions`` (..., D, K): one per column, over any leading axes."""
    return np.sqrt(12 * np.einsum("...ik,ij,...jk->...k", directions, covariance, directions).clip(0))
