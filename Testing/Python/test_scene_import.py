"""A saved result scene added to a scene that already holds nodes (File > Add Data of a .mrml, or a second case
loaded beside the first): MRML renames the added nodes whose IDs clash. The nodes a result recorded by ID (the
volumes it was registered from, its mask, its start) must still be those nodes, not the first case's."""

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import near_truth

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")

import slicer
from MultimodalRegistrationLib.core.phantom import mean_error_mm, rigid_transform
from MultimodalRegistrationLib.core.transforms import lps_ras_points
from MultimodalRegistrationLib.nodes import mrml
from MultimodalRegistrationLib.nodes.qa import assess_nodes, qa_parameters, registration_masks
from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters
from MultimodalRegistrationLib.nodes.registration_inputs import moving_parent_of


def save_scene(scene, folder) -> str:
    """Write every shown storable node to ``folder`` and the scene to scene.mrml in it, as Slicer's Save does."""
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if not node.IsA("vtkMRMLStorableNode") or node.GetHideFromEditors():
            continue
        node.AddDefaultStorageNode()
        storage = node.GetStorageNode()
        storage.SetFileName(str(folder / f"{node.GetID()}{'.nrrd' if node.IsA('vtkMRMLVolumeNode') else '.h5'}"))
        assert storage.WriteData(node), node.GetID()
    scene.SetURL(str(folder / "scene.mrml"))
    assert scene.Commit()
    return str(folder / "scene.mrml")


def points(scene, points_lps, name):
    return mrml.markups_from_points(scene, lps_ras_points(np.asarray(points_lps)), None, name)


def imported_beside_another_case(scene, small_pair, tmp_path, warm) -> tuple[list, list]:
    """A rigid result (fixed 'CT', moving 'MR' under it as the panel leaves it, mask 'head', start 'prealign'), saved
    and imported into ``scene`` after another case whose nodes take the saved IDs first: (the imported CT, MR,
    head, prealign; the other case's CT, MR, mask, start)."""
    saved = slicer.vtkMRMLScene()
    fixed = mrml.volume_node_from_image(saved, small_pair.fixed, "CT")
    moving = mrml.volume_node_from_image(saved, small_pair.moving, "MR")
    head = sitk.Cast(sitk.BinaryDilate(sitk.OtsuThreshold(small_pair.fixed, 0, 1), [2, 2, 2]), sitk.sitkUInt8)
    mask = mrml.volume_node_from_image(saved, head, "head", labelmap=True)
    prealign = mrml.transform_to_node(saved, near_truth(small_pair).inverse(), name="prealign")  # ToParent
    prealign.Inverse()
    moving.SetAndObserveTransformNodeID(prealign.GetID())
    registration = register_nodes(registration_parameters(fixedVolume=fixed, movingVolume=moving, fixedMask=mask,
                                                          preset="rigid"), warm=warm)  # fmt: skip
    registration.show_moving_under_result()  # as the panel leaves it
    path = save_scene(saved, tmp_path)
    saved.Clear(1)

    # The first case: nodes of the same classes, made first, hold the IDs the saved scene uses.
    other = [mrml.volume_node_from_image(scene, sitk.Cast(small_pair.fixed, sitk.sitkFloat32) * 0.5 + 7, name)
             for name in ("other CT", "other MR")]
    box = sitk.Image(small_pair.fixed.GetSize(), sitk.sitkUInt8) + 1
    box.CopyInformation(small_pair.fixed)
    other_mask = mrml.volume_node_from_image(scene, box, "other mask", labelmap=True)
    other_start = mrml.transform_to_node(scene, rigid_transform(30, (1, 0, 0), (20, 0, 0)), name="other start")
    scene.SetURL(path)
    scene.Import()
    return [scene.GetFirstNodeByName(name) for name in ("CT", "MR", "head", "prealign")], [*other, other_mask,
                                                                                          other_start]


def targets(scene, small_pair) -> dict:
    fixed_points = small_pair.head_points[:8]
    return {"fixedTargetPoints": points(scene, fixed_points, "CT targets"),
            "movingTargetPoints": points(scene, small_pair.truth.transform_points(fixed_points), "MR targets")}


@pytest.mark.slow
def test_a_saved_result_added_beside_another_case_still_names_its_own_volumes_mask_and_start(
    scene, small_pair, tmp_path, warm_elastix
):
    """Recorded as attributes alone, the IDs named the first case's nodes after the import: QA warned 'registered
    with fixed other CT', measured MI without the result's mask (with the other case's), and took the other case's
    transform as the registration's start (a helper's sweep)."""
    (fixed, moving, mask, prealign), other = imported_beside_another_case(scene, small_pair, tmp_path, warm_elastix)
    result = moving.GetParentTransformNode()
    assert {fixed.GetID(), moving.GetID(), mask.GetID(), prealign.GetID()}.isdisjoint(node.GetID() for node in other)

    metrics, _ = assess_nodes(qa_parameters(transform=result, fixedVolume=fixed, movingVolume=moving,
                                            **targets(scene, small_pair)))  # fmt: skip
    assert not [w for w in metrics.warnings if "was registered with" in w or "no longer in the scene" in w], (
        metrics.warnings)
    fixed_mask, _, _ = registration_masks(result, fixed, moving)
    head = mrml.image_from_volume_node(mask)
    assert 0 < sitk.GetArrayViewFromImage(fixed_mask).sum() == sitk.GetArrayViewFromImage(head).sum()
    # 'before' is the prealignment the run started from (8 degrees and 6 mm off), not the other case's start
    start_error = mean_error_mm(near_truth(small_pair), small_pair.truth, small_pair.head_points[:8])
    assert metrics.landmarks.tre_before.mean_mm == pytest.approx(start_error, abs=0.05)
    assert metrics.landmarks.tre_after.mean_mm < 0.5
    # Register again into the result, as the panel does: it starts where the result did (the prealignment)
    assert moving_parent_of(moving, None, result) is prealign


def test_an_id_an_older_scene_recorded_is_read_beside_ids_recorded_as_references(scene, small_pair):
    """A prepared volume from a scene saved before the references, then shown under a result by QA: its
    preparation's start (an attribute alone) must still be read, and a deleted node must read as gone, not as
    whichever node takes its ID next."""
    from MultimodalRegistrationLib.nodes.node_links import record_node_ids, recorded_node

    volume = mrml.volume_node_from_image(scene, small_pair.moving, "MR prep")
    start, result = (mrml.transform_to_node(scene, rigid_transform(5, (0, 0, 1), (1, 0, 0)), name=name)
                     for name in ("prealign", "result"))  # fmt: skip
    volume.SetAttribute("RegistrationPrep.currentTransformNodeID", start.GetID())  # as recorded before
    record_node_ids(volume, {"MultimodalRegistrationQA.shownUnderNodeID": result.GetID()})
    assert recorded_node(volume, "RegistrationPrep.currentTransformNodeID")[1] is start
    assert recorded_node(volume, "MultimodalRegistrationQA.shownUnderNodeID")[1] is result
    shown_under = result.GetID()
    scene.RemoveNode(result)
    assert recorded_node(volume, "MultimodalRegistrationQA.shownUnderNodeID") == (shown_under, None)


@pytest.mark.slow
def test_nodes_a_result_recorded_and_deleted_since_are_named_gone_not_taken_for_others(
    scene, small_pair, tmp_path, warm_elastix
):
    """After the import, the start deleted: 'before' became no transform without a word (3.09 -> 37.67 mm). The
    fixed volume deleted: its ID, still in the attribute, named the other case's CT, so QA on that CT read the
    result's recorded MI and blamed a changed moving volume; a removed mask was named by an ID the other case's
    mask holds (a helper's sweep)."""
    (fixed, moving, mask, prealign), (other_fixed, *_) = imported_beside_another_case(scene, small_pair, tmp_path,
                                                                                      warm_elastix)  # fmt: skip
    result = moving.GetParentTransformNode()
    scene.RemoveNode(prealign)
    metrics, _ = assess_nodes(qa_parameters(transform=result, fixedVolume=fixed, movingVolume=moving,
                                            **targets(scene, small_pair)))  # fmt: skip
    gone = [w for w in metrics.warnings if "(its start) is no longer in the scene" in w]
    assert len(gone) == 1 and "'before' is measured from no transform" in gone[0], metrics.warnings
    assert metrics.landmarks.tre_before.mean_mm > 20  # what no transform gives: said, not silent
    scene.RemoveNode(mask)
    scene.RemoveNode(fixed)
    metrics, _ = assess_nodes(qa_parameters(transform=result, fixedVolume=other_fixed, movingVolume=moving))
    assert any("was registered with fixed 'a removed node' and moving 'MR'" in w for w in metrics.warnings), (
        metrics.warnings)
    assert any(w.startswith("the registration used a fixed mask that is no longer in the scene: ")
               for w in metrics.warnings), metrics.warnings  # fmt: skip
    assert not [w for w in metrics.warnings if "vtkMRML" in w], metrics.warnings
    # Register again into the result, as the panel does: it starts without its start, and says so
    again = register_nodes(registration_parameters(fixedVolume=other_fixed, movingVolume=moving, outputTransform=result,
                                                   preset="rigid"), warm=warm_elastix)  # fmt: skip
    assert any("(its start) is no longer in the scene: this run started without it" in warning
               for warning in again.summary.warnings), again.summary.warnings  # fmt: skip
