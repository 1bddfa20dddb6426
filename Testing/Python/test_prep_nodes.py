"""Registration preparation on MRML nodes (the RegistrationPrep module's logic) on real slicer-core scenes."""

import json
import re
import time

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")
import vtk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import corner_points, inside_fraction
from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.core.transforms import lps_ras_points
from MultimodalRegistrationLib.nodes import mrml
from MultimodalRegistrationLib.nodes.prep import (
    ATTRIBUTE_PREFIX,
    common_region_roi,
    n4_target,
    placement,
    prep_job,
    prep_parameters,
    prepare_nodes,
    preview_common_region,
    status_text,
)
from MultimodalRegistrationLib.prep.crop import common_region, crop_common
from MultimodalRegistrationLib.prep.masks import foreground_mask
from MultimodalRegistrationLib.prep.pipeline import PrepOptions
from MultimodalRegistrationLib.process.worker import WorkerFailure
from test_prep import box_image, phantom_truth

MARGIN_MM = 5.0


def half_moving(pair) -> sitk.Image:
    """The phantom MR's central half along each axis: a smaller field of view than the CT's."""
    size = np.array(pair.moving.GetSize())
    return sitk.RegionOfInterest(pair.moving, [int(s) for s in size // 2], [int(i) for i in size // 4])


def fingerprint(node) -> dict:
    """What must not change on an input node: its voxels object, their modification time, size and geometry."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    data = node.GetImageData()
    return {"data": data, "mtime": data.GetMTime(), "dimensions": data.GetDimensions(),
            "ijk_to_ras": [ijk_to_ras.GetElement(r, c) for r in range(4) for c in range(4)],
            "parent": node.GetTransformNodeID()}  # fmt: skip


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing())
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-9))  # fmt: skip


def white_matter_cv(image: sitk.Image, head_from_image) -> float:
    white = phantom_truth(image, head_from_image, "white") > 0.95
    values = sitk.GetArrayViewFromImage(image)[white].astype(float)
    return float(values.std() / values.mean())


@pytest.fixture
def phantom_nodes(scene, small_pair):
    """CT (fixed) and half of the MR (moving) as volume nodes; the MR under the true fixed -> moving transform."""
    moving = half_moving(small_pair)
    fixed_node = mrml.volume_node_from_image(scene, small_pair.fixed, "CT")
    moving_node = mrml.volume_node_from_image(scene, moving, "MR")
    truth_node = mrml.transform_to_node(scene, small_pair.truth, name="truth")
    return fixed_node, moving_node, truth_node, moving


@pytest.mark.slow
def test_prepare_nodes_crops_masks_and_corrects_bias_into_new_nodes(scene, small_pair, phantom_nodes):
    fixed_node, moving_node, truth_node, moving = phantom_nodes
    moving_node.SetAndObserveTransformNodeID(truth_node.GetID())  # the placement: an unhardened parent
    before = {"fixed": fingerprint(fixed_node), "moving": fingerprint(moving_node)}
    options = PrepOptions(crop_common=True, margin_mm=MARGIN_MM, mask_fixed="auto", mask_moving="auto", n4="moving")
    fractions = []
    parameters = prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, prep=options)
    prep = prepare_nodes(parameters, on_progress=lambda fraction, _: fractions.append(fraction))

    # Originals untouched: same voxel objects, not modified since, same size, geometry and parent.
    assert fingerprint(fixed_node) == before["fixed"] and fingerprint(moving_node) == before["moving"]

    # Crops: exactly the library's crop of the same images under the parent transform.
    fixed_crop, moving_crop = crop_common(small_pair.fixed, moving, small_pair.truth, MARGIN_MM)
    fixed_out = mrml.image_from_volume_node(prep.fixed_node)
    moving_out = mrml.image_from_volume_node(prep.moving_node)
    assert same_grid(fixed_out, fixed_crop.image) and same_grid(moving_out, moving_crop.image)
    assert fixed_crop.fraction < 0.6  # the CT's field of view is much larger than the half MR's
    assert np.array_equal(sitk.GetArrayViewFromImage(fixed_out), sitk.GetArrayViewFromImage(fixed_crop.image))
    for output, original in ((fixed_out, small_pair.fixed), (moving_out, moving)):
        assert inside_fraction(corner_points(output), original) == 1.0  # within the input's physical bounds

    # Masks: labelmap nodes on their volume's grid, the automatic mask of the cropped image.
    for mask_node, volume_image, cropped in ((prep.fixed_mask_node, fixed_out, fixed_crop.image),
                                             (prep.moving_mask_node, moving_out, moving_crop.image)):  # fmt: skip
        assert mask_node.IsA("vtkMRMLLabelMapVolumeNode")
        mask = mrml.image_from_volume_node(mask_node)
        assert same_grid(mask, volume_image)
        expected, _ = foreground_mask(cropped)
        assert np.array_equal(sitk.GetArrayViewFromImage(mask), sitk.GetArrayViewFromImage(expected))
        assert 0.2 < sitk.GetArrayViewFromImage(mask).mean() < 0.99

    # N4 on the MR only: float voxels, white matter more uniform than in the cropped input.
    assert prep.moving_node.GetImageData().GetScalarType() == vtk.VTK_FLOAT
    assert [step["image"] for step in prep.steps if step["step"] == "bias correction"] == ["moving"]
    # Each output lists its own image's steps: the CT's had listed the MR's bias correction (a helper's sweep).
    assert prep.fixed_node.GetAttribute(ATTRIBUTE_PREFIX + "steps") == "crop, mask"
    assert prep.moving_node.GetAttribute(ATTRIBUTE_PREFIX + "steps") == "crop, mask, bias correction"
    head_from_moving = small_pair.truth.inverse()
    cv_before = white_matter_cv(moving_crop.image, head_from_moving)
    cv_after = white_matter_cv(moving_out, head_from_moving)
    assert cv_after < 0.7 * cv_before, (cv_before, cv_after)

    # The moving outputs sit where the original sits; each output records its source.
    assert prep.moving_node.GetTransformNodeID() == truth_node.GetID()
    assert prep.moving_mask_node.GetTransformNodeID() == truth_node.GetID()
    assert prep.fixed_node.GetTransformNodeID() is None
    assert prep.moving_node.GetAttribute(ATTRIBUTE_PREFIX + "sourceNodeID") == moving_node.GetID()
    assert not prep.moving_node.IsA("vtkMRMLLabelMapVolumeNode")
    assert fractions and fractions == sorted(fractions) and fractions[-1] >= 0.9
    text = status_text(prep)
    assert "crop (fixed)" in text and "bias correction (moving)" in text and "MR prep mask" in text

    # The preview ROI is the box the fixed crop keeps before rounding out to whole voxels (under one a side).
    center, size, axes = _roi_frame(common_region_roi(fixed_node, moving_node, None, MARGIN_MM))
    assert np.allclose(axes, np.eye(3))  # the CT is axis-aligned
    edges = [fixed_out.TransformContinuousIndexToPhysicalPoint(list(index)) for index in
             (np.full(3, -0.5), np.array(fixed_out.GetSize()) - 0.5)]  # fmt: skip
    edges_ras = lps_ras_points(np.array(edges))
    crop_low, crop_high = edges_ras.min(axis=0), edges_ras.max(axis=0)
    spacing = np.array(fixed_out.GetSpacing())
    for gap in ((center - size / 2) - crop_low, crop_high - (center + size / 2)):
        assert np.all(gap >= -1e-6) and np.all(gap < spacing), gap


def test_placement_counts_the_current_transform_once(scene, small_pair, phantom_nodes):
    fixed_node, moving_node, truth_node, moving = phantom_nodes
    transform, to_hand_on = placement(moving_node, truth_node)  # a separate node: applied, and kept for registration
    assert np.allclose(transform.matrix, small_pair.truth.matrix) and to_hand_on is truth_node
    moving_node.SetAndObserveTransformNodeID(truth_node.GetID())
    transform, to_hand_on = placement(moving_node, truth_node)  # also the parent: counted once
    assert np.allclose(transform.matrix, small_pair.truth.matrix) and to_hand_on is None
    moving_node.SetAndObserveTransformNodeID(None)

    prep = prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, currentTransform=truth_node,
                                         cropCommon=True, marginMm=MARGIN_MM))  # fmt: skip
    fixed_crop, moving_crop = crop_common(small_pair.fixed, moving, small_pair.truth, MARGIN_MM)
    assert same_grid(mrml.image_from_volume_node(prep.fixed_node), fixed_crop.image)
    assert same_grid(mrml.image_from_volume_node(prep.moving_node), moving_crop.image)
    assert prep.moving_node.GetTransformNodeID() is None  # like the original moving volume
    assert prep.fixed_mask_node is None and prep.moving_mask_node is None
    assert prep.moving_node.GetAttribute(ATTRIBUTE_PREFIX + "currentTransformNodeID") == truth_node.GetID()
    # how it was made, whole, as prep.json records it (the margin and the options had not been recorded)
    record = json.loads(prep.fixed_node.GetAttribute(ATTRIBUTE_PREFIX + "summary"))
    assert record["options"]["margin_mm"] == MARGIN_MM and record["steps"][0]["step"] == "crop"
    # Sent to the registration panel (RegistrationPrep's Send button): the prepared volumes, and the current
    # transform as its start; volumes that were not prepared are refused, the panel left as it was.
    from MultimodalRegistrationLib.nodes.registration import registration_parameters
    from MultimodalRegistrationLib.nodes.send import send_prealignment, send_prepared

    registration = registration_parameters()
    with pytest.raises(InputError, match="prepare the volumes first"):
        send_prepared(registration, fixed_node, moving_node)
    assert registration.fixedVolume is None and registration.initialTransform is None
    assert send_prepared(registration, prep.fixed_node, prep.moving_node) is truth_node
    assert (registration.fixedVolume, registration.movingVolume) == (prep.fixed_node, prep.moving_node)
    assert registration.initialTransform is truth_node
    # FiducialPrealign's Send: a start, unless the moving volume is already under it (it would count twice).
    assert send_prealignment(registration, truth_node) and registration.initialTransform is truth_node
    prep.moving_node.SetAndObserveTransformNodeID(truth_node.GetID())
    assert not send_prealignment(registration, truth_node) and registration.initialTransform is None


def _roi_frame(roi):
    """(center RAS, size, axes RAS as columns) of an ROI node."""
    center = [0.0, 0.0, 0.0]
    roi.GetCenter(center)
    matrix = roi.GetObjectToNodeMatrix()
    axes = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    return np.array(center), np.array(roi.GetSize()), axes


def test_common_region_roi_shows_the_common_region(scene):
    moving_image = box_image((50, 70, 45), (1.5, 1.2, 2.0), (-20, -40, -30))
    placement_truth = rigid_transform(30.0, (0.3, 0.5, 0.8), (25.0, -10.0, 15.0))
    moving_node = mrml.volume_node_from_image(scene, moving_image, "moving")
    current = mrml.transform_to_node(scene, placement_truth, name="current")

    # Axis-aligned fixed volume: the ROI is the region's bounding box in RAS.
    straight = box_image((60, 50, 40), (2.0, 2.0, 3.0), (-60, -50, -60))
    straight_node = mrml.volume_node_from_image(scene, straight, "straight")
    roi = common_region_roi(straight_node, moving_node, current, margin_mm=0.0)
    region_ras = lps_ras_points(common_region(straight, moving_image, placement_truth))
    center, size, axes = _roi_frame(roi)
    assert np.allclose(axes, np.eye(3))
    assert np.allclose(center, (region_ras.min(0) + region_ras.max(0)) / 2, atol=1e-6)
    assert np.allclose(size, region_ras.max(0) - region_ras.min(0), atol=1e-6)
    assert roi.GetLocked() and roi.GetTransformNodeID() is None

    # Oblique fixed volume: the ROI turns with it and bounds the region tightly along its axes.
    oblique = rigid_transform(20.0, (1, 1, 0), (0, 0, 0)).matrix[:3, :3]
    fixed = box_image((60, 50, 40), (2.0, 2.0, 3.0), (-60, -50, -60), oblique)
    fixed_node = mrml.volume_node_from_image(scene, fixed, "oblique")
    same = common_region_roi(fixed_node, moving_node, current, margin_mm=0.0, roi_node=roi)
    assert same is roi and scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode") == 1
    center, size, axes = _roi_frame(roi)
    fixed_axes_ras = lps_ras_points(oblique.T).T
    assert np.allclose(np.abs(axes.T @ fixed_axes_ras), np.eye(3), atol=1e-9)  # the fixed axes, up to sign
    region_ras = lps_ras_points(common_region(fixed, moving_image, placement_truth))
    along = (region_ras - center) @ axes
    assert np.allclose(along.max(0), size / 2, atol=1e-6) and np.allclose(along.min(0), -size / 2, atol=1e-6)

    # A margin widens the ROI, but never beyond the fixed volume.
    common_region_roi(fixed_node, moving_node, current, margin_mm=10.0, roi_node=roi)
    wide_center, wide_size, _ = _roi_frame(roi)
    extent = np.abs(axes.T @ fixed_axes_ras) @ (np.array(fixed.GetSize()) * fixed.GetSpacing())
    assert np.all(wide_size <= extent + 1e-6) and np.all(wide_size > size)
    assert np.all(wide_size <= size + 20.0 + 1e-6)
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * wide_size / 2
    corners_lps = lps_ras_points(wide_center + corners @ axes.T)
    middle = np.asarray(fixed.TransformContinuousIndexToPhysicalPoint([29.5, 24.5, 19.5]))
    inward = corners_lps + (middle - corners_lps) * 1e-6  # a micrometre in: corners on the fixed box's faces count
    assert inside_fraction(inward, fixed) == 1.0

    with pytest.raises(InputError, match="do not overlap"):
        far = box_image((20, 20, 20), (1, 1, 1), (0, 0, 900))
        common_region_roi(straight_node, mrml.volume_node_from_image(scene, far, "far"), None, 0.0)


def test_chosen_outputs_spacing_and_downsampling(scene, small_pair, phantom_nodes):
    fixed_node, moving_node, _, moving = phantom_nodes
    chosen = mrml.volume_node_from_image(scene, small_pair.fixed, "chosen output")
    options = PrepOptions(spacing_moving=(2.0, 2.0, 2.0), downsample_to=3.0)
    parameters = prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, prep=options, outputFixed=chosen)
    prep = prepare_nodes(parameters)
    assert prep.fixed_node is chosen
    fixed_out, moving_out = (mrml.image_from_volume_node(n) for n in (prep.fixed_node, prep.moving_node))
    assert np.allclose(fixed_out.GetSpacing(), 3.0) and np.allclose(moving_out.GetSpacing(), 3.0)
    # 2 mm voxels instead of 2.5: the MR is 80% as wide, downsampled to 3 mm (same physical box).
    extent = np.array(moving.GetSize()) * 2.0
    assert np.allclose(np.array(moving_out.GetSize()) * 3.0, extent, atol=3.0)
    assert [step["step"] for step in prep.steps] == ["set spacing", "downsample", "downsample"]


def test_unusable_nodes_are_refused_before_anything_runs(scene, small_pair, phantom_nodes):
    fixed_node, moving_node, truth_node, _ = phantom_nodes
    crop = PrepOptions(crop_common=True)
    count = scene.GetNumberOfNodes()
    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "label")
    chosen = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "chosen")
    cases = [
        (dict(prep=PrepOptions()), "no preparation step"),
        (dict(), "no preparation step"),
        (dict(prep=crop, outputMoving=moving_node), "originals are never modified"),
        (dict(prep=crop, outputFixed=label), "not a scalar volume"),
        (dict(prep=crop, outputFixedMask=chosen), "not a labelmap"),
        (dict(prep=PrepOptions(n4="sideways")), "unknown N4 target"),
        (dict(excludeAbove=True, excludeAboveHu=float("nan")), "not a number"),
    ]
    for arguments, message in cases:
        with pytest.raises(InputError, match=message):
            prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, **arguments))
    with pytest.raises(InputError, match="same node"):
        prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=fixed_node, prep=crop))
    with pytest.raises(InputError, match="unknown parameters \\['cropcommon'\\]"):
        prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, cropcommon=True)
    fixed_node.SetAndObserveTransformNodeID(truth_node.GetID())
    with pytest.raises(InputError, match="harden it first"):
        prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, prep=crop))
    assert scene.GetNumberOfNodes() == count + 2  # only the two nodes added above
    assert n4_target(True, True) == "both" and n4_target(False, True) == "moving" and n4_target(False, False) is None


def test_a_failed_or_cancelled_run_leaves_the_scene_unchanged(scene):
    fixed_node = mrml.volume_node_from_image(scene, box_image((20, 20, 20), (2, 2, 2), (0, 0, 0)), "fixed")
    far_node = mrml.volume_node_from_image(scene, box_image((20, 20, 20), (2, 2, 2), (0, 0, 600)), "far")
    count = scene.GetNumberOfNodes()
    with pytest.raises(WorkerFailure, match="do not overlap") as failure:
        prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=far_node, cropCommon=True))
    assert failure.value.kind == "input"
    assert scene.GetNumberOfNodes() == count
    # in the panel's words: it has no initial transform, and mmreg's commands are not its fixes (a helper's sweep)
    fix = ("put the moving volume under a prealignment (FiducialPrealign), or register once without cropping "
           "(Multimodal Registration searches every pose) and choose that result as the 'Current transform'")
    assert str(failure.value).endswith(fix) and "mmreg" not in str(failure.value)
    with pytest.raises(InputError, match=re.escape(fix)):
        common_region_roi(fixed_node, far_node)  # the Preview button
    assert scene.GetNumberOfNodes() == count

    done = []
    parameters = prep_parameters(fixedVolume=fixed_node, movingVolume=far_node, maskFixed=True)
    prep = prepare_nodes(parameters, blocking=False, on_done=done.append)
    prep.cancel()
    assert prep.error.kind == "cancelled" and "unchanged" in str(prep.error) and done == [prep]
    assert prep.fixed_node is None and scene.GetNumberOfNodes() == count
    assert status_text(prep).startswith("Not prepared")


def test_a_polled_run_fills_the_nodes_and_leaves_no_scratch_files(scene):
    """The GUI's path: start without blocking, poll from a timer until done."""
    fixed, moving = box_image((30, 30, 30), (2, 2, 2), (0, 0, 0)), box_image((20, 20, 20), (2, 2, 2), (21, 1, 1))
    fixed_node = mrml.volume_node_from_image(scene, fixed, "fixed")
    moving_node = mrml.volume_node_from_image(scene, moving, "moving")
    done = []
    parameters = prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, cropCommon=True, marginMm=0.0)
    prep = prepare_nodes(parameters, blocking=False, on_done=done.append)
    deadline = time.monotonic() + 60
    while prep.poll() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done == [prep] and prep.error is None
    fixed_crop, moving_crop = crop_common(fixed, moving, None, 0.0)
    assert same_grid(mrml.image_from_volume_node(prep.fixed_node), fixed_crop.image)
    assert same_grid(mrml.image_from_volume_node(prep.moving_node), moving_crop.image)
    assert fixed_crop.fraction < 0.4
    assert not prep.folder.exists() and not prep._worker._scratch.exists()
    # Cancel after the worker finished but before the timer's next poll: cancelled, nothing added (the whole result
    # had been added and reported a success; a helper's sweep).
    count = scene.GetNumberOfNodes()
    late = prepare_nodes(parameters, blocking=False)
    deadline = time.monotonic() + 60
    while late._worker._process.alive and time.monotonic() < deadline:
        time.sleep(0.02)
    late.cancel()
    assert late.error is not None and late.error.kind == "cancelled" and "unchanged" in str(late.error)
    assert late.fixed_node is None and scene.GetNumberOfNodes() == count and not late.folder.exists()


def test_the_panel_boxes_become_one_prep_job(scene, small_pair, phantom_nodes, tmp_path):
    """The one path from the RegistrationPrep panel to a worker job: each step box read through the options'
    own panel fields (a value only while its switch box is checked), the volumes written, the placement once."""
    from MultimodalRegistrationLib.core.images import read_image
    from MultimodalRegistrationLib.core.transforms import Transform
    from MultimodalRegistrationLib.process.jobs import PrepJob

    fixed_node, moving_node, truth_node, moving = phantom_nodes
    moving_node.SetAndObserveTransformNodeID(truth_node.GetID())
    parameters = prep_parameters(
        fixedVolume=fixed_node, movingVolume=moving_node, currentTransform=truth_node, cropCommon=True, marginMm=4.0,
        maskMoving=True, excludeAbove=False, excludeAboveHu=2500.0, n4Moving=True, setMovingSpacing=True,
        movingSpacingX=2.0, movingSpacingY=2.0, movingSpacingZ=2.5, downsample=False, downsampleMm=1.0,
    )  # fmt: skip
    job = prep_job(parameters, tmp_path)
    spacing = (2.0, 2.0, 2.5)
    assert job.prep == PrepOptions(
        crop_common=True, margin_mm=4.0, mask_moving="auto", n4="moving", spacing_moving=spacing
    )
    assert read_image(job.fixed).GetSize() == small_pair.fixed.GetSize()
    assert read_image(job.moving).GetSize() == moving.GetSize()
    # The current transform is also the moving volume's parent: the placement counts it once.
    points = small_pair.head_points[:20]
    placed = Transform.read(job.initial_transform).transform_points(points)
    assert np.allclose(placed, small_pair.truth.transform_points(points), atol=1e-6)
    sent = PrepJob.from_json(job.to_json())  # what the worker reads
    assert sent.prep.steps_on() == ["crop_common", "mask_moving", "n4", "spacing_moving"]
    assert tuple(sent.prep.spacing_moving) == (2.0, 2.0, 2.5) and sent.prep.margin_mm == 4.0

    # The Preview button's ROI: the same margin and moving spacing as the job's crop.
    roi = preview_common_region(parameters)
    direct = common_region_roi(fixed_node, moving_node, truth_node, 4.0, spacing_moving=(2.0, 2.0, 2.5))
    assert np.allclose(_roi_frame(roi)[1], _roi_frame(direct)[1]) and _roi_frame(roi)[1].min() > 10.0

    parameters.excludeAbove, parameters.downsample, parameters.setMovingSpacing = True, True, False
    options = prep_job(parameters, tmp_path).prep
    assert (options.exclude_above, options.downsample_to, options.spacing_moving) == (2500.0, 1.0, None)
    parameters.modalityFixed, parameters.modalityMoving = "mr", "ct"  # the panel's two modality boxes
    options = prep_job(parameters, tmp_path).prep
    assert (options.modality_fixed, options.modality_moving) == ("mr", "ct")


def _crop_run(fixed_node, moving_node, **outputs):
    return prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, cropCommon=True, marginMm=0.0, **outputs)


def test_selectors_changed_or_volumes_removed_during_a_run_do_not_reach_its_result(scene):
    """The panel hands its live parameter node to the run (audit): a moving selector switched mid-run named the
    result after the new volume and dropped its placement; a moving volume deleted mid-run raised AttributeError
    and left the panel on 'Cancel'. The run now keeps what it was started with."""
    fixed = mrml.volume_node_from_image(scene, box_image((30, 30, 30), (2, 2, 2), (0, 0, 0)), "fixed")
    moving = mrml.volume_node_from_image(scene, box_image((20, 20, 20), (2, 2, 2), (21, 1, 1)), "MR")
    other = mrml.volume_node_from_image(scene, box_image((20, 20, 20), (2, 2, 2), (5, 5, 5)), "other")
    placed = mrml.transform_to_node(scene, rigid_transform(5.0, [0, 0, 1], [1.0, 2.0, 0.0]), name="placement")
    moving.SetAndObserveTransformNodeID(placed.GetID())
    parameters = _crop_run(fixed, moving)
    prep = prepare_nodes(parameters, blocking=False)
    parameters.movingVolume = other  # the user picks another volume while it runs
    moving.SetAndObserveTransformNodeID(None)
    prep.wait()
    assert prep.moving_node.GetName() == "MR prep"
    assert prep.moving_node.GetAttribute(ATTRIBUTE_PREFIX + "sourceNodeID") == moving.GetID()
    assert prep.moving_node.GetTransformNodeID() == placed.GetID()

    done, count = [], scene.GetNumberOfNodes()
    prep = prepare_nodes(_crop_run(fixed, other), blocking=False, on_done=done.append)
    scene.RemoveNode(other)
    with pytest.raises(WorkerFailure, match="moving volume was removed from the scene") as failure:
        prep.wait()
    assert failure.value.kind == "input" and done == [prep] and not prep.running
    assert scene.GetNumberOfNodes() == count - 1  # the removed volume only


def test_a_second_preparation_of_other_volumes_makes_new_nodes(scene):
    """After a run the panel's output selectors hold its results; a run on other volumes overwrote them under their
    old names (audit: 'SCT_T1 prep' ended up holding the MNI crop). A node made from another volume is kept."""
    fixed = mrml.volume_node_from_image(scene, box_image((30, 30, 30), (2, 2, 2), (0, 0, 0)), "fixed")
    first = mrml.volume_node_from_image(scene, box_image((20, 20, 20), (2, 2, 2), (21, 1, 1)), "first")
    second = mrml.volume_node_from_image(scene, box_image((16, 16, 16), (2, 2, 2), (3, 3, 3)), "second")
    one = prepare_nodes(_crop_run(fixed, first))
    size = one.moving_node.GetImageData().GetDimensions()
    two = prepare_nodes(_crop_run(fixed, second, outputFixed=one.fixed_node, outputMoving=one.moving_node))
    assert two.moving_node is not one.moving_node and two.moving_node.GetName() == "second prep"
    assert one.moving_node.GetImageData().GetDimensions() == size
    assert one.moving_node.GetAttribute(ATTRIBUTE_PREFIX + "sourceNodeID") == first.GetID()
    assert two.fixed_node is one.fixed_node  # the same fixed volume: its output node is refilled
    again = prepare_nodes(_crop_run(fixed, second, outputMoving=two.moving_node))
    assert again.moving_node is two.moving_node  # the same volume again: refilled, as chosen


def test_a_preparation_that_fails_filling_its_outputs_leaves_them_as_they_were(scene, monkeypatch):
    """A second preparation into the first's output volumes, failing once the fixed output is filled: both hold
    what they held, voxels, name and attributes (a review: only a registration's outputs were put back)."""
    from MultimodalRegistrationLib.nodes import prep as node_prep

    fixed = mrml.volume_node_from_image(scene, box_image((30, 30, 30), (2, 2, 2), (0, 0, 0)), "fixed")
    moving = mrml.volume_node_from_image(scene, box_image((20, 20, 20), (2, 2, 2), (21, 1, 1)), "moving")
    one = prepare_nodes(_crop_run(fixed, moving))
    outputs = (one.fixed_node, one.moving_node)
    held = [(sitk.GetArrayFromImage(mrml.image_from_volume_node(node)), node.GetName(),
             {name: node.GetAttribute(name) for name in node.GetAttributeNames()}) for node in outputs]  # fmt: skip
    count, filled, fill = scene.GetNumberOfNodes(), [], mrml.update_volume_node_from_image

    def fill_then_fail(node, image):
        if filled:
            raise MemoryError("cannot allocate the prepared moving volume")
        filled.append(fill(node, image))

    monkeypatch.setattr(node_prep.mrml, "update_volume_node_from_image", fill_then_fail)
    with pytest.raises(WorkerFailure, match="MemoryError: cannot allocate"):
        prepare_nodes(prep_parameters(fixedVolume=fixed, movingVolume=moving, cropCommon=True, marginMm=4.0,
                                      outputFixed=outputs[0], outputMoving=outputs[1]))  # fmt: skip
    assert filled == [outputs[0]] and scene.GetNumberOfNodes() == count
    for node, (voxels, name, attributes) in zip(outputs, held):
        assert np.array_equal(sitk.GetArrayFromImage(mrml.image_from_volume_node(node)), voxels)
        assert node.GetName() == name and {n: node.GetAttribute(n) for n in node.GetAttributeNames()} == attributes


def test_a_spacing_fix_is_named_as_a_slicer_user_makes_it(scene):
    """A fixed volume stored at 0.1 um voxels was refused in the Prep panel with '(--spacing-fixed sx,sy,sz)', a fix
    the panel does not offer (a helper's sweep). It names the Volumes module now."""
    fixed = box_image((30, 30, 30), (2, 2, 2), (0, 0, 0))
    fixed.SetSpacing((0.0001,) * 3)
    fixed_node = mrml.volume_node_from_image(scene, fixed, "tiny")
    moving_node = mrml.volume_node_from_image(scene, box_image((20, 20, 20), (2, 2, 2), (0, 0, 0)), "moving")
    with pytest.raises(WorkerFailure) as refused:
        prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, maskFixed=True))
    said = str(refused.value)
    assert refused.value.kind == "input"
    assert "(the fixed volume's spacing (set in the Volumes module, Volume Information))" in said, said
    assert "--spacing" not in said


def _volumes_and_a_mask(scene):
    """A fixed box of 30^3 voxels at 2 mm, a moving one of 20^3, and a labelmap node of the fixed box's middle 20^3."""
    fixed = box_image((30, 30, 30), (2, 2, 2), (0, 0, 0))
    fixed_node = mrml.volume_node_from_image(scene, fixed, "fixed")
    moving_node = mrml.volume_node_from_image(scene, box_image((20, 20, 20), (2, 2, 2), (0, 0, 0)), "moving")
    inside = sitk.Image(fixed.GetSize(), sitk.sitkUInt8)
    inside.CopyInformation(fixed)
    inside[5:25, 5:25, 5:25] = 1
    mask_node = mrml.volume_node_from_image(scene, inside, "head mask", labelmap=True)
    return fixed, fixed_node, moving_node, inside, mask_node


def test_a_script_may_give_its_mask_as_a_node_and_a_refusal_names_it(scene):
    """prep=PrepOptions(mask_fixed=<labelmap node>) had stopped with a TypeError; a mask image that misses the
    volume was refused naming 'fixed_mask_input.nrrd', a scratch file the user never saw (a helper's sweep)."""
    fixed, fixed_node, moving_node, inside, mask_node = _volumes_and_a_mask(scene)
    prep = prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node,
                                         prep=PrepOptions(mask_fixed=mask_node)))  # fmt: skip
    made = sitk.GetArrayFromImage(mrml.image_from_volume_node(prep.fixed_mask_node))
    assert made.sum() == 20**3 and made.shape == (30, 30, 30)
    far = sitk.Image(inside)
    far.SetOrigin((500.0, 0.0, 0.0))
    with pytest.raises(WorkerFailure, match="fixed mask .the fixed mask image given.nrrd. lies outside its image"):
        prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node,
                                      prep=PrepOptions(mask_fixed=far)))  # fmt: skip


def test_an_earlier_runs_mask_goes_when_a_run_into_the_same_outputs_makes_none(scene):
    """Prepared again into the same output nodes without a mask, the earlier mask node stayed on its earlier grid and
    still said it was prepared from the fixed volume: the Send button would hand it to the registration."""
    fixed, moving = box_image((30, 30, 30), (2, 2, 2), (0, 0, 0)), box_image((20, 20, 20), (2, 2, 2), (21, 1, 1))
    fixed_node = mrml.volume_node_from_image(scene, fixed, "fixed")
    moving_node = mrml.volume_node_from_image(scene, moving, "moving")
    first = prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, cropCommon=True,
                                          maskFixed=True))  # fmt: skip
    mask_id = first.fixed_mask_node.GetID()
    again = prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node, cropCommon=True,
                                          marginMm=0.0, outputFixed=first.fixed_node, outputMoving=first.moving_node,
                                          outputFixedMask=first.fixed_mask_node))  # fmt: skip
    assert again.fixed_node is first.fixed_node and again.fixed_mask_node is None
    assert scene.GetNodeByID(mask_id) is None


def test_a_mask_node_under_a_transform_is_read_as_the_registration_reads_it(scene):
    """A fixed labelmap under a 40 mm shift had been prepared as though the shift were not there: the mask applied
    40 mm from where the user saw it, without a word (a helper's console sweep). The registration refuses it."""
    fixed, fixed_node, moving_node, inside, mask_node = _volumes_and_a_mask(scene)
    shift = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 40.0)
    shift.SetMatrixTransformToParent(matrix)
    mask_node.SetAndObserveTransformNodeID(shift.GetID())
    count = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="the fixed mask 'head mask' is under the transform 'shift' while the fixed "
                                         "volume is under none"):  # fmt: skip
        prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node,
                                      prep=PrepOptions(mask_fixed=mask_node)))  # fmt: skip
    assert scene.GetNumberOfNodes() == count
    mask_node.SetAndObserveTransformNodeID(None)
    moving_mask = mrml.volume_node_from_image(scene, inside, "moving mask", labelmap=True)
    moving_mask.SetAndObserveTransformNodeID(shift.GetID())
    with pytest.raises(InputError, match="moving mask 'moving mask' is under transform 'shift' but the moving volume "
                                         "is under no transform"):  # fmt: skip
        prepare_nodes(prep_parameters(fixedVolume=fixed_node, movingVolume=moving_node,
                                      prep=PrepOptions(mask_moving=moving_mask)))  # fmt: skip
