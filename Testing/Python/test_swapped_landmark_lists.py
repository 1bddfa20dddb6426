"""Landmark lists given the wrong way round, guiding alone: their fit is exactly the inverse of the truth, so nothing
in the landmarks shows it. The run returned that fit and said only that the images agree far better at the
engine's result (a helper's CT/MR pair: MI 0.267 -> 0.095). The images at the inverse of the fit now name it."""

from __future__ import annotations

import warnings

import numpy as np
from MultimodalRegistrationLib.core.images import physical_center
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.register import register

SWAPPED = "landmark lists look swapped"


def _run(pair, fixed_points, moving_points):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return register(pair.fixed, pair.moving, engine="elastix", preset="rigid",
                        guidance=Guidance(fixed_points_lps=fixed_points, moving_points_lps=moving_points))  # fmt: skip


def test_swapped_landmark_lists_are_named_by_the_images(small_pair):
    centre = physical_center(small_pair.fixed)
    offsets = np.array([[30, 0, 0], [-30, 5, 0], [0, 35, 10], [0, -30, -10], [10, 10, 30], [-10, -5, -30]], float)
    fixed_points = centre + offsets  # LPS mm, inside the head
    moving_points = small_pair.truth.transform_points(fixed_points)
    right = _run(small_pair, fixed_points, moving_points)
    assert not any(SWAPPED in warning for warning in right.warnings), right.warnings
    error = np.linalg.norm(right.transform.transform_points(fixed_points) - moving_points, axis=1)
    assert error.max() < 2.0, error

    swapped = _run(small_pair, moving_points, fixed_points)
    (warning,) = [w for w in swapped.warnings if SWAPPED in w]
    assert warning.startswith("the images agree far better at the inverse of the start"), warning
