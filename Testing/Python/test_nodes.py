"""Registering MRML volume nodes (the module's Logic) on real slicer-core scenes."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import bulge, near_truth

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")

from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.metric import shrink_to_spacing
from MultimodalRegistrationLib.core.phantom import mean_error_mm, rigid_transform
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.presets import presets_dir
from MultimodalRegistrationLib.nodes import mrml
from MultimodalRegistrationLib.nodes.registration import ATTRIBUTE_PREFIX, register_nodes, registration_parameters
from MultimodalRegistrationLib.process.worker import WorkerFailure


@pytest.fixture
def volumes(scene, small_pair):
    fixed = mrml.volume_node_from_image(scene, small_pair.fixed, "CT")
    moving = mrml.volume_node_from_image(scene, small_pair.moving, "MR")
    return fixed, moving


def head_mask(image):
    return sitk.Cast(sitk.BinaryDilate(sitk.OtsuThreshold(image, 0, 1), [2, 2, 2]), sitk.sitkUInt8)


@pytest.mark.slow
def test_unhardened_parent_transform_is_kept_and_combined(scene, small_pair, volumes, warm_elastix):
    fixed, moving = volumes
    # The user prealigned the MR by hand (unhardened): 10 degrees and 8 mm away from the truth.
    prealignment = small_pair.truth @ rigid_transform(10, (0, 1, 1), (8, 0, 0))
    parent = mrml.transform_to_node(scene, prealignment.inverse(), name="manual prealignment")
    # A transform node above a volume maps its local space to world: ToParent = inverse of FromParent.
    parent.Inverse()
    moving.SetAndObserveTransformNodeID(parent.GetID())
    assert mean_error_mm(mrml.world_transform(moving), small_pair.truth, small_pair.head_points) > 8
    mask = mrml.volume_node_from_image(scene, head_mask(small_pair.fixed), "head", labelmap=True)
    output_volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MR registered")
    before = (moving.GetImageData().GetMTime(), parent.GetMTime(), moving.GetParentTransformNode().GetID())

    # The output: a node that held a landmark fit and a guided result before (a helper's sweep: the fit's type,
    # residuals and point lists stayed on it under the new result).
    output = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "MR to CT")
    for stale in ("FiducialPrealign.freRmsMm", "FiducialPrealign.type", ATTRIBUTE_PREFIX + "guidanceSegments"):
        output.SetAttribute(stale, "old")

    parameters = registration_parameters(fixedVolume=fixed, movingVolume=moving, fixedMask=mask, outputVolume=output_volume,
                                         outputTransform=output)  # fmt: skip
    registration = register_nodes(parameters, warm=warm_elastix)

    node = registration.output_transform_node
    assert node is output and "old" not in [node.GetAttribute(name) for name in node.GetAttributeNames()]
    assert node.IsLinear() and node.IsA("vtkMRMLLinearTransformNode")
    error = mean_error_mm(mrml.transform_from_node(node), small_pair.truth, small_pair.head_points)
    assert error < 0.5, f"node-level result error {error:.3f} mm"
    assert (moving.GetImageData().GetMTime(), parent.GetMTime(), moving.GetParentTransformNode().GetID()) == before
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "engine") == "elastix"
    # The parent transform is a prealignment: auto starts from it instead of searching.
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "start") == "initial"
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "startDescription") == "started from the initial transform"
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "movingNodeID") == moving.GetID()
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "initialTransformNodeID") == parent.GetID()  # was "" (a sweep)
    assert (node.GetAttribute(ATTRIBUTE_PREFIX + "fixedMaskNodeID"), node.GetAttribute(ATTRIBUTE_PREFIX + "movingMaskNodeID")) == (
        mask.GetID(), "")  # fmt: skip
    assert registration.describe().startswith("registered in ") and "started from the initial transform" in registration.describe()
    # 'Copy as command' names the nodes' files, not the run's scratch copies (removed when it ends), as the scene
    # held them when the result came in: the docs' next step puts the moving volume under the result, which had
    # renamed the start 'MR to CT start.h5' (a helper's sweep).
    moving.SetAndObserveTransformNodeID(node.GetID())
    command = registration.command
    moving.SetAndObserveTransformNodeID(parent.GetID())
    assert command.startswith("mmreg register --fixed CT.nrrd --moving MR.nrrd ") and "/mmreg-nodes-" not in command
    for option in ("--fixed-mask head.nrrd", "--initial-transform 'manual prealignment.h5'",
                   "--output-transform 'MR to CT.h5'", "--output-volume 'MR registered.nrrd'"):  # fmt: skip
        assert option in command, (option, command)
    assert float(node.GetAttribute(ATTRIBUTE_PREFIX + "seconds")) > 0
    assert float(node.GetAttribute(ATTRIBUTE_PREFIX + "metricAfter")) > float(node.GetAttribute(ATTRIBUTE_PREFIX + "metricBefore"))
    resampled = mrml.image_from_volume_node(output_volume)
    assert resampled.GetSize() == small_pair.fixed.GetSize()
    assert np.allclose(resampled.GetOrigin(), small_pair.fixed.GetOrigin(), atol=1e-4)

    # Register again into the same node, as the panel leaves it (the moving volume under the result), with another
    # preset: the run starts where the result it replaces started (the prealignment), not from that result. An
    # affine result and then "rigid" had left a node saying rigid that held an affine (a helper's sweep).
    assert registration.show_moving_under_result() == [moving]
    parameters.preset = "affine"
    affine = register_nodes(parameters, warm=warm_elastix).output_transform_node
    assert affine is node and node.GetAttribute(ATTRIBUTE_PREFIX + "initialTransformNodeID") == parent.GetID()
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "start") == "initial"
    assert np.ptp(np.linalg.svd(mrml.transform_from_node(node).matrix[:3, :3])[1]) > 1e-4  # an affine
    parameters.preset = "rigid"
    register_nodes(parameters, warm=warm_elastix)
    singular = np.linalg.svd(mrml.transform_from_node(node).matrix[:3, :3])[1]
    assert np.abs(singular - 1).max() < 1e-6, singular  # rigid, as the node says
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "preset") == "rigid" and moving.GetParentTransformNode() is node
    assert mean_error_mm(mrml.transform_from_node(node), small_pair.truth, small_pair.head_points) < 0.5

    # Invert: FromParent becomes ToParent; the moving volume goes under the result to be shown aligned.
    from_parent = mrml.transform_from_node(node).matrix
    node.Inverse()
    assert np.allclose(mrml.transform_from_node(node).matrix, np.linalg.inv(from_parent), atol=1e-9)


def test_segmentation_mask_equals_its_labelmap(scene, small_pair, volumes):
    import slicer

    fixed, _ = volumes
    mask = head_mask(small_pair.fixed)
    labelmap = mrml.volume_node_from_image(scene, mask, "head", labelmap=True)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "head segmentation")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    count = scene.GetNumberOfNodes()
    from_segmentation = mrml.mask_image(segmentation, fixed)
    assert from_segmentation.GetSize() == mask.GetSize()
    assert np.array_equal(sitk.GetArrayFromImage(from_segmentation), sitk.GetArrayFromImage(mask))
    # The export's color table is named after the segmentation ("head segmentation_ColorTable"): it stayed behind,
    # one more on every run, failed runs too.
    assert scene.GetNumberOfNodes() == count


def test_a_moving_segmentation_mask_holds_moving_image_points_while_the_volume_is_under_its_start(
    scene, small_pair, volumes
):  # fmt: skip
    """A moving segmentation under no transform while the moving volume is under its prealignment holds moving-image
    coordinates, as QA and guidance read it: as a registration mask it was exported in world coordinates, onto the
    transformed volume (31.7 mm off in a helper's sweep, a 8 degree start). Now it is its labelmap, voxel for voxel."""
    import slicer
    from MultimodalRegistrationLib.nodes.qa_labels import mask_in_frame

    _, moving = volumes
    mask = head_mask(small_pair.moving)
    labelmap = mrml.volume_node_from_image(scene, mask, "moving head", labelmap=True)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "moving head segmentation")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    start = mrml.transform_to_node(scene, rigid_transform(8.0, (1, -1, 0.5), (6.0, 0, 0)), name="prealignment")
    moving.SetAndObserveTransformNodeID(start.GetID())
    exported = mask_in_frame(segmentation, moving, "moving")
    assert np.array_equal(sitk.GetArrayFromImage(exported), sitk.GetArrayFromImage(mask))
    assert np.array_equal(sitk.GetArrayFromImage(mask_in_frame(labelmap, moving, "moving")), sitk.GetArrayFromImage(mask))


def test_a_node_holding_a_composite_takes_a_linear_result(scene, small_pair):
    """A rigid run into a node whose nonlinear result had become a composite (the moving volume was under it):
    VTK refused the matrix, only logging an error, and the node kept the earlier result (2.6 mm off where the new
    one was 0.3), with the new run's attributes (a helper's sweep)."""
    rigid = rigid_transform(10, (0, 0, 1), (5, 0, 0))
    node = mrml.transform_to_node(scene, Transform.chain([bulge(6.0), rigid]), name="R")
    assert not node.IsLinear()
    mrml.transform_to_node(scene, rigid, node)
    assert node.IsLinear()
    points = small_pair.head_points
    held = mrml.transform_from_node(node).transform_points(points)
    assert np.abs(held - rigid.transform_points(points)).max() < 1e-6


def test_a_failed_run_leaves_the_scene_as_it_was(scene):
    flat = sitk.Image([20, 20, 20], sitk.sitkFloat32)
    fixed = mrml.volume_node_from_image(scene, flat, "flat")
    moving = mrml.volume_node_from_image(scene, flat + 1, "flat too")
    count = scene.GetNumberOfNodes()
    with pytest.raises(WorkerFailure, match="constant"):
        register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving))
    assert scene.GetNumberOfNodes() == count


@pytest.mark.slow
def test_cancel_leaves_the_scene_as_it_was(scene, small_pair):
    fixed = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.fixed, 3), "CT")
    moving = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.moving, 3), "MR")
    count = scene.GetNumberOfNodes()
    done = []
    registration = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, engine="ants"), on_done=done.append, blocking=False)
    deadline = time.monotonic() + 120
    while registration.poll() and "level" not in registration.stage and time.monotonic() < deadline:
        time.sleep(0.05)
    registration.cancel()
    assert done == [registration] and registration.error.kind == "cancelled"
    assert registration.output_transform_node is None
    assert scene.GetNumberOfNodes() == count


def test_nodes_are_checked_before_any_work(scene, volumes):
    fixed, moving = volumes
    from MultimodalRegistrationLib.core.errors import InputError

    with pytest.raises(InputError, match=f"the fixed volume and the moving volume are the same node, '{fixed.GetName()}': select two different volumes"):
        register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=fixed))
    shift = mrml.transform_to_node(scene, rigid_transform(0, (0, 0, 1), (5, 0, 0)))
    fixed.SetAndObserveTransformNodeID(shift.GetID())
    with pytest.raises(InputError, match="harden it first"):
        register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving))


def quick_ants_deformable(folder) -> str:
    """The shipped ANTs deformable preset made short, as a custom preset file: its linear stages without the
    2 mm level (the same as 4 mm on these 4 mm images) and few iterations (the run starts near the truth), SyN
    at 4 mm alone for 10 iterations. This test is about the nodes a nonlinear result makes; the full preset's
    accuracy is test_engines.py's test_affine_and_deformable_improve_the_metric[deformable-ants]."""
    recipe = json.loads((presets_dir() / "ants" / "deformable.json").read_text())
    assert [stage["transform"] for stage in recipe["stages"]] == ["Rigid", "Affine", "SyN"]
    for stage in recipe["stages"][:2]:
        stage.update(iterations=[20, 10], level_spacing_mm=[8, 4], smoothing_sigmas=[4, 2])
    recipe["stages"][2].update(iterations=[10], level_spacing_mm=[4], smoothing_sigmas=[2])
    path = folder / "quick_deformable.json"
    path.write_text(json.dumps(recipe))
    return str(path)


@pytest.mark.slow
def test_a_nonlinear_result_keeps_the_engines_inverse(scene, small_pair, tmp_path):
    fixed = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.fixed, 4), "CT")
    moving = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.moving, 4), "MR")
    # From 8 degrees and 6 mm off the truth, as is: this test is about the nodes, not the search for a start.
    start = mrml.transform_to_node(scene, near_truth(small_pair), name="start")
    parameters = registration_parameters(
        fixedVolume=fixed, movingVolume=moving, engine="ants", preset=quick_ants_deformable(tmp_path),
        initialTransform=start, init="none",
    )  # fmt: skip
    registration = register_nodes(parameters)
    forward = registration.output_transform_node
    inverse = registration.inverse_transform_node
    assert not forward.IsLinear() and inverse is not None
    assert forward.GetNodeReferenceID(ATTRIBUTE_PREFIX + "inverse") == inverse.GetID()
    points = small_pair.head_points[:40]
    round_trip = mrml.transform_from_node(inverse).transform_points(mrml.transform_from_node(forward).transform_points(points))
    assert np.abs(round_trip - points).max() < 0.5
    # Run again into the same output: its inverse node is refilled, not joined by a second one.
    parameters.outputTransform = forward
    again = register_nodes(parameters)
    assert again.output_transform_node is forward and again.inverse_transform_node is inverse
    assert len([n for n in scene.GetNodesByClass("vtkMRMLTransformNode") if n.GetName().endswith("inverse")]) == 1
    # QA trusts the reference only while it undoes the node: an inverse that no longer does is named, not used.
    from MultimodalRegistrationLib.nodes.qa import _stale_inverse
    from MultimodalRegistrationLib.nodes.result_extras import invert_result

    result, undo = mrml.transform_from_node(forward), mrml.transform_from_node(inverse)
    assert _stale_inverse(result, undo, small_pair.fixed, inverse.GetName()) is None
    stale = _stale_inverse(result, result, small_pair.fixed, inverse.GetName())
    assert stale is not None and "no longer undoes the result" in stale
    # The module's Invert turns both around (Slicer's own transforms, RAS): the reference still undoes the node.
    invert_result(forward)
    from MultimodalRegistrationLib.core.transforms import lps_ras_points

    ras = lps_ras_points(points)

    def through(node, at):
        mapping = node.GetTransformFromParent()
        return np.array([mapping.TransformPoint(*p) for p in at])

    assert np.abs(through(inverse, through(forward, ras)) - ras).max() < 0.5
    assert np.abs(through(forward, ras) - lps_ras_points(undo.transform_points(points))).max() < 0.05
    assert forward.GetName().endswith(" (-)") and inverse.GetName().endswith(" (-)")
    # A linear result into the same node: the inverse made for the field before is stale, and goes; the node faces
    # fixed -> moving again and loses Invert's " (-)" (it kept it, a helper's sweep).
    parameters.preset = "rigid"
    register_nodes(parameters)
    assert forward.GetNodeReference(ATTRIBUTE_PREFIX + "inverse") is None and inverse.GetScene() is None
    assert not forward.GetName().endswith(" (-)")


def test_the_panel_parameters_become_one_job_with_every_node_written(scene, small_pair, volumes, tmp_path):
    """The one path from a panel to a worker job: nodes written by kind, choices at the panel's unset values
    left to the job's defaults, a comma list read once, a custom preset file before the chosen preset."""
    from MultimodalRegistrationLib.core.images import read_image
    from MultimodalRegistrationLib.core.transforms import Transform
    from MultimodalRegistrationLib.nodes.panel import job_from_panel
    from MultimodalRegistrationLib.nodes.registration_inputs import WRITERS
    from MultimodalRegistrationLib.process.jobs import RegistrationJob

    fixed, moving = volumes
    mask = mrml.volume_node_from_image(scene, head_mask(small_pair.fixed), "head", labelmap=True)
    start = rigid_transform(12, (0, 0, 1), (4, -2, 1))
    initial = mrml.transform_to_node(scene, start, name="start")
    custom = tmp_path / "my_rigid.txt"
    custom.write_text((presets_dir() / "elastix" / "rigid.txt").read_text())
    parameters = registration_parameters(
        fixedVolume=fixed, movingVolume=moving, fixedMask=mask, initialTransform=initial, preset="affine",
        customPresetFile=str(custom), threads=0, guidanceWeight=0.0, segments=" skull, brain ", seed=7,
    )  # fmt: skip
    job = job_from_panel(RegistrationJob, parameters, tmp_path, WRITERS, output_transform=str(tmp_path / "T.h5"))
    assert job.preset == str(custom) and job.seed == 7 and job.threads is None and job.guidance_weight is None
    assert job.segments == ["skull", "brain"] and job.moving_mask is None and job.fixed_segmentation is None
    assert read_image(job.fixed).GetSize() == small_pair.fixed.GetSize()
    written_mask = sitk.GetArrayFromImage(read_image(job.fixed_mask))
    assert written_mask.sum() == sitk.GetArrayFromImage(head_mask(small_pair.fixed)).sum() > 0
    points = small_pair.head_points[:20]
    assert np.allclose(Transform.read(job.initial_transform).transform_points(points), start.transform_points(points),
                       atol=1e-6)  # fmt: skip
    # The panel's path widget binds a pathlib.Path, Path(".") until a file is chosen (a str field left the whole
    # panel unbound in Slicer: audit): "." is no file, the chosen preset is used; a chosen Path is the file.
    for given, preset in ((Path("."), "affine"), (custom, str(custom))):
        parameters.customPresetFile = given
        chosen = job_from_panel(RegistrationJob, parameters, tmp_path / "again", WRITERS,
                                output_transform=str(tmp_path / "T.h5"))  # fmt: skip
        assert chosen.preset == preset
    with pytest.raises(Exception, match="unknown parameters \\['fixedvolume'\\]"):
        registration_parameters(fixedvolume=fixed)


def test_a_nonlinear_node_inverted_in_place_reads_back(scene):
    """Slicer writes a nonlinear node inverted in place (Invert, the Transforms module) with float ITK classes that
    SimpleITK cannot read: it is read through what it inverts, and maps points as Slicer does."""
    from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points

    field = sitk.Image([12, 12, 12], sitk.sitkVectorFloat64, 3)
    field.SetSpacing((8.0, 8.0, 8.0))
    field.SetOrigin((-44.0, -44.0, -44.0))
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, 12)] * 3, indexing="ij")
    smooth = sitk.GetImageFromArray(np.stack([2.0 * np.cos(y), 1.5 * np.sin(x), 0 * z], -1), isVector=True)
    smooth.CopyInformation(field)
    forward = Transform(sitk.CompositeTransform([rigid_transform(10, (0, 0, 1), (3, 0, 0)).sitk,
                                                 sitk.DisplacementFieldTransform(smooth)]))  # fmt: skip
    node = mrml.transform_to_node(scene, forward, name="result")
    count = scene.GetNumberOfNodes()
    node.Inverse()
    read = mrml.transform_from_node(node)
    points = np.random.default_rng(3).uniform(-20, 20, (20, 3))  # LPS mm, well inside the field
    slicer_maps = lps_ras_points(np.array([node.GetTransformFromParent().TransformPoint(*p)
                                           for p in lps_ras_points(points)]))  # fmt: skip
    assert np.abs(read.transform_points(points) - slicer_maps).max() < 0.1
    assert scene.GetNumberOfNodes() == count  # the node read through is gone again


def test_a_run_into_a_node_removes_the_segment_nodes_an_earlier_piecewise_run_left_for_it(scene):
    """Audit: a second piecewise run into the same output node left the first run's segment nodes beside the new
    ones ('sacrum (MR to CT)' twice), and a later rigid run kept 'piecewiseMinimumJacobian'."""
    import slicer
    from MultimodalRegistrationLib.core.transforms import Transform
    from MultimodalRegistrationLib.nodes.registration import ATTRIBUTE_PREFIX
    from MultimodalRegistrationLib.nodes.result_extras import earlier_segment_nodes as _earlier_segment_nodes

    field = mrml.transform_to_node(scene, Transform.identity(), name="MR to CT")
    field.SetAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian", "0.87")
    other = mrml.transform_to_node(scene, Transform.identity(), name="other result")
    segments = []
    for name in ("sacrum", "left_hip"):
        segments.append(mrml.transform_to_node(scene, Transform.identity(), name=f"{name} (MR to CT)"))
        segments[-1].SetAttribute(ATTRIBUTE_PREFIX + "fieldNodeID", field.GetID())
    kept = mrml.transform_to_node(scene, Transform.identity(), name="sacrum (other result)")
    kept.SetAttribute(ATTRIBUTE_PREFIX + "fieldNodeID", other.GetID())
    folder = mrml.put_in_folder(scene, segments, "MR to CT segments")
    stale = _earlier_segment_nodes(scene, field)
    assert stale == segments
    mrml.remove_nodes_and_empty_folders(scene, stale)  # as a run does once the new result is in
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    assert not any(scene.IsNodePresent(node) for node in segments) and scene.IsNodePresent(kept)
    assert hierarchy.GetItemName(folder) == ""  # the empty folder is gone


def test_copy_as_command_names_a_loaded_volumes_own_file_until_it_is_changed(scene, small_pair, tmp_path):
    from MultimodalRegistrationLib.core.images import write_image
    from MultimodalRegistrationLib.nodes.command_paths import node_file, user_command

    write_image(small_pair.fixed, tmp_path / "ct scan.nrrd")
    loaded = mrml.read_volume_node(scene, tmp_path / "ct scan.nrrd", name="CT")
    made = mrml.volume_node_from_image(scene, small_pair.moving, "MR T1")
    scratch = tmp_path / "scratch"
    job = {"fixed": str(scratch / "fixed.nrrd"), "moving": str(scratch / "moving.nrrd"), "seed": 1,
           "output_transform": str(scratch / "result.h5")}  # fmt: skip
    recorded = f"mmreg register --fixed {job['fixed']} --moving {job['moving']} --output-transform {scratch}/result.h5"
    nodes = {"fixed": loaded, "moving": made, "output_transform": (made, " to CT")}
    command = user_command(recorded, scratch, job, nodes.get)
    assert command == (f"mmreg register --fixed '{tmp_path / 'ct scan.nrrd'}' --moving 'MR T1.nrrd' "
                       "--output-transform 'MR T1 to CT.h5'")  # fmt: skip
    loaded.SetSpacing(3.0, 3.0, 3.0)  # changed since read: the file no longer holds it
    assert node_file(loaded, ".nrrd") == "CT.nrrd"


def test_copy_as_command_names_the_nodes_when_the_scratch_folder_has_a_second_name(scene, small_pair, tmp_path):
    """Windows keeps %TEMP% as a short 8.3 name while the job's resolved paths hold the long one: no scratch path
    matched, and the copied command named deleted files (audit). A symbolic link plays the short name here."""
    from MultimodalRegistrationLib.nodes.command_paths import user_command

    made = mrml.volume_node_from_image(scene, small_pair.moving, "MR T1")
    scratch = tmp_path / "long scratch name"
    scratch.mkdir()
    (tmp_path / "SHORT~1").symlink_to(scratch)
    job = {"moving": str(scratch / "moving.nrrd")}
    command = user_command(f"mmreg register --moving '{job['moving']}'", tmp_path / "SHORT~1", job, {"moving": made}.get)
    assert command == "mmreg register --moving 'MR T1.nrrd'"


def test_a_run_into_the_output_node_the_moving_volume_is_under_does_not_start_from_it(scene, small_pair):
    """Register pressed again, the moving volume under the last result: that result is what the run replaces, not
    its start (it had been, and an affine result then "rigid" left a rigid-labelled affine; a helper's sweep). The
    run starts where the replaced result started; 'Copy as command' names that start's file, never the output's
    (mmreg register refuses an output that overwrites an input)."""
    from MultimodalRegistrationLib.nodes.command_paths import start_node
    from MultimodalRegistrationLib.nodes.registration_inputs import initial_transform_of

    moving = mrml.volume_node_from_image(scene, small_pair.moving, "MR")
    result = mrml.transform_to_node(scene, small_pair.truth, name="MR to CT")
    assert start_node(moving, None, None) is None
    moving.SetAndObserveTransformNodeID(result.GetID())
    assert start_node(moving, None, None) is result  # a prealignment of its own
    assert start_node(moving, None, result) is None and initial_transform_of(moving, None, result).is_identity()
    prealign = mrml.transform_to_node(scene, rigid_transform(10, (0, 1, 1), (8, 0, 0)), name="prealign")
    result.SetAttribute(ATTRIBUTE_PREFIX + "initialTransformNodeID", prealign.GetID())  # where the result started
    assert start_node(moving, None, result) is prealign
    assert np.allclose(initial_transform_of(moving, None, result).matrix, mrml.transform_from_node(prealign).matrix)
    manual = mrml.transform_to_node(scene, small_pair.truth, name="manual")
    assert start_node(moving, manual, result) is manual  # the panel's initial transform alone
    assert np.allclose(initial_transform_of(moving, manual, result).matrix, small_pair.truth.matrix)
    # The result was made with the moving volume under the prealignment and an initial transform chosen too: the
    # next run starts from both again (the reviewer's case had lost the prealignment, 20 mm).
    result.SetAttribute(ATTRIBUTE_PREFIX + "movingParentNodeID", prealign.GetID())
    both = mrml.transform_from_node(prealign) @ mrml.transform_from_node(manual)
    assert np.allclose(initial_transform_of(moving, manual, result).matrix, both.matrix)
    assert start_node(moving, manual, result) == (moving, " start")  # two composed: the moving's start file


def test_a_prealignment_the_moving_volume_is_under_and_chosen_as_initial_counts_once(scene, small_pair):
    """A helper's guided run: the MR under its landmark prealignment P, P also chosen as Initial transform. The
    start was P composed twice (12 mm off where P alone was 2.8 mm), silently."""
    from MultimodalRegistrationLib.nodes.command_paths import start_node
    from MultimodalRegistrationLib.nodes.registration_inputs import initial_transform_of

    moving = mrml.volume_node_from_image(scene, small_pair.moving, "MR")
    prealign = mrml.transform_to_node(scene, small_pair.truth, name="prealign")
    moving.SetAndObserveTransformNodeID(prealign.GetID())
    once = initial_transform_of(moving, None).matrix
    assert np.allclose(initial_transform_of(moving, prealign).matrix, once)
    assert not np.allclose(once @ once, once, atol=1.0)  # twice would be another pose
    assert start_node(moving, prealign, None) is prealign  # the command names P's own file, as with P alone


def test_selectors_changed_or_nodes_removed_during_a_run_do_not_reach_its_result(scene, small_pair, warm_elastix):
    """The panel's selectors stay live while a run goes on (GUI audit H2, M1): a moving volume picked mid-run got
    the old pair's result, named and recorded after it; an output volume chosen mid-run, or the fixed volume
    deleted, raised TypeError or AttributeError from the panel's timer, left it on 'Cancel' and a half-made
    transform node in the scene. The run keeps the nodes it started with; a removed input adds nothing."""
    fixed = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.fixed, 4), "CT")
    moving = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.moving, 4), "MR")
    other = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.moving, 4), "other MR")
    parameters = registration_parameters(fixedVolume=fixed, movingVolume=moving, init="geometry")
    registration = register_nodes(parameters, blocking=False, warm=warm_elastix)
    parameters.movingVolume = other  # the user picks the next pair ...
    parameters.outputVolume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "out")  # ... and an output
    late = mrml.transform_to_node(scene, rigid_transform(0, (0, 0, 1), (5, 0, 0)), name="placed mid-run")
    moving.SetAndObserveTransformNodeID(late.GetID())  # ... and moves the volume (the Data module stays live)
    registration.wait()
    moving.SetAndObserveTransformNodeID(None)
    node = registration.output_transform_node
    assert node.GetName() == "MR to CT" and node.GetAttribute(ATTRIBUTE_PREFIX + "movingNodeID") == moving.GetID()
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "movingParentNodeID") == ""  # as it began: it had named the late one
    assert registration.output_volume_node is None and parameters.outputVolume.GetImageData() is None
    error = mean_error_mm(mrml.transform_from_node(node), small_pair.truth, small_pair.head_points)
    assert error < 2.0, f"{error:.2f} mm"  # 4 mm voxels, started from the headers

    done, count = [], scene.GetNumberOfNodes()
    registration = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=other, init="geometry"),
                                  blocking=False, on_done=done.append)  # fmt: skip
    scene.RemoveNode(fixed)
    with pytest.raises(WorkerFailure, match="the fixed volume was removed from the scene during the registration"):
        registration.wait()
    assert registration.error.kind == "input" and done == [registration] and not registration.running
    assert scene.GetNumberOfNodes() == count - 1  # the removed volume only: no result node
    registration.cancel()  # the panel's button, pressed once more: nothing happens
    assert done == [registration] and registration.error.kind == "input"


def test_a_result_that_cannot_go_into_the_scene_ends_the_run_and_adds_nothing(scene, small_pair, monkeypatch):
    """Any error while a result is applied ends the run with an error the panel hears (on_done), and the nodes made
    before it go again (GUI audit M1: it escaped from the panel's timer and the panel stayed on 'Cancel')."""
    from MultimodalRegistrationLib.nodes import registration_result

    fixed = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.fixed, 4), "CT")
    moving = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.moving, 4), "MR")
    count, done = scene.GetNumberOfNodes(), []

    def broken(*args):
        raise ValueError("the disk went away")

    monkeypatch.setattr(registration_result, "earlier_segment_nodes", broken)  # after the result node is made
    registration = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, init="geometry"),
                                  blocking=False, on_done=done.append)  # fmt: skip
    with pytest.raises(WorkerFailure, match="could not be put into the scene .ValueError: the disk went away.; nothing"):
        registration.wait()
    assert registration.error.kind == "internal" and done == [registration] and not registration.running
    assert scene.GetNumberOfNodes() == count


@pytest.mark.parametrize("role", ["fixed", "moving"])
def test_an_output_volume_that_is_an_input_is_refused(scene, volumes, role):
    """The output volume box lists every volume: choosing the fixed CT replaced its voxels with the resampled MR,
    with no undo (GUI audit M2). Refused before any work, as the preparation's outputs are."""
    from MultimodalRegistrationLib.core.errors import InputError

    fixed, moving = volumes
    chosen = fixed if role == "fixed" else moving
    before = mrml.image_from_volume_node(chosen)
    with pytest.raises(InputError, match=f"the output volume is the {role} volume '{chosen.GetName()}'"):
        register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, outputVolume=chosen))
    after = mrml.image_from_volume_node(chosen)
    assert np.array_equal(sitk.GetArrayViewFromImage(after), sitk.GetArrayViewFromImage(before))


def _output_that_is_a_start(scene, fixed, moving, case: str) -> dict:
    """The panel's choices for ``case``: an output node that is the run's start, or one that would be shown moved."""
    prealign = mrml.transform_to_node(scene, rigid_transform(8, (0, 0, 1), (3, 0, 0)), name="landmark prealign")
    if case == "initial":
        return {"initialTransform": prealign, "outputTransform": prealign}
    if case == "parent":
        moving.SetAndObserveTransformNodeID(prealign.GetID())
        return {"outputTransform": prealign}
    if case == "volume under a transform":
        output = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "registered")
        output.SetAndObserveTransformNodeID(prealign.GetID())
        return {"outputVolume": output}
    raise ValueError(case)


OUTPUT_START_CASES = {  # a helper's scripted session: each overwrote a start, or was shown or read where it is not
    "initial": "the output transform 'landmark prealign' is also the initial transform: the run would overwrite",
    "parent": "the output transform 'landmark prealign' is the moving volume's own prealignment",
    "volume under a transform": "the output volume 'registered' is under the transform 'landmark prealign'",
}  # fmt: skip


@pytest.mark.parametrize("case", list(OUTPUT_START_CASES))
def test_an_output_that_is_the_runs_start_or_would_be_shown_moved_is_refused(scene, volumes, case):
    """The prealignment chosen as output had been overwritten by a run from the identity (79 mm off where the
    prealignment was 9 mm off); an output volume under a transform was filled and shown 50 mm from the fixed one."""
    from MultimodalRegistrationLib.core.errors import InputError

    fixed, moving = volumes
    choices = _output_that_is_a_start(scene, fixed, moving, case)
    prealign = scene.GetFirstNodeByName("landmark prealign")
    before, count = mrml.transform_from_node(prealign).matrix, scene.GetNumberOfNodes()
    with pytest.raises(InputError, match=OUTPUT_START_CASES[case]):
        register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, **choices))
    assert np.array_equal(mrml.transform_from_node(prealign).matrix, before) and scene.GetNumberOfNodes() == count


def test_a_fixed_segmentation_under_a_transform_is_refused(scene, volumes, make_segmentation):
    """Exported where it was shown, a fixed segmentation under a 21 mm shift guided the result as far off, its Dice
    1.0, without a word (a helper's scripted session); a fixed labelmap under a transform was refused already."""
    from MultimodalRegistrationLib.core.errors import InputError

    fixed, moving = volumes
    fixed_head, moving_head = (make_segmentation(sitk.Cast(mrml.image_from_volume_node(volume) > 100, sitk.sitkUInt8),
                                                 {1: "head"}, f"{name} head")
                               for volume, name in ((fixed, "CT"), (moving, "MR")))  # fmt: skip
    shift = mrml.transform_to_node(scene, rigid_transform(0, (0, 0, 1), (21, 0, 0)), name="shift")
    fixed_head.SetAndObserveTransformNodeID(shift.GetID())
    count = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="the fixed segmentation 'CT head' is under the transform 'shift' while"):
        register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, fixedSegmentation=fixed_head,
                                               movingSegmentation=moving_head))  # fmt: skip
    assert scene.GetNumberOfNodes() == count


@pytest.mark.parametrize("failing", ["reading", "filling"])
def test_a_rerun_that_fails_late_leaves_the_existing_output_nodes_as_they_were(scene, small_pair, monkeypatch,
                                                                             failing):  # fmt: skip
    """A second run into the same transform and output volume that failed reading its resampled volume said
    'nothing was added', yet its transform and attributes were already in the node, beside the first run's volume
    (review of the rollback). Every file is read before a node changes, and a failure while the nodes are filled
    (a helper's sweep: forced in the output volume's) puts back what they held."""
    from MultimodalRegistrationLib.nodes import registration_result

    fixed = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.fixed, 4), "CT")
    moving = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.moving, 4), "MR")
    result = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "result")
    resampled = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "resampled")
    outputs = {"outputTransform": result, "outputVolume": resampled}
    register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, init="geometry", **outputs))
    matrix, voxels = mrml.transform_from_node(result).matrix, mrml.image_from_volume_node(resampled)
    attributes = {key: result.GetAttribute(ATTRIBUTE_PREFIX + key) for key in ("preset", "init", "seconds")}
    count = scene.GetNumberOfNodes()

    def broken(*args, **kwargs):
        raise MemoryError("cannot allocate the resampled volume")

    fill = mrml.update_volume_node_from_image

    def fill_then_fail(node, image):
        fill(node, image)
        broken()

    if failing == "reading":
        monkeypatch.setattr(registration_result, "read_image", broken)
    else:  # once the output volume holds the new voxels
        monkeypatch.setattr(registration_result.mrml, "update_volume_node_from_image", fill_then_fail)
    names = sorted(result.GetAttributeNames())
    second = registration_parameters(fixedVolume=fixed, movingVolume=moving, init="moments", preset="affine", **outputs)
    with pytest.raises(WorkerFailure, match="MemoryError: cannot allocate"):
        register_nodes(second)
    assert np.array_equal(mrml.transform_from_node(result).matrix, matrix) and scene.GetNumberOfNodes() == count
    assert {key: result.GetAttribute(ATTRIBUTE_PREFIX + key) for key in attributes} == attributes
    assert attributes["preset"] == "rigid" and sorted(result.GetAttributeNames()) == names
    after = mrml.image_from_volume_node(resampled)
    assert np.array_equal(sitk.GetArrayViewFromImage(after), sitk.GetArrayViewFromImage(voxels))
    if failing == "filling":  # and a run that succeeds replaces the result, an earlier piecewise run's mark too
        monkeypatch.undo()
        result.SetAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian", "0.87")
        register_nodes(second)
        assert result.GetAttribute(ATTRIBUTE_PREFIX + "preset") == "affine" and scene.GetNumberOfNodes() == count
        assert result.GetAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian") is None


def test_what_a_node_held_is_kept_without_holding_on_to_it(scene):
    """A review: the copy each run keeps of an output node was never freed (31 MB a run for a 32 MB volume)."""
    import gc

    import vtk
    from MultimodalRegistrationLib.nodes.node_state import NodeState

    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "resampled")
    image = vtk.vtkImageData()
    image.SetDimensions(4, 4, 4)
    image.AllocateScalars(vtk.VTK_FLOAT, 1)
    volume.SetAndObserveImageData(image)
    count = image.GetReferenceCount()
    state = NodeState(volume)
    assert image.GetReferenceCount() > count
    del state
    gc.collect()
    assert image.GetReferenceCount() == count


def test_the_engine_a_console_run_installs_first_is_the_panels_choice_or_the_default():
    """MultimodalRegistrationLogic.register installs this engine before a console or script run (only the Register
    button had, and a script without the engine failed naming a source-tree requirements file)."""
    from MultimodalRegistrationLib.engines.registry import DEFAULT_ENGINE
    from MultimodalRegistrationLib.nodes.registration import engine_of

    assert engine_of(registration_parameters()) == DEFAULT_ENGINE == "elastix"
    assert engine_of(registration_parameters(engine="ants")) == "ants"


def test_the_panel_limits_the_rotation_only_where_the_run_searches_every_pose(scene, volumes):
    """The largest-rotation box is enabled by this rule: it had been enabled for guided runs too, whose starts
    replace the search (the library's rotation_limit_applies), and the module held its own copy of the rule."""
    from MultimodalRegistrationLib.core.phantom import rigid_transform
    from MultimodalRegistrationLib.nodes.registration import panel_searches_every_pose

    fixed, moving = volumes
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    start = mrml.transform_to_node(scene, rigid_transform(5.0, (0, 0, 1), (0, 0, 0)), name="start")

    def searches(**values) -> bool:
        return panel_searches_every_pose(registration_parameters(fixedVolume=fixed, movingVolume=moving, **values))

    assert searches() and searches(init="any-pose", initialTransform=start)
    assert not searches(initialTransform=start) and not searches(init="geometry")
    assert not searches(fixedSegmentation=labels, movingSegmentation=labels)
    moving.SetAndObserveTransformNodeID(start.GetID())  # a parent transform is a start too
    assert not searches() and searches(init="any-pose")


def test_a_moving_volume_under_a_thin_plate_spline_is_refused_naming_the_node_and_the_fix(scene, volumes):
    """Landmark Registration and SlicerIGT's Fiducial Registration Wizard make thin-plate spline nodes, which Slicer
    writes as an ITK kernel transform that ITK cannot read: the start had failed naming a deleted scratch file."""
    import vtk

    fixed, moving = volumes
    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for point in [(-20, -20, -20), (20, -20, -20), (-20, 20, -20), (-20, -20, 20), (20, 20, 20), (0, 0, 0)]:
        source.InsertNextPoint(point)
        target.InsertNextPoint(point[0] + (3 if point == (0, 0, 0) else 0), point[1], point[2])
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    spline.SetBasisToR()
    node = scene.AddNewNodeByClass("vtkMRMLTransformNode", "FRW tps")
    node.SetAndObserveTransformToParent(spline)
    moving.SetAndObserveTransformNodeID(node.GetID())
    count = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="transform 'FRW tps' is a thin-plate spline .* convert it to a grid "
                       "transform .Transforms module, Convert"):  # fmt: skip
        register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, preset="rigid"))
    assert scene.GetNumberOfNodes() == count and moving.GetParentTransformNode() is node


def test_harden_is_offered_only_while_the_result_faces_the_way_it_was_registered(scene, small_pair, volumes):
    """A helper's GUI review: after Invert the moving volume, still under the result, was shown through the inverse,
    and Harden stayed on: a click resampled it the wrong way for good. Invert now says so, and Harden waits."""
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.result_extras import hardens_as_registered, invert_result

    fixed, moving = volumes
    result = mrml.transform_to_node(scene, small_pair.truth, None, name="MR to CT")
    moving.SetAndObserveTransformNodeID(result.GetID())
    assert hardens_as_registered(moving, result)
    said = invert_result(result, moving)
    assert not hardens_as_registered(moving, result)
    assert said == ("'MR to CT (-)' now maps moving to fixed: put the fixed volume under it to see it in the moving "
                    f"space; '{moving.GetName()}', still under it, is shown through the inverse, and Harden is off "
                    "until Invert turns it back")  # fmt: skip
    assert invert_result(result, moving) == "'MR to CT' faces fixed to moving again, as registered"
    assert hardens_as_registered(moving, result)
    invert_result(result)
    mrml.transform_to_node(scene, small_pair.truth, result, name="MR to CT")  # a new result into it: forgotten
    from MultimodalRegistrationLib.nodes.job import forget_earlier_result

    forget_earlier_result(result)
    assert hardens_as_registered(moving, result)
