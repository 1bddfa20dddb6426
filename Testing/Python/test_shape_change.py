"""A result that squashes the anatomy (an affine stage on a small, self-similar spinal cord) is warned; tissue that
shrank unevenly as clearing shrinks it is not. Scales are moving / fixed sizes; transforms map fixed to moving points
(LPS mm)."""

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.rules.shape_change import SHAPE_CHANGE, shape_change_warning


def _box(spacing=2.0, size=40) -> sitk.Image:
    image = sitk.Image([size] * 3, sitk.sitkFloat32)
    image.SetSpacing([spacing] * 3)
    return image


def _scaled(*scales: float) -> Transform:
    turn = sitk.Euler3DTransform((0, 0, 0), 0.3, -0.2, 0.5)
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(turn.GetMatrix()).reshape(3, 3) @ np.diag(scales)
    matrix[:3, 3] = [4.0, -7.0, 2.0]
    return Transform.from_matrix(matrix)


def test_a_squashed_result_is_warned_with_its_scales():
    warning = shape_change_warning(_scaled(1.12, 0.39, 0.30), _box())
    assert warning is not None and warning.startswith(f"{SHAPE_CHANGE}: its scales (1.12, 0.39, 0.30) stretch one "
                                                      "axis 3.7 times")  # fmt: skip
    assert "--preset rigid" in warning


@pytest.mark.parametrize("scales", [(1.0, 1.0, 1.0), (0.65, 0.65, 0.65), (0.75, 0.75, 0.5), (0.7, 0.7, 0.55)])
def test_rigid_even_and_clearing_like_shrinks_are_not_warned(scales):
    assert shape_change_warning(_scaled(*scales), _box()) is None


def test_a_deformable_result_is_judged_by_its_affine_part():
    fixed = _box()
    field = sitk.Image([10, 10, 10], sitk.sitkVectorFloat64, 3)
    field.SetSpacing((8.0, 8.0, 8.0))
    field.SetOrigin((0.0, 0.0, 0.0))
    values = np.zeros((10, 10, 10, 3))
    values[4:6, 4:6, 4:6, 0] = 1.0  # a 1 mm bump: local, it leaves the affine part as it is
    bumped = sitk.GetImageFromArray(values, isVector=True)
    bumped.CopyInformation(field)
    squashed = Transform.chain([_scaled(0.91, 0.58, 0.42), Transform.from_displacement_field(bumped)])
    assert not squashed.is_linear
    warning = shape_change_warning(squashed, fixed)
    assert warning is not None and warning.startswith(f"{SHAPE_CHANGE}: its affine part's scales")
    kept = Transform.chain([_scaled(0.75, 0.75, 0.5), Transform.from_displacement_field(bumped)])
    assert shape_change_warning(kept, fixed) is None


@pytest.mark.parametrize("origin_z", [-1.5, -1.0])
def test_a_field_that_moves_nothing_on_a_thin_fixed_slab_is_not_called_a_squash(origin_z):
    """A 4 mm slab had one point of the 8 mm fitting grid across it: the fit's scale there was arbitrary (0.00 or
    0.20: 'stretched 5 times', a reviewer)."""
    slab = sitk.Image([100, 100, 4], sitk.sitkFloat32)
    slab.SetOrigin((0.0, 0.0, origin_z))
    field = sitk.Image([14, 14, 3], sitk.sitkVectorFloat64, 3)
    field.SetSpacing((8.0, 8.0, 8.0))
    field.SetOrigin((-4.0, -4.0, -8.0))
    nothing = Transform.from_displacement_field(field)
    assert not nothing.is_linear and shape_change_warning(nothing, slab) is None


def test_the_real_cord_pair_squashed_by_the_affine_preset_is_warned():
    """The SCT T1w (fixed) and T2 of one subject: elastix affine squashes the cord (0.90 : 0.60 : 0.33), 7 mm from
    the right rigid result; rigid is not warned."""
    from conftest import shared_data
    from MultimodalRegistrationLib.registration.register import register

    t1 = sitk.ReadImage(str(shared_data("sct", "t1w.nii.gz")), sitk.sitkFloat32)
    t2 = sitk.ReadImage(str(shared_data("sct", "t2.nii.gz")), sitk.sitkFloat32)
    squashed = register(t1, t2, engine="elastix", preset="affine")
    shape = [warning for warning in squashed.warnings if warning.startswith(SHAPE_CHANGE)]
    assert len(shape) == 1 and "2.7 times" in shape[0], squashed.warnings
    rigid = register(t1, t2, engine="elastix", preset="rigid")
    assert not any(warning.startswith(SHAPE_CHANGE) for warning in rigid.warnings)
