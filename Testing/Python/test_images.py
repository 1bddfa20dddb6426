"""Input validation: each bad input gets one InputError whose message names the fix."""

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import (
    corner_points,
    physical_center,
    read_image,
    validate_image,
    validate_mask,
    write_image,
)
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.register import register


def volume(size=(20, 20, 20), spacing=(1.0, 1.0, 1.0), value=None):
    array = np.random.default_rng(0).normal(100, 20, size[::-1]).astype(np.float32)
    if value is not None:
        array[:] = value
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def test_valid_image_passes():
    validate_image(volume(), "fixed image")


@pytest.mark.parametrize(
    "image, words",
    [
        (sitk.Image(30, 30, sitk.sitkFloat32) + 1, "2D: this registration needs a 3D volume; register two 2D images with mmreg register2d"),
        (sitk.Image([8, 8, 8, 3], sitk.sitkFloat32), "4D"),
        (sitk.Image([8, 8, 8], sitk.sitkVectorFloat32, 3), "components per voxel"),
        (volume(value=5.0), "constant"),
    ],
)
def test_bad_images_name_the_problem(image, words):
    with pytest.raises(InputError, match=words):
        validate_image(image, "moving image")


def test_nan_spacing_is_refused():
    image = volume()
    image.SetSpacing((1.0, float("nan"), 1.0))
    with pytest.raises(InputError, match="set the true voxel spacing"):
        validate_image(image)


def test_microscopy_stack_at_1mm_is_refused_with_the_fix():
    image = sitk.Image([2160, 4, 4], sitk.sitkUInt8)
    image[0, 0, 0] = 1
    with pytest.raises(InputError, match=r"spacing 1 mm gives a 2.16 m wide image.*set the true spacing"):
        validate_image(image, "moving image")


def test_empty_mask_is_refused():
    with pytest.raises(InputError, match="mask is empty"):
        validate_mask(sitk.Image([20, 20, 20], sitk.sitkUInt8), volume(), "fixed mask")


def test_mask_on_another_grid_is_resampled_onto_the_image():
    image = volume()
    mask = sitk.Image([10, 10, 10], sitk.sitkUInt8)
    mask.SetSpacing((2.0, 2.0, 2.0))
    mask[2:8, 2:8, 2:8] = 1
    result = validate_mask(mask, image)
    assert result.GetSize() == image.GetSize()
    assert sitk.GetArrayViewFromImage(result).sum() == pytest.approx(12**3, rel=0.2)


def test_images_that_do_not_overlap_are_refused_before_any_engine_runs():
    fixed, moving = volume(), volume()
    moving.SetOrigin((500.0, 0.0, 0.0))
    with pytest.raises(InputError, match=r"images do not overlap: prealign with landmarks \(FiducialPrealign or mmreg "
                       r"prealign\) or use --init any-pose"):  # fmt: skip
        register(fixed, moving, init="none")
    # Images that overlap as they are, placed apart by the initial transform: the transform is named (session 61)
    far_away = Transform.from_matrix(np.array([[1, 0, 0, 500.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    with pytest.raises(InputError, match=r"the initial transform given places the images apart \(only 0% .* 100% "
                       r"without it\)"):  # fmt: skip
        register(fixed, volume(), initial_transform=far_away, init="none")


def test_oblique_corners_and_centre_are_physical(tmp_path):
    image = volume(size=(10, 20, 30), spacing=(0.5, 1.0, 2.0))
    angle = np.deg2rad(30)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    image.SetDirection(direction.ravel())
    image.SetOrigin((10.0, -5.0, 3.0))
    corners = corner_points(image)
    far = image.TransformIndexToPhysicalPoint((9, 19, 29))
    assert np.allclose(corners[-1], far)
    assert np.allclose(physical_center(image), (corners[0] + corners[-1]) / 2)
    write_image(image, tmp_path / "oblique.nii.gz")
    back = read_image(tmp_path / "oblique.nii.gz")
    assert np.allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)
    assert not list(tmp_path.glob(".partial-*"))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.nrrd", "fixed image")
