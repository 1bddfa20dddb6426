"""A thin slab under a preset that scales: its few slices show no size the scaled start search can compare, so the
rigid search places it at sizes 0.5-2 (registration/pose/slab_size.py). Before, a 40 mm skull-base CT slab (moving)
against a whole-head MR ended 117 mm off with no warning after a 126 s search (97 mm at 0.65 of its size), and a
15 mm phantom CT slab (fixed) was refused as "5 times the size ... a spacing is probably wrong". Transforms map fixed
to moving points (LPS mm)."""

import numpy as np
import pytest
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import scaled_image
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.scale_drift import SIZE_DRIFTED
from MultimodalRegistrationLib.registration.rules.thin_moving import OTHER_WAY
from MultimodalRegistrationLib.registration.rules.weak_result import WEAK_RESULT
from test_other_way import skull_base  # noqa: F401 (a fixture)


@pytest.mark.parametrize("scale", [0.65])
def test_a_skull_base_slab_under_similarity_lands_at_its_size(skull_base, scale):  # noqa: F811 (skips without MNI)
    fixed, moving, truth, points = skull_base
    result = register(fixed, scaled_image(moving, scale), engine="elastix", preset="similarity")
    truth = Transform.from_matrix(np.diag([scale, scale, scale, 1.0]) @ truth.matrix)
    assert mean_error_mm(result.transform, truth, points) < 0.5, result.warnings
    assert result.warnings[-1].startswith(OTHER_WAY)  # the slab searched at sizes as the fixed image
    assert result.provenance.any_pose.scale == pytest.approx(scale, rel=0.05)  # in the roles given


def test_a_thin_fixed_slab_under_similarity_is_not_refused_for_its_spacing(small_pair):
    """The phantom's 15 mm CT slab: not refused for its spacing. Its own size kept (the other sizes score no better);
    the rigid search's start is as ambiguous here as for the rigid preset (56 mm off), and said to be."""
    fixed = small_pair.fixed[:, :, 20:25]
    try:
        result = register(fixed, small_pair.moving, engine="elastix", preset="similarity")
    except InputError as error:
        pytest.fail(f"refused: {error}")
    assert any(w.startswith(WEAK_RESULT) for w in result.warnings), result.warnings
    assert not any(w.startswith(SIZE_DRIFTED) for w in result.warnings)
    searched = result.provenance.any_pose
    assert searched.scale is None and len(searched.scales_searched) == 17 and searched.candidates < 1000
