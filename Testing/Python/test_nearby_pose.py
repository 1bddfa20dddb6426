"""QA names a linear transform that a pose some degrees or mm away would correct (registration/rules/nearby_pose.py).

A helper's QA check: the MNI T1 against a T2-like copy, the truth turned 20 degrees, gave no warning (mutual
information rose 0.30 -> 0.41; 19.8 mm at the landmarks). Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SMALL
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform
from MultimodalRegistrationLib.qa.triage import QA_DOUBTS
from MultimodalRegistrationLib.registration.rules.nearby_pose import NEARBY_POSE_WARNING, nearby_pose_warning


@pytest.fixture(scope="module")
def pair():
    return make_phantom_pair(**SMALL)


def _turned(pair, degrees: float, shift=(0.0, 0.0, 0.0)) -> Transform:
    """The truth, then a turn of ``degrees`` about the head's centre and a ``shift`` (fixed space, mm)."""
    center = pair.head_points.mean(axis=0)
    turn = rigid_transform(degrees, (0.3, 1.0, 0.2), shift)
    about = Transform.from_matrix(np.linalg.multi_dot([_moved_to(center), turn.matrix, _moved_to(-center)]))
    return pair.truth @ about


def _moved_to(offset) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def test_the_truth_is_left_alone_and_a_turn_or_a_shift_is_named_with_its_size(pair):
    assert nearby_pose_warning(pair.fixed, pair.moving, pair.truth) is None
    for degrees, shift, named in ((20.0, (0.0, 0.0, 0.0), "one 20 degrees"), (0.0, (12.0, 0.0, 0.0), "and 12 mm")):
        wrong = _turned(pair, degrees, shift)
        assert mean_error_mm(wrong, pair.truth, pair.head_points) > 10.0
        warning = nearby_pose_warning(pair.fixed, pair.moving, wrong)
        assert warning is not None and warning.startswith(NEARBY_POSE_WARNING) and named in warning, warning
    assert NEARBY_POSE_WARNING in QA_DOUBTS  # a batch's verdict is 'check'
