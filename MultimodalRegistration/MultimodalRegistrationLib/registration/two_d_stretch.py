"""An affine start for tissue that shrank unevenly: the pose that matches the two tissues' second moments.

The any-pose search (:mod:`.two_d_start`) turns and scales evenly. A slide shrunk 1.15 x 0.85 (its outline's
long axis now the other one) fit best turned about 90 degrees there, and both engines' affine presets ended about
50 mm off from it, silently (a helper's sweep; 1.1 x 0.9 was found). For every rotation ``R`` of the lattice, the
linear map ``C_m^(1/2) R C_f^(-1/2)`` (``C``: each tissue's covariance, mm^2) carries the fixed tissue's second
moments onto the moving one's, the centroids met; the rotation whose pose has the highest mutual information (the
search's 64-pixel scorer) is the stretched start. The registration runs from it beside the search's start when it
scores higher than that start and stretches by more than MIN_STRETCH or turns more than MIN_TURN_DEG from it, and
keeps the result with the higher mutual information (:func:`.two_d.register_2d`). Measured on the phantom slide
(the search's start, then the stretched one): 1.15 x 0.85 at 10 degrees 0.717 at 100 degrees, 0.965 at 10; 1.2 x
0.85 at -60 degrees 0.688 at 0, 0.980 at -60; 0.93 x 0.97 at 35 degrees 0.883 at 30, 1.024 at 40 (run too); 1 x 1
and 0.9 x 0.9: none. Transforms map fixed to moving points (mm).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.rotations import rotation_2d_deg

MIN_STRETCH = 1.05  # the pose's larger singular value over its smaller one
MIN_TURN_DEG = 20.0
STEP_DEG = 10.0


def _root(covariance: np.ndarray, power: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(covariance)
    return vectors @ np.diag(np.maximum(values, 1e-12) ** power) @ vectors.T


def stretched_pose(fixed_shape, moving_shape, score: Callable[[np.ndarray], float | None], start_angle_deg: float,
                   start_score: float) -> tuple[np.ndarray, float] | None:  # fmt: skip
    """The stretched pose (3x3, fixed -> moving mm) and its ``score`` (mutual information, higher agrees better;
    None where too few pixels overlap), or None when it scores no higher than the search's start (``start_score``,
    turned ``start_angle_deg``) or is that start in all but name (see the module notes). ``*_shape``:
    :func:`.two_d_start.tissue_shape`."""
    carry = _root(moving_shape.covariance, 0.5), _root(fixed_shape.covariance, -0.5)
    best = None
    for angle in np.radians(np.arange(0.0, 360.0, STEP_DEG)):
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        matrix = np.eye(3)
        matrix[:2, :2] = carry[0] @ turn @ carry[1]
        matrix[:2, 2] = moving_shape.center - matrix[:2, :2] @ fixed_shape.center
        value = score(matrix)
        if value is not None and (best is None or value > best[0]):
            best = (value, matrix)
    if best is None:
        return None
    value, matrix = best
    singular = np.linalg.svd(matrix[:2, :2], compute_uv=False)
    turned = abs((rotation_2d_deg(matrix) - start_angle_deg + 180.0) % 360.0 - 180.0)
    if value <= start_score or (singular[0] / singular[1] <= MIN_STRETCH and turned <= MIN_TURN_DEG):
        return None
    return matrix, value
