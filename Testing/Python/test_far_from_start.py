"""A result far from the initial transform a user gave is warned about (registration/rules/far_from_start.py):
MR -> TRUS-like, unguided ANTs from the landmarks' rigid fit moves the gland about 30 mm, to a wrong place.
Close results stay quiet."""

from __future__ import annotations

import warnings

import numpy as np
from MultimodalRegistrationLib.core.phantom import make_phantom_pair
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.landmarks.fit import fit_landmarks
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.far_from_start import FAR_MOVE_MM, far_from_start_warning
from trus_data import trus_pair

LPS_RAS = np.array([-1.0, -1.0, 1.0])


def _shift(mm: float) -> Transform:
    matrix = np.eye(4)
    matrix[:3, 3] = [mm, 0.0, 0.0]
    return Transform.from_matrix(matrix)


def test_the_warning_reads_how_far_the_fixed_anatomy_moved():
    fixed = make_phantom_pair(ct_spacing=(4.0, 4.0, 4.0), mr_spacing=(4.0, 4.0, 4.0)).fixed
    start = _shift(3.0)
    assert far_from_start_warning(fixed, start, _shift(3.0 + FAR_MOVE_MM - 1.0)) is None
    far = far_from_start_warning(fixed, start, _shift(3.0 + 31.0))
    assert far is not None and far.startswith("the result lies 31 mm")


def test_unguided_ants_pulled_away_from_a_landmark_start_is_warned_about():
    pair = trus_pair(100)
    fit = fit_landmarks(pair.landmarks_fixed * LPS_RAS, pair.landmarks_moving * LPS_RAS, "rigid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(pair.fixed, pair.moving, engine="ants", preset="rigid", initial_transform=fit.transform)

    def target_error(transform: Transform) -> float:
        return float(np.median(np.linalg.norm(transform.transform_points(pair.targets_fixed) - pair.targets_moving, axis=1)))

    assert target_error(fit.transform) < 6.0  # the start was close
    assert target_error(result.transform) > 20.0  # the engine left it for a wrong place
    # Both say so: the mutual information inside the fan does not confirm it (test_weak_result.py), and it moved far.
    assert any(w.startswith("the result is probably wrong") for w in result.warnings)
    far = [w for w in result.warnings if w.startswith("the result lies")]
    assert len(far) == 1 and "from the initial transform" in far[0]
