"""A nonlinear preset with a thin moving slab: a rigid run (both ways round) places it first, and the preset runs from
there (registration/placed_first.py). elastix deformable had stopped in 7 s with "Too many samples map outside moving
image buffer" (exit 1) on the skull-base slab. Transforms map fixed to moving points (LPS mm)."""

import pytest
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.registration.describe import describe_result
from MultimodalRegistrationLib.registration.other_way import falls_short_reason
from MultimodalRegistrationLib.registration.placed_first import PLACED_FIRST, placed_first_reason
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.thin_moving import OTHER_WAY
from MultimodalRegistrationLib.registration.settings import RegistrationSettings
from test_other_way import skull_base, slab_of  # noqa: F401 (a fixture)


def test_only_a_nonlinear_unguided_preset_with_a_thin_moving_image_is_placed_first(small_pair):
    fixed, moving = small_pair.fixed, small_pair.moving
    slab = slab_of(fixed, 0, 30)
    deformable = RegistrationSettings(preset="deformable")
    assert placed_first_reason(moving, slab, deformable, None).startswith("the moving image is a slab 30 mm")
    assert placed_first_reason(moving, slab, RegistrationSettings(preset="deformable", engine="ants"), None)
    assert placed_first_reason(moving, slab, RegistrationSettings(preset="affine"), None) is None  # the other way round
    assert placed_first_reason(fixed, moving, deformable, None) is None  # whole images
    assert placed_first_reason(slab, moving, deformable, None) is None  # the slab is the fixed image
    side = 0.3 * min(n * d for n, d in zip(fixed.GetSize(), fixed.GetSpacing()))  # mm: a tenth of the box, not thin
    cube = fixed[tuple(slice(n // 3, n // 3 + round(side / d)) for n, d in zip(fixed.GetSize(), fixed.GetSpacing()))]
    assert falls_short_reason(fixed, cube, deformable, None).startswith("the moving image (")  # small
    assert placed_first_reason(fixed, cube, deformable, None) is None  # refused with the advice to swap, as before


@pytest.mark.slow
def test_a_thin_moving_slab_under_elastix_deformable_is_placed_first_and_lands(skull_base):  # noqa: F811
    fixed, moving, truth, points = skull_base
    result = register(fixed, moving, engine="elastix", preset="deformable")
    assert mean_error_mm(result.transform, truth, points) < 0.5
    said = [warning.split(":")[0] for warning in result.warnings]
    assert said.index(OTHER_WAY) < said.index(PLACED_FIRST)  # the rigid run's own warning, then why it ran first
    made = result.provenance
    assert "the other way round was kept" in made.placed_first and made.preset == "deformable"
    assert made.initial_transform is None and made.init == "auto" and made.timings_s["placed_first_s"] > 0
    assert made.any_pose is not None and made.any_pose.candidates > 0  # the rigid run's search, in these roles
    assert made.fixed_sampling.startswith("the fixed samples came only from where the moving image lies")
    assert result.metric_after > result.metric_before + 0.3  # before: at the image centres, where the rigid run began
    assert "started from the rigid preset's result (placed first" in describe_result(result.summary())


def test_a_slab_too_thin_for_the_deformable_preset_returns_its_rigid_placement_with_a_warning():
    """The Visible Human 8 mm CT slab (moving) against its MR at 5 mm slices: elastix deformable stopped with exit 1
    ("Too many samples map outside moving image buffer"), before and after the rigid placement (79 / 4096 samples).
    The rigid placement is returned, said to be."""
    from conftest import shared_data
    from MultimodalRegistrationLib.core.images import read_image
    from MultimodalRegistrationLib.registration.placed_first import KEPT_RIGID

    mr = read_image(shared_data("visible_human_head", "vm_head_mri.mha"))
    ct = read_image(shared_data("visible_human_head", "vm_head_ct.mha"))
    result = register(mr, ct, engine="elastix", preset="deformable")
    assert result.transform.is_linear and result.inverse is not None
    made = result.provenance
    assert made.kept == KEPT_RIGID and made.preset == "rigid" and made.other_way_round
    assert "could not run from there (Too many samples map outside moving image buffer" in made.placed_first
    assert result.warnings[-1] == f"{PLACED_FIRST}: {made.placed_first}"
    assert result.metric_after > result.metric_before + 0.2  # 0.17 at the image centres, 0.51 placed
    assert f"returned the {KEPT_RIGID}, not the engine's result" in describe_result(result.summary())
