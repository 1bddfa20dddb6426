"""The transform-direction contract, in real MRML: hardening the result node on the moving volume
gives the same voxels as sitk.Resample(moving, fixed, T), and the inverse restores."""

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")

from MultimodalRegistrationLib.core.metric import shrink_to_spacing
from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.nodes import mrml


def hardened_on_grid(scene, image, transform_node, grid):
    """Put ``image`` under ``transform_node`` in a scene, harden it, and sample it on ``grid``."""
    node = mrml.volume_node_from_image(scene, image, "volume")
    node.SetAndObserveTransformNodeID(transform_node.GetID())
    node.HardenTransform()
    assert node.GetParentTransformNode() is None
    hardened = mrml.image_from_volume_node(node)
    return sitk.GetArrayFromImage(sitk.Resample(hardened, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))


def interior(reference, margin=3):
    """Voxels away from the edges, where both resamplings see the whole interpolation kernel."""
    mask = np.zeros(reference.shape, bool)
    mask[margin:-margin, margin:-margin, margin:-margin] = True
    return mask & (reference > 0)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["elastix", "ants"])
def test_hardening_the_result_matches_simpleitk_and_the_inverse_restores(scene, small_pair, rigid_results, engine):
    result = rigid_results[engine]
    fixed, moving = small_pair.fixed, small_pair.moving
    node = mrml.transform_to_node(scene, result.transform)
    assert node.IsLinear()

    expected = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, result.transform.sitk, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    ours = hardened_on_grid(scene, moving, node, fixed)
    keep = interior(expected)
    assert keep.sum() > 10000
    assert np.abs(ours[keep] - expected[keep]).max() < 1e-2 * expected.max()

    node.Inverse()  # now maps moving-space points to fixed space: the fixed volume goes under it
    back = hardened_on_grid(scene, fixed, node, moving)
    expected_back = sitk.GetArrayFromImage(
        sitk.Resample(fixed, moving, result.transform.inverse().sitk, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    )
    keep = interior(np.abs(expected_back) + 1)
    assert np.abs(back[keep] - expected_back[keep]).max() < 1e-2 * np.abs(expected_back).max()


def test_nonlinear_result_node_resamples_like_simpleitk(scene, small_pair):
    from test_transforms import smooth_field

    fixed = shrink_to_spacing(small_pair.fixed, 4)
    moving = shrink_to_spacing(small_pair.moving, 4)
    transform = small_pair.truth @ rigid_transform(0, (0, 0, 1), (0, 0, 0)) @ smooth_field(size=40, spacing=8.0)
    node = mrml.transform_to_node(scene, transform)
    assert not node.IsLinear()
    volume = mrml.volume_node_from_image(scene, moving, "moving")
    volume.SetAndObserveTransformNodeID(node.GetID())
    fixed_node = mrml.volume_node_from_image(scene, fixed, "fixed")
    import slicer

    logic = slicer.vtkSlicerVolumesLogic()
    logic.SetMRMLScene(scene)
    resampled = logic.ResampleVolumeToReferenceVolume(volume, fixed_node)
    ours = sitk.GetArrayFromImage(sitk.Cast(mrml.image_from_volume_node(resampled), sitk.sitkFloat32))
    expected = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform.sitk, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    keep = interior(expected, margin=4)
    assert keep.sum() > 1000
    # Slicer and ITK interpolate the field slightly differently; the images agree to a few percent.
    assert np.median(np.abs(ours[keep] - expected[keep])) < 0.02 * expected.max()
