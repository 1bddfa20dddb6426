"""Landmarks read in the other frame (x and y negated: LPS read as RAS, or the reverse) are named against a transform
(core/point_frames.py): by QA, and by a guided run whose images outvoted the landmarks. A reviewer's walkthrough gave
both lists in LPS: the run returned their fit, 48 mm off, saying only that the images agreed better elsewhere.
Points in LPS mm; transforms map fixed to moving points."""

from __future__ import annotations

import pytest
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.core.point_frames import NEGATED, other_frame_fit
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.keep import OUTVOTED


def test_a_list_read_in_the_other_frame_fits_the_transform_once_negated(small_pair):
    fixed = small_pair.head_points[::40][:6]
    moving = small_pair.truth.transform_points(fixed)
    assert other_frame_fit(fixed, moving, small_pair.truth) is None  # as given: it fits
    for which, (f, m) in {"moving": (fixed, moving * NEGATED), "fixed": (fixed * NEGATED, moving),
                          "fixed and moving": (fixed * NEGATED, moving * NEGATED)}.items():  # fmt: skip
        found = other_frame_fit(f, m, small_pair.truth)
        assert found is not None and found[0] == which and found[1] < 1e-6 < 5.0 < found[2], found


@pytest.mark.slow
def test_a_guided_run_whose_landmarks_are_both_in_the_other_frame_names_it(small_pair):
    fixed_points = small_pair.head_points[::40][:6]
    moving_points = small_pair.truth.transform_points(fixed_points)
    guidance = Guidance(fixed_points_lps=fixed_points * NEGATED, moving_points_lps=moving_points * NEGATED)
    result = register(small_pair.fixed, small_pair.moving, engine="elastix", preset="rigid", guidance=guidance)
    assert mean_error_mm(result.transform, small_pair.truth, small_pair.head_points) > 5.0  # the lists' own fit
    said = [warning for warning in result.warnings if warning.startswith(OUTVOTED)]
    assert len(said) == 1 and "fits the fixed and moving landmark lists read with x and y negated" in said[0], said
    assert "check the file's coordinate system" in said[0]
