"""elastix's pyramids keep a thin slab's few slices: no axis shrunk below 4 voxels at a coarse level."""

import numpy as np
import pytest
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.elastix_pyramid import level_factors, thin_axis_schedules
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.engines.request import EngineRequest
from MultimodalRegistrationLib.engines.run import run_engine
from MultimodalRegistrationLib.registration.rules.sampling_region import moving_footprint


def test_a_thin_axis_keeps_its_voxels_and_the_others_keep_elastix_factors():
    assert level_factors(3, (115, 125, 7)) == [[4, 4, 1], [2, 2, 1], [1, 1, 1]]
    assert level_factors(3, (115, 125, 12)) == [[4, 4, 2], [2, 2, 2], [1, 1, 1]]
    assert level_factors(3, (115, 125, 16)) == [[4, 4, 4], [2, 2, 2], [1, 1, 1]]
    assert level_factors(2, (64, 5)) == [[2, 1], [1, 1]]


def test_only_a_shrinking_pyramid_without_its_own_schedule_is_changed():
    rigid = load_preset("elastix", "rigid").recipe[0]
    entries = thin_axis_schedules(rigid, (92, 100, 100), (115, 125, 7))
    assert entries == {"MovingImagePyramidSchedule": ["4", "4", "1", "2", "2", "1", "1", "1", "1"]}
    assert thin_axis_schedules(rigid, (92, 100, 100), (115, 125, 84)) == {}
    assert thin_axis_schedules({**rigid, "ImagePyramidSchedule": ["4"] * 9}, (92, 100, 7), (115, 125, 7)) == {}
    # A schedule given for one side only leaves the other side's thin slab capped (a reviewer).
    fixed_only = {**rigid, "FixedImagePyramidSchedule": ["4"] * 9}
    assert list(thin_axis_schedules(fixed_only, (92, 100, 7), (115, 125, 7))) == ["MovingImagePyramidSchedule"]
    # No NumberOfResolutions: elastix's own 3 levels, so 9 entries (4 had given 12, and elastix read 9 of them).
    three = {key: value for key, value in rigid.items() if key != "NumberOfResolutions"}
    assert len(thin_axis_schedules(three, (92, 100, 100), (115, 125, 7))["MovingImagePyramidSchedule"]) == 9
    bspline = load_preset("elastix", "deformable").recipe[-1]
    assert thin_axis_schedules(bspline, (92, 100, 7), (115, 125, 7)) == {}


@pytest.mark.slow
@pytest.mark.parametrize("slices", [5, 7])
def test_a_slab_of_a_few_slices_registers_where_elastix_had_crashed(small_pair, slices, tmp_path):
    """Before, every run here ended in signal 11 (itk-elastix 0.25.4): its coarsest level had 1 slice."""
    ct = small_pair.fixed
    first = 39
    slab = ct[:, :, first : first + slices]
    z0, dz = ct.GetOrigin()[2], ct.GetSpacing()[2]
    z = small_pair.head_points[:, 2]
    inside = small_pair.head_points[(z > z0 + (first - 0.5) * dz) & (z < z0 + (first + slices - 0.5) * dz)]
    truth = small_pair.truth.inverse()  # the MR fixed, the slab moving
    points = small_pair.truth.transform_points(inside)
    shift = np.eye(4)
    shift[:3, 3] = (3.0, -3.0, 2.0)
    start = truth @ Transform.from_matrix(shift)
    request = EngineRequest(
        small_pair.moving, slab, load_preset("elastix", "rigid"), initial=start,
        fixed_mask=moving_footprint(small_pair.moving, slab, start), workdir=tmp_path,
    )  # fmt: skip
    output = run_engine(request)
    before = mean_error_mm(start, truth, points)
    after = mean_error_mm(output.transform, truth, points)
    assert before > 4.5
    assert after < 0.75 * before, f"{slices} slices: {before:.2f} -> {after:.2f} mm"
