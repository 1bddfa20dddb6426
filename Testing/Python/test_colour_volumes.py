"""An RGB volume (what `mmreg stack` writes from stained sections) is registered and measured on its BT.601
luminance, as a 2D slide is. It was refused ("pick one component"), though docs/microscopy.md tells users to
register the stacked volume (a helper's sweep); the output volume keeps the colours."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import colour_as_grey, sample_grid_points
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.qa.assess import assess_registration
from MultimodalRegistrationLib.registration.register import register


def _rgb(image: sitk.Image) -> sitk.Image:
    """``image`` as 8-bit RGB whose luminance follows it (red and green rise with it, blue falls)."""
    values = sitk.GetArrayFromImage(image).astype(float)
    grey = (255 * (values - values.min()) / (values.max() - values.min())).astype(np.uint8)
    colour = sitk.GetImageFromArray(np.stack([grey, (0.8 * grey).astype(np.uint8), 255 - grey], axis=-1), isVector=True)
    colour.CopyInformation(image)
    return colour


def test_an_rgb_moving_volume_is_registered_and_measured_on_its_luminance(small_pair):
    moving = _rgb(small_pair.moving)
    grey, note = colour_as_grey(moving, "moving image")
    assert grey.GetNumberOfComponentsPerPixel() == 1 and "luminance" in note
    assert colour_as_grey(small_pair.moving)[1] is None  # a scalar image as it is
    # Three 16-bit channels are likelier fluorescence than a photograph: still refused, naming the channel to pick.
    channels = sitk.Image([8, 8, 8], sitk.sitkVectorUInt16, 3)
    assert colour_as_grey(channels)[1] is None
    result = register(small_pair.fixed, moving, engine="elastix", preset="rigid")
    assert "the moving image is RGB: its luminance (0.299 R + 0.587 G + 0.114 B) is used" in result.warnings
    error = mean_error_mm(result.transform, small_pair.truth, sample_grid_points(small_pair.fixed, 6))
    assert error < 0.5, error
    report = assess_registration(small_pair.fixed, moving, result.transform)
    assert report.images_after.mutual_information > report.images_before.mutual_information + 0.2
    assert moving.GetNumberOfComponentsPerPixel() == 3  # the input untouched


def test_an_rgb_volume_node_registers_in_slicer(scene, small_pair):
    """The vector volume node `mmreg stack` makes in Slicer, as the moving volume: it was refused ("pick one
    component first")."""
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters

    fixed = mrml.volume_node_from_image(scene, small_pair.fixed, "CT")
    moving = mrml.volume_node_from_image(scene, _rgb(small_pair.moving), "stack")
    assert moving.IsA("vtkMRMLVectorVolumeNode")
    output = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "stack registered")
    registration = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, outputVolume=output))
    transform = mrml.transform_from_node(registration.output_transform_node)
    error = mean_error_mm(transform, small_pair.truth, sample_grid_points(small_pair.fixed, 6))
    assert error < 0.5, error
    resampled = mrml.image_from_volume_node(output)
    assert resampled.GetNumberOfComponentsPerPixel() == 3 and resampled.GetSize() == small_pair.fixed.GetSize()
    assert "luminance" in registration.describe()
    # Into a scalar volume node (the panel's "Create new Volume"): the luminance, said; 3 components had filled it.
    scalar = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "stack registered, grey")
    again = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, outputVolume=scalar))
    grey = mrml.image_from_volume_node(scalar)
    assert grey.GetNumberOfComponentsPerPixel() == 1 and grey.GetSize() == small_pair.fixed.GetSize()
    expected = sitk.GetArrayFromImage(colour_as_grey(resampled)[0])
    assert np.abs(sitk.GetArrayFromImage(grey) - expected).max() < 1e-3
    assert "is a scalar volume: it holds the registered moving volume's luminance" in again.describe()
    assert "luminance" in again.output_transform_node.GetAttribute("MultimodalRegistration.warnings")


def test_prep_reads_an_rgb_volume_as_its_luminance(tmp_path, capsys, small_pair):
    """`mmreg prep` refused the RGB volume register and QA take ("pick one component first"); it now prepares
    its luminance, from memory and from a file, with the note register gives."""
    import json

    from MultimodalRegistrationLib.cli.main import main
    from MultimodalRegistrationLib.prep.options import PrepOptions
    from MultimodalRegistrationLib.prep.pipeline import prepare

    colour = _rgb(small_pair.moving)
    prepared = prepare(small_pair.fixed, colour, PrepOptions(mask_moving="auto"))
    assert "the moving image is RGB: its luminance (0.299 R + 0.587 G + 0.114 B) is used" in prepared.warnings
    grey = sitk.GetArrayFromImage(prepared.moving)
    expected = sitk.GetArrayFromImage(colour_as_grey(colour)[0])
    assert prepared.moving.GetNumberOfComponentsPerPixel() == 1 and prepared.moving_mask is not None
    assert grey.shape == expected.shape and np.abs(grey - expected).max() < 1e-3
    assert colour.GetNumberOfComponentsPerPixel() == 3  # the input untouched

    fixed_file, moving_file = tmp_path / "fixed.nrrd", tmp_path / "stack.nrrd"
    sitk.WriteImage(small_pair.fixed, str(fixed_file))
    sitk.WriteImage(colour, str(moving_file))
    code = main(["prep", "--fixed", str(fixed_file), "--moving", str(moving_file), "--output-dir",
                 str(tmp_path / "prep"), "--mask-moving", "auto"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    written = sitk.ReadImage(str(tmp_path / "prep" / "moving.nrrd"))
    assert written.GetNumberOfComponentsPerPixel() == 1
    assert np.abs(sitk.GetArrayFromImage(written) - expected).max() < 1e-3
    assert any("RGB" in w for w in json.loads((tmp_path / "prep" / "prep.json").read_text())["warnings"])


def test_prep_nodes_take_an_rgb_volume_node(scene, small_pair):
    """RegistrationPrep on the vector volume node `mmreg stack` makes: a grey prepared volume, the node kept."""
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.prep import prep_parameters, prepare_nodes
    from MultimodalRegistrationLib.prep.options import PrepOptions

    fixed = mrml.volume_node_from_image(scene, small_pair.fixed, "CT")
    moving = mrml.volume_node_from_image(scene, _rgb(small_pair.moving), "stack")
    before = sitk.GetArrayFromImage(mrml.image_from_volume_node(moving))
    prep = prepare_nodes(prep_parameters(fixedVolume=fixed, movingVolume=moving, prep=PrepOptions(mask_moving="auto")))
    prepared = mrml.image_from_volume_node(prep.moving_node)
    assert prepared.GetNumberOfComponentsPerPixel() == 1 and prepared.GetSize() == small_pair.moving.GetSize()
    expected = sitk.GetArrayFromImage(colour_as_grey(_rgb(small_pair.moving))[0])
    assert np.abs(sitk.GetArrayFromImage(prepared) - expected).max() < 1e-3
    assert np.array_equal(sitk.GetArrayFromImage(mrml.image_from_volume_node(moving)), before)
