"""Two single-slice volume nodes (as Slicer loads a PNG or one slice) registered as 2D images through the
registration panel's one call, on real slicer-core scenes. The data: two_d_data.py (exact truth)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import two_d_data as data

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")

from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.nodes import mrml
from MultimodalRegistrationLib.nodes.registration import (
    ATTRIBUTE_PREFIX,
    register_nodes,
    registration_parameters,
)

FIXED_MM, MOVING_MM = 1.0, 0.5
FIXED_ORIGIN_LPS, MOVING_ORIGIN_LPS = (12.0, -30.0, 7.0), (-5.0, 8.0, -40.0)


def _slice_node(scene, image: sitk.Image, pixel_mm: float, origin_lps, name: str):
    volume = sitk.JoinSeries(image)  # one slice thick, as Slicer loads a 2D file
    volume.SetSpacing((pixel_mm, pixel_mm, 1.0))
    volume.SetOrigin(origin_lps)
    return mrml.volume_node_from_image(scene, volume, name)


@pytest.fixture
def slides(scene, tmp_path):
    points = data.mr_slice(tmp_path / "mr.nrrd", FIXED_MM)
    truth = data.truth_of("rigid")
    data.he_section(tmp_path / "he.png", truth, MOVING_MM)
    fixed = _slice_node(scene, sitk.ReadImage(str(tmp_path / "mr.nrrd")), FIXED_MM, FIXED_ORIGIN_LPS, "MR slice")
    moving = _slice_node(scene, sitk.ReadImage(str(tmp_path / "he.png")), MOVING_MM, MOVING_ORIGIN_LPS, "H&E")
    return fixed, moving, points, truth


def _ras(node, points_mm: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Points of a slice's pixel frame (mm, pixel (i, j) at (i px, j px)) in RAS, through the node's geometry."""
    ijk = np.concatenate([points_mm / pixel_mm, np.zeros((len(points_mm), 1)), np.ones((len(points_mm), 1))], 1)
    return (ijk @ mrml.ijk_to_ras(node).T)[:, :3]


def test_two_slices_register_in_2d_and_the_node_maps_fixed_to_moving_ras(scene, slides):
    fixed, moving, points, truth = slides
    assert moving.IsA("vtkMRMLVectorVolumeNode")  # the RGB section, as Slicer loads a colour PNG
    output_volume = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "H&E registered")  # to keep the colours
    parameters = registration_parameters(fixedVolume=fixed, movingVolume=moving, preset="rigid",
                                         outputVolume=output_volume)  # fmt: skip
    registration = register_nodes(parameters)
    node = registration.output_transform_node
    assert node.IsLinear() and node.GetAttribute(ATTRIBUTE_PREFIX + "dimension") == "2"
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "engine") == "elastix"
    # What the panel's status line shows, and the command it copies.
    assert registration.describe().startswith("2D elastix rigid: rotation 35.0 deg, scales 1.000, 1.000")
    assert registration.command.startswith("mmreg register2d --fixed 'MR slice.nrrd' --moving 'H&E.nrrd' ")
    assert "--preset rigid" in registration.command and "--output-volume 'H&E registered.nrrd'" in registration.command
    # TransformFromParent (RAS) takes the fixed slice's points to the same tissue on the moving slice.
    matrix = mrml.transform_from_node(node).matrix_ras
    fixed_ras = _ras(fixed, points, FIXED_MM)
    expected = _ras(moving, points @ truth[:2, :2].T + truth[:2, 2], MOVING_MM)
    mapped = (np.concatenate([fixed_ras, np.ones((len(points), 1))], 1) @ matrix.T)[:, :3]
    error = np.linalg.norm(mapped - expected, axis=1)
    print(f"2D through the nodes: mean {error.mean():.3f} mm, max {error.max():.3f} mm")
    assert error.mean() < 0.5 * FIXED_MM and error.max() < FIXED_MM, error
    # The moving image resampled onto the fixed slice: one slice, in the fixed slice's place.
    assert output_volume.GetImageData().GetDimensions() == fixed.GetImageData().GetDimensions()
    # in colour, as a volume's registered colours are (it had come back grey without a word: a helper's sweep)
    assert output_volume.GetImageData().GetNumberOfScalarComponents() == 3
    assert np.allclose(mrml.ijk_to_ras(output_volume), mrml.ijk_to_ras(fixed))
    # The seconds and warnings are recorded as a 3D result's are (they were missing: a helper's sweep).
    assert json.loads(node.GetAttribute(ATTRIBUTE_PREFIX + "warnings")) == registration.summary.warnings == []
    assert float(node.GetAttribute(ATTRIBUTE_PREFIX + "seconds")) > 0
    assert float(node.GetAttribute(ATTRIBUTE_PREFIX + "rotationDeg")) == pytest.approx(35.0, abs=0.5)
    # The moving slice's node turned 10 degrees more about its normal: the node's turn, not the pixel frames' (which
    # stay at 35; a helper's session had recorded -0.0007 for a node turned 10 degrees).
    turn = np.eye(4)
    turn[:2, :2] = [[np.cos(np.radians(10.0)), -np.sin(np.radians(10.0))],
                    [np.sin(np.radians(10.0)), np.cos(np.radians(10.0))]]  # fmt: skip
    mrml.set_ijk_to_ras(moving, turn @ mrml.ijk_to_ras(moving))
    # The panel's choices a 2D run does not read are said to be unused (a largest rotation of 30 degrees had been
    # ignored without a word, the search finding 45).
    turned = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, preset="rigid",
                                                    maxRotationDeg=30.0, metric="segments"))  # fmt: skip
    node = turned.output_transform_node
    assert float(node.GetAttribute(ATTRIBUTE_PREFIX + "rotationDeg")) == pytest.approx(45.0, abs=0.5)
    said = json.loads(node.GetAttribute(ATTRIBUTE_PREFIX + "warnings"))
    assert said[0].startswith("2D images (one slice thick): 'Search rotations up to' (maxRotationDeg), 'Metric' apply "
                              "to 3D volumes only"), said  # fmt: skip
    assert turned.describe().splitlines()[1] == f"Warning: {said[0]}"


def test_volume_only_inputs_are_refused_for_two_slices_before_any_engine_runs(scene, slides):
    fixed, moving, _, _ = slides
    landmarks = mrml.markups_from_points(scene, np.zeros((3, 3)), name="F")
    nodes_before = scene.GetNumberOfNodes()
    parameters = registration_parameters(fixedVolume=fixed, movingVolume=moving, fixedLandmarks=landmarks,
                                         movingLandmarks=landmarks)  # fmt: skip
    with pytest.raises(InputError, match=r"'Fixed landmarks' \(fixedLandmarks\), 'Moving landmarks' \(movingLandmarks\) "
                                         "apply to 3D volumes only"):
        register_nodes(parameters)
    assert scene.GetNumberOfNodes() == nodes_before


def test_a_slide_left_at_slicers_default_spacing_is_warned_about(scene, tmp_path):
    """A PNG loaded in Slicer keeps a 1 mm spacing unless the user sets it: a 0.2 mm slide then looks 5 times
    larger than the MR slice, and the rigid result lay 290 mm off with nothing said (audit). The panel's status
    now says why."""
    data.mr_slice(tmp_path / "mr.nrrd", FIXED_MM)
    data.he_section(tmp_path / "he.png", data.truth_of("rigid"), 0.2)
    fixed = _slice_node(scene, sitk.ReadImage(str(tmp_path / "mr.nrrd")), FIXED_MM, FIXED_ORIGIN_LPS, "MR slice")
    moving = _slice_node(scene, sitk.ReadImage(str(tmp_path / "he.png")), 1.0, MOVING_ORIGIN_LPS, "H&E")
    registration = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, preset="rigid"))
    lines = registration.describe().splitlines()
    assert lines[0].startswith("2D elastix rigid") and len(lines) in (2, 3)
    assert lines[1].startswith("Warning: the moving tissue matches best at 5.0") and "moving 1 mm (the volume's spacing)" in lines[1]
    assert "--moving-pixel-size" not in lines[1] and "Volume Information" in lines[1]
    assert all(line.startswith("Warning: the result is probably wrong") for line in lines[2:])


@pytest.mark.parametrize("plane", ["coronal", "sagittal"])
def test_a_coronal_or_sagittal_slice_shown_upright_registers_with_an_upright_photo(scene, tmp_path, plane):
    """One slice cut from a volume (thin along J: coronal, 241 x 1 x 277 in the audit; or along I: sagittal) went to
    the 3D job. It registers in 2D now, compared as Slicer's view of its plane shows it (superior up; right: patient
    left in coronal, posterior in sagittal): built with its rows along +S, as a volume file stores them, it was
    registered upside down against an upright photo, about 60 mm off (review)."""
    points = data.mr_slice(tmp_path / "mr.nrrd", FIXED_MM)  # the MR slice as a picture: row 0 at the top
    truth = data.truth_of("rigid")
    data.he_section(tmp_path / "he.png", truth, MOVING_MM)
    pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "mr.nrrd")))  # (rows, columns)
    rows, columns = pixels.shape
    upright = pixels[::-1]  # K (superior) grows upward on screen: the picture's top row is the last K
    if plane == "coronal":  # I: patient left = screen right
        voxels, spacing = upright[:, np.newaxis, :], (FIXED_MM, 2.0, FIXED_MM)
    else:  # J: posterior = screen right
        voxels, spacing = upright[:, :, np.newaxis], (2.0, FIXED_MM, FIXED_MM)
    volume = sitk.GetImageFromArray(np.ascontiguousarray(voxels))
    volume.SetSpacing(spacing)
    volume.SetOrigin(FIXED_ORIGIN_LPS)
    fixed = mrml.volume_node_from_image(scene, volume, f"MR {plane} slice")
    moving = _slice_node(scene, sitk.ReadImage(str(tmp_path / "he.png")), MOVING_MM, MOVING_ORIGIN_LPS, "H&E")
    output_volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "H&E on the slice")
    registration = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, preset="rigid",
                                                          outputVolume=output_volume))  # fmt: skip
    node = registration.output_transform_node
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "dimension") == "2"
    assert registration.command == ""  # mmreg register2d reads such a file as it is stored, not as the view shows it
    matrix = mrml.transform_from_node(node).matrix_ras
    column, row = points[:, 0] / FIXED_MM, rows - 1 - points[:, 1] / FIXED_MM
    zero, one = np.zeros(len(points)), np.ones(len(points))
    ijk = np.stack([column, zero, row, one] if plane == "coronal" else [zero, column, row, one], 1)
    fixed_ras = ijk @ mrml.ijk_to_ras(fixed).T
    expected = _ras(moving, points @ truth[:2, :2].T + truth[:2, 2], MOVING_MM)
    error = np.linalg.norm((fixed_ras @ matrix.T)[:, :3] - expected, axis=1)
    assert error.mean() < 0.5 * FIXED_MM and error.max() < FIXED_MM, error
    assert output_volume.GetImageData().GetDimensions() == fixed.GetImageData().GetDimensions()
    assert np.allclose(mrml.ijk_to_ras(output_volume), mrml.ijk_to_ras(fixed))
    # The output volume is the photo on the slice, laid out as the slice is: as the truth resamples it.
    photo = sitk.ReadImage(str(tmp_path / "he.png"))
    photo = sitk.VectorIndexSelectionCast(photo, 1, sitk.sitkFloat32) if photo.GetNumberOfComponentsPerPixel() > 1 else photo
    photo.SetSpacing((MOVING_MM, MOVING_MM))
    grid = sitk.Image(columns, rows, sitk.sitkFloat32)
    grid.SetSpacing((FIXED_MM, FIXED_MM))
    truth_2d = sitk.AffineTransform(truth[:2, :2].ravel().tolist(), truth[:2, 2].tolist())
    expected = sitk.GetArrayFromImage(sitk.Resample(photo, grid, truth_2d, sitk.sitkLinear, 0.0))[::-1]
    expected = expected[:, np.newaxis, :] if plane == "coronal" else expected[:, :, np.newaxis]
    warped = sitk.GetArrayFromImage(mrml.image_from_volume_node(output_volume)).astype(float)
    warped = warped.mean(axis=-1) if warped.ndim == 4 else warped
    match = np.corrcoef(warped.ravel(), expected.ravel())[0, 1]  # measured 0.978
    upside_down = np.corrcoef(warped.ravel(), expected[::-1].ravel())[0, 1]  # 0.585
    assert match > 0.9 and upside_down < match - 0.2, (match, upside_down)


@pytest.mark.parametrize("fixed_thickness", [3.0, 0.5])
def test_the_2d_result_node_is_rigid_in_3d_whatever_the_slices_thickness(scene, tmp_path, fixed_thickness):
    """The node's 3D matrix had carried the slice index across, not mm: a 1 mm slide against a 3 mm MR slab scaled
    the normal 1/3 (a point 10 mm off the fixed slice landed 3.3 mm off the moving one), where T_3d.tfm from the same
    run is rigid (a helper's sweep). Pure geometry: the 2D truth through ras_matrix, no engine."""
    from MultimodalRegistrationLib.nodes.registration_2d import ras_matrix

    data.mr_slice(tmp_path / "mr.nrrd", FIXED_MM)
    truth = data.truth_of("rigid")
    data.he_section(tmp_path / "he.png", truth, MOVING_MM)
    nodes = []
    for path, pixel_mm, thickness, origin, name in ((tmp_path / "mr.nrrd", FIXED_MM, fixed_thickness,
                                                     FIXED_ORIGIN_LPS, "MR"), (tmp_path / "he.png", MOVING_MM, 1.0,
                                                                               MOVING_ORIGIN_LPS, "H&E")):  # fmt: skip
        volume = sitk.JoinSeries(sitk.ReadImage(str(path)))
        volume.SetSpacing((pixel_mm, pixel_mm, thickness))
        volume.SetOrigin(origin)
        nodes.append(mrml.volume_node_from_image(scene, volume, name))
    matrix = ras_matrix(truth, *nodes, FIXED_MM, MOVING_MM)
    assert np.allclose(np.linalg.svd(matrix[:3, :3], compute_uv=False), 1.0, atol=1e-9)
    assert np.linalg.det(matrix[:3, :3]) == pytest.approx(1.0)
    on_slice = np.array([*_ras(nodes[0], np.array([[98.0, 116.0]]), FIXED_MM)[0], 1.0])
    above = on_slice + np.array([0.0, 0.0, 10.0, 0.0])  # 10 mm superior of the axial fixed slice
    assert np.linalg.norm((matrix @ above - matrix @ on_slice)[:3]) == pytest.approx(10.0)


def test_a_slide_under_the_result_it_is_registered_into_again_is_not_refused(scene, slides):
    """The panel puts the moving slide under its 2D result; a second Register into that result was refused ("under a
    transform: harden it"), where the 3D path replaces its own result. A transform of the user's is still refused."""
    from MultimodalRegistrationLib.nodes.registration_2d import check_2d_panel

    fixed, moving, _, _ = slides
    result = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "T")
    moving.SetAndObserveTransformNodeID(result.GetID())
    check_2d_panel(registration_parameters(fixedVolume=fixed, movingVolume=moving, outputTransform=result))
    with pytest.raises(InputError, match="is under a transform"):
        check_2d_panel(registration_parameters(fixedVolume=fixed, movingVolume=moving))


def test_a_slice_of_zero_thickness_is_refused_before_the_run(scene, slides):
    """A one-slice volume node with spacing (1, 1, 0) ran the whole registration, then failed placing the result
    ("Singular matrix", a traceback; a helper's sweep). Refused first, naming the spacing, the scene as it was."""
    fixed, moving, _, _ = slides
    fixed.SetSpacing(1.0, 1.0, 0.0)
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="has spacing 1 x 1 x 0 mm: each must be a positive size"):
        register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving))
    assert scene.GetNumberOfNodes() == nodes_before


def test_a_2d_run_into_a_former_3d_result_takes_away_its_inverse_and_segment_nodes(scene, slides):
    """A 2D result into a node that held a 3D nonlinear piecewise one had kept that run's inverse node, referenced as
    the new result's inverse, and its segment nodes (a linear result inverts by itself)."""
    fixed, moving, _, _ = slides
    result = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "former result")
    inverse = scene.AddNewNodeByClass("vtkMRMLTransformNode", "former result inverse")
    result.SetNodeReferenceID(ATTRIBUTE_PREFIX + "inverse", inverse.GetID())
    segment = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "femur (former result)")
    segment.SetAttribute(ATTRIBUTE_PREFIX + "fieldNodeID", result.GetID())
    result.SetAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian", "0.4")
    stale = [inverse.GetID(), segment.GetID()]
    registration = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, preset="rigid",
                                                          outputTransform=result))  # fmt: skip
    assert registration.output_transform_node is result and result.GetAttribute(ATTRIBUTE_PREFIX + "dimension") == "2"
    assert result.GetNodeReference(ATTRIBUTE_PREFIX + "inverse") is None
    assert result.GetAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian") is None
    assert [scene.GetNodeByID(node_id) for node_id in stale] == [None, None]
