"""The Transform type: composition order, inverses, files, LPS/RAS."""

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.core.transforms import F, Transform, lps_ras_flip

POINTS = np.random.default_rng(1).uniform(-80, 80, size=(50, 3))


def affine(seed=0):
    rng = np.random.default_rng(seed)
    matrix = np.eye(4)
    matrix[:3, :3] += rng.normal(0, 0.1, (3, 3))
    matrix[:3, 3] = rng.normal(0, 20, 3)
    return Transform.from_matrix(matrix)


def smooth_field(size=24, spacing=8.0, amplitude=3.0):
    reference = sitk.Image([size] * 3, sitk.sitkVectorFloat64, 3)
    reference.SetSpacing([spacing] * 3)
    reference.SetOrigin([-(size - 1) * spacing / 2] * 3)
    z, y, x = np.meshgrid(*[np.linspace(-np.pi, np.pi, size)] * 3, indexing="ij")
    displacement = np.stack([np.sin(y), np.cos(z) * 0.5, np.sin(x) * np.cos(y)], axis=-1) * amplitude
    field = sitk.GetImageFromArray(displacement, isVector=True)
    field.CopyInformation(reference)
    return Transform.from_displacement_field(field)


def test_composition_applies_the_right_operand_first():
    a, b = affine(1), affine(2)
    expected = a.transform_points(b.transform_points(POINTS))
    assert np.allclose((a @ b).transform_points(POINTS), expected)
    assert (a @ b).is_linear


def test_linear_inverse_is_exact():
    a = rigid_transform(40, (1, 2, 3), (10, -20, 30)) @ affine(3)
    assert np.allclose(a.inverse().transform_points(a.transform_points(POINTS)), POINTS, atol=1e-9)


def test_nonlinear_composite_keeps_order_and_inverts():
    field, a = smooth_field(), affine(4)
    composite = a @ field
    assert composite.kind == "composite" and not composite.is_linear
    expected = a.transform_points(field.transform_points(POINTS / 2))
    assert np.allclose(composite.transform_points(POINTS / 2), expected)
    round_trip = composite.inverse().transform_points(composite.transform_points(POINTS / 2))
    assert np.abs(round_trip - POINTS / 2).max() < 0.05


def test_inverses_compose_and_stay_each_others_inverse():
    """Two transforms whose inverses are known compose with their inverses linked (audit: composing two inverted
    transforms recursed without end, each inverse composing the other's again)."""
    field, a = smooth_field(), affine(5)
    inverted = a.inverse() @ field.inverse()
    assert inverted.inverse().inverse() is inverted
    points = POINTS / 2
    assert np.abs(inverted.inverse().transform_points(inverted.transform_points(points)) - points).max() < 0.05
    assert np.allclose(inverted.inverse().transform_points(points), (field @ a).transform_points(points))


@pytest.mark.parametrize("suffix", [".h5", ".tfm", ".txt", ".mat"])
def test_linear_files_round_trip(tmp_path, suffix):
    a = affine(5)
    a.write(tmp_path / f"t{suffix}")
    assert np.allclose(Transform.read(tmp_path / f"t{suffix}").matrix, a.matrix, atol=1e-6)


def test_nonlinear_needs_h5(tmp_path):
    composite = affine(6) @ smooth_field()
    with pytest.raises(InputError, match="use .h5"):
        composite.write(tmp_path / "t.tfm")
    composite.write(tmp_path / "t.h5")
    back = Transform.read(tmp_path / "t.h5")
    assert np.allclose(back.transform_points(POINTS / 2), composite.transform_points(POINTS / 2), atol=1e-6)


def test_ants_mat_is_read(tmp_path):
    # ANTs writes float affine .mat files; ITK's MATLAB reader turns them into doubles.
    ants_like = sitk.AffineTransform(3)
    ants_like.SetMatrix((1.0, 0.1, 0, 0, 1, 0, 0, 0, 1))
    ants_like.SetTranslation((1, 2, 3))
    ants_like.SetCenter((5, 5, 5))
    sitk.WriteTransform(ants_like, str(tmp_path / "0GenericAffine.mat"))
    read = Transform.read(tmp_path / "0GenericAffine.mat")
    assert np.allclose(read.transform_points(POINTS), [ants_like.TransformPoint(p) for p in POINTS], atol=1e-4)


def test_lps_ras_flip_is_f_t_f_and_its_own_inverse():
    m = affine(7).matrix
    assert np.allclose(lps_ras_flip(m), F @ m @ F)
    assert np.allclose(lps_ras_flip(lps_ras_flip(m)), m)
    ras = Transform.from_matrix_ras(lps_ras_flip(m))
    assert np.allclose(ras.matrix, m)


def test_displacement_field_image_is_read_as_a_transform(tmp_path):
    field = smooth_field()
    sitk.WriteImage(field.displacement_field(), str(tmp_path / "1Warp.nii.gz"))
    read = Transform.read(tmp_path / "1Warp.nii.gz")
    assert np.allclose(read.transform_points(POINTS / 2), field.transform_points(POINTS / 2), atol=1e-4)
