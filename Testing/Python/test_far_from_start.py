"""A result far from the initial transform a user gave is warned about (registration/rules/far_from_start.py):
MR -> TRUS-like, unguided ANTs from the landmarks' rigid fit moves the gland about 30 mm, to a wrong place.
Close results stay quiet."""

from __future__ import annotations

import re
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


def test_a_result_within_half_a_millimetre_of_its_start_only_confirms_it():
    """A linear result scoring a little below its start is kept as the start; within CONFIRMS_MM everywhere on the
    fixed anatomy it is not warned about (ten right CT-MR results, 0.11-0.14 mm off, had been told to try another
    start). A turn that moves the far anatomy more is."""
    from MultimodalRegistrationLib.core.phantom import rigid_transform
    from MultimodalRegistrationLib.registration.rules.far_from_start import confirms_start

    fixed = make_phantom_pair(ct_spacing=(4.0, 4.0, 4.0), mr_spacing=(4.0, 4.0, 4.0)).fixed
    start = _shift(3.0)
    assert confirms_start(fixed, start, _shift(3.3)) and not confirms_start(fixed, start, _shift(3.6))
    turned = start @ rigid_transform(0.5, (0, 0, 1), (0, 0, 0))  # 0.5 degrees: up to ~0.8 mm at the head's edge
    assert not confirms_start(fixed, start, turned)
    field = Transform.chain([start, Transform.from_displacement_field(start.displacement_field(fixed))])
    assert not confirms_start(fixed, start, field)  # nonlinear: never called a confirmation


def test_unguided_ants_pulled_away_from_a_landmark_start_returns_the_start():
    pair = trus_pair(100)
    fit = fit_landmarks(pair.landmarks_fixed * LPS_RAS, pair.landmarks_moving * LPS_RAS, "rigid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(pair.fixed, pair.moving, engine="ants", preset="rigid", initial_transform=fit.transform)

    def target_error(transform: Transform) -> float:
        return float(
            np.median(np.linalg.norm(transform.transform_points(pair.targets_fixed) - pair.targets_moving, axis=1))
        )

    # ANTs moved the gland about 30 mm, where the intensities inside the fan do not confirm it (test_weak_result.py):
    # nothing supports the move, so the landmarks' fit is returned as it was given.
    moved = re.search(r"it lay (\d+) mm from the initial transform", result.warnings[0])
    assert moved and int(moved.group(1)) > FAR_MOVE_MM
    assert np.allclose(result.transform.matrix, fit.transform.matrix) and target_error(result.transform) < 6.0
    assert np.allclose(result.inverse.matrix, np.linalg.inv(fit.transform.matrix))
    assert result.provenance.kept == "start" and result.provenance.start == "initial"
    assert len(result.warnings) == 1, result.warnings
    assert (
        result.warnings[0].startswith("the result is probably wrong")
        and "kept the initial transform" in result.warnings[0]
    )
    assert result.warnings[0] == result.provenance.kept_reason


def test_an_initial_transform_given_the_other_way_round_is_named_when_the_result_lies_at_its_inverse(small_pair):
    """A reviewer's walkthrough: the inverse of a right result as --initial-transform; the engine found the pose
    (0.06 mm) and the warning said only that the intensities may have pulled the result to a wrong place."""
    from MultimodalRegistrationLib.core.phantom import mean_error_mm

    inverted = small_pair.truth.inverse()  # moving -> fixed: the wrong way round
    result = register(small_pair.fixed, small_pair.moving, engine="elastix", preset="rigid", initial_transform=inverted)
    assert mean_error_mm(result.transform, small_pair.truth, small_pair.head_points) < 0.5
    far = [warning for warning in result.warnings if warning.startswith("the result lies")]
    assert len(far) == 1 and "mm from the initial transform's inverse: the initial transform was probably" in far[0]
