"""QA overlap where an image's field of view cuts a segment (qa/overlap.py): measured only where both images see it.

A liver-like ellipsoid and an uncut lesion-like ball, the moving images the same scene under a known rigid
transform. A fan (a region at the image's minimum: no data) or the image box cuts ~15% off the liver on one side,
and the segmentation drawn on that image ends at the edge of the data, not at the organ's surface. Measured whole,
the exact transform got HD95 of several mm; measured where both images see the liver, it is within a voxel or so,
and a transform 3 mm off scores worse on Dice and HD95 alike.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.segment_layers import layered_segments
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform
from MultimodalRegistrationLib.qa.assess import QAOptions, assess_registration
from MultimodalRegistrationLib.qa.overlap import LabelOverlap, segmentation_overlap
from MultimodalRegistrationLib.qa.report import render_html
from MultimodalRegistrationLib.qa.report_types import QAReport

FIXED_GRID = (72, 1.25, -45.0)  # voxels a side, spacing (mm), origin (LPS mm) of each axis
MOVING_GRID = (80, 1.2, -48.0)
LIVER = (np.array([8.0, 0.0, 0.0]), np.array([24.0, 18.0, 14.0]))  # centre and semi-axes (LPS mm)
LESION = (np.array([-30.0, 0.0, 0.0]), 8.0)  # centre and radius (LPS mm): 7 mm or more from any cut
CUT_FRACTION = 0.15  # of the liver's voxels, on the cut side
TRUTH = rigid_transform(8.0, (0.3, 0.2, 1.0), (4.0, -3.0, 2.0))  # fixed -> moving (LPS mm)
OFF_MM = 3.0


def _points(size: int, spacing: float, origin: float) -> np.ndarray:
    """Voxel centres (z, y, x, 3) of a cubic grid, as LPS (x, y, z) mm."""
    axis = origin + spacing * np.arange(size)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([x, y, z], axis=-1)


def _labels_at(points: np.ndarray) -> np.ndarray:
    """The scene's labelmap at fixed-frame points (LPS mm): 1 the liver, 2 the lesion, 0 elsewhere."""
    liver = np.sum(((points - LIVER[0]) / LIVER[1]) ** 2, axis=-1) <= 1.0
    lesion = np.linalg.norm(points - LESION[0], axis=-1) <= LESION[1]
    return np.where(liver, 1, np.where(lesion, 2, 0)).astype(np.uint8)


def _intensity_at(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The scene's intensity: a ramp (its minimum at one corner only: data everywhere) and brighter organs."""
    return (20.0 + 0.2 * (points.sum(axis=-1) + 120.0) + 60.0 * (labels == 1) + 30.0 * (labels == 2)).astype(np.float32)


def _image(array: np.ndarray, spacing: float, origin: float) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing((spacing,) * 3)
    image.SetOrigin((origin,) * 3)
    return image


def _side(points: np.ndarray, scene_points: np.ndarray, spacing: float, origin: float, cut: str | None):
    """One side's (image, labelmap) at ``points`` (LPS mm; the scene seen at ``scene_points``), its liver cut at
    CUT_FRACTION along +x: by a ``fan`` (intensity at the minimum 0, no segment there) or the image ``box``."""
    labels = _labels_at(scene_points)
    intensity = _intensity_at(scene_points, labels)
    if cut is not None:
        x_cut = np.quantile(points[labels == 1][:, 0], 1.0 - CUT_FRACTION)
        if cut == "box":
            kept = int(np.count_nonzero(points[0, 0, :, 0] <= x_cut))
            labels, intensity = labels[:, :, :kept], intensity[:, :, :kept]
        else:
            outside = points[..., 0] > x_cut
            labels[outside], intensity[outside] = 0, 0.0
    return _image(intensity, spacing, origin), _image(labels, spacing, origin)


def _scene(fixed_cut: str | None = None, moving_cut: str | None = None):
    """(fixed image, fixed labelmap, moving image, moving labelmap): the moving side is the fixed scene under TRUTH."""
    fixed_points = _points(*FIXED_GRID)
    moving_points = _points(*MOVING_GRID)
    scene = TRUTH.inverse().transform_points(moving_points.reshape(-1, 3)).reshape(moving_points.shape)
    return (*_side(fixed_points, fixed_points, *FIXED_GRID[1:], fixed_cut),
            *_side(moving_points, scene, *MOVING_GRID[1:], moving_cut))  # fmt: skip


def _off(transform: Transform, shift_mm=(0.0, OFF_MM, 0.0)) -> Transform:
    """``transform`` after a shift of the fixed points (LPS mm): ``shift_mm`` off the truth."""
    shift = np.eye(4)
    shift[:3, 3] = shift_mm
    return Transform.from_matrix(transform.matrix @ shift)


def _rows(scene, transform: Transform, with_images: bool) -> dict[str, LabelOverlap]:
    fixed, fixed_labels, moving, moving_labels = scene
    images = (fixed, moving) if with_images else (None, None)
    overlap = segmentation_overlap(fixed_labels, moving_labels, transform, None, "nearest", *images)
    return {{1: "liver", 2: "lesion"}[row.label]: row for row in overlap.after}


CUTS = {"moving fan": ((None, "fan"), "moving"), "moving box": ((None, "box"), "moving"),
        "fixed fan": (("fan", None), "fixed")}  # fmt: skip


@pytest.fixture(scope="module", params=list(CUTS))
def cut_scene(request):
    sides, limited_by = CUTS[request.param]
    return _scene(*sides), limited_by


def test_a_cut_liver_is_measured_where_both_images_see_it(cut_scene):
    scene, limited_by = cut_scene
    spacing = FIXED_GRID[1]
    exact, whole = _rows(scene, TRUTH, True)["liver"], _rows(scene, TRUTH, False)["liver"]
    assert exact.limited_by_field_of_view == limited_by and whole.limited_by_field_of_view is None
    assert exact.dice > 0.97 and exact.hausdorff95_mm <= 1.5 * spacing, exact
    assert exact.mean_surface_distance_mm < 0.5 * spacing, exact
    # measured whole, the cut face lies up to ~10 mm from the organ's surface (8.4-8.8 mm HD95, Dice 0.90)
    assert whole.hausdorff95_mm > 6.0 and whole.dice < 0.93, whole
    # volumes stay those of the whole segments as drawn
    assert exact.fixed_volume_ml == whole.fixed_volume_ml and exact.moving_volume_ml == whole.moving_volume_ml
    off_whole = []
    for shift in ((0.0, OFF_MM, 0.0), (-OFF_MM, 0.0, 0.0), (OFF_MM, 0.0, 0.0)):  # along the cut face, and across it
        off = _rows(scene, _off(TRUTH, shift), True)["liver"]
        assert off.dice < exact.dice - 0.03 and off.hausdorff95_mm > exact.hausdorff95_mm + 1.0, (shift, off)
        off_whole.append(_rows(scene, _off(TRUTH, shift), False)["liver"].hausdorff95_mm)
    # the fault this mends: measured whole, a pose 3 mm off towards the cut beat the exact one (5.0 < 8.4 mm)
    assert min(off_whole) < whole.hausdorff95_mm - 2.0, (off_whole, whole)


def test_an_uncut_segment_measures_the_same_with_and_without_the_images(cut_scene):
    scene, _ = cut_scene
    for transform in (TRUTH, _off(TRUTH), Transform.identity()):
        seen, whole = _rows(scene, transform, True)["lesion"], _rows(scene, transform, False)["lesion"]
        assert seen.limited_by_field_of_view is None
        assert seen.to_dict() == whole.to_dict()
        assert "limited_by_field_of_view" not in seen.to_dict()  # as older reports hold it


def test_with_no_cut_the_images_change_nothing():
    scene = _scene()
    fixed, fixed_labels, moving, moving_labels = scene
    for transform in (TRUTH, _off(TRUTH)):
        seen = segmentation_overlap(fixed_labels, moving_labels, transform, None, "nearest", fixed, moving)
        whole = segmentation_overlap(fixed_labels, moving_labels, transform)
        assert seen.to_dict() == whole.to_dict()
    liver = _rows(scene, TRUTH, True)["liver"]
    assert liver.dice > 0.97 and liver.hausdorff95_mm <= 1.5 * FIXED_GRID[1]


def test_a_cut_segment_drawn_over_by_another_is_measured_whole_where_both_see_it():
    """The lesion drawn over the liver on both sides (Slicer's layers): the liver stays whole, and cut."""
    fixed, fixed_labels, moving, moving_labels = _scene(None, "fan")

    def layered(labels: sitk.Image, lesion_centre_lps) -> sitk.Image:
        liver = sitk.Cast(labels == 1, sitk.sitkUInt8)
        index = labels.TransformPhysicalPointToIndex(tuple(float(c) for c in lesion_centre_lps))
        inside = sitk.Image(labels.GetSize(), sitk.sitkUInt8)
        inside.CopyInformation(labels)
        inside[index] = 1
        lesion = sitk.Cast(sitk.BinaryDilate(inside, [3, 3, 3]), sitk.sitkUInt8)
        stored, _ = layered_segments([(1, "liver", liver), (2, "lesion", lesion)], "segmentation")
        return stored

    centre = LIVER[0] - np.array([6.0, 0.0, 0.0])  # inside the liver, well within both views
    fixed_layers = layered(fixed_labels, centre)
    moving_layers = layered(moving_labels, TRUTH.transform_points([centre])[0])
    assert fixed_layers.GetNumberOfComponentsPerPixel() == 2
    overlap = segmentation_overlap(fixed_layers, moving_layers, TRUTH, None, "nearest", fixed, moving)
    rows = {row.name: row for row in overlap.after}
    assert rows["liver"].limited_by_field_of_view == "moving" and rows["lesion"].limited_by_field_of_view is None
    assert rows["liver"].dice > 0.97 and rows["liver"].hausdorff95_mm <= 1.5 * FIXED_GRID[1], rows["liver"]
    whole = {row.name: row for row in segmentation_overlap(fixed_layers, moving_layers, TRUTH).after}
    assert whole["liver"].hausdorff95_mm > 6.0 and rows["liver"].fixed_volume_ml == whole["liver"].fixed_volume_ml


def test_the_qa_report_says_which_field_of_view_limited_a_segment():
    fixed, fixed_labels, moving, moving_labels = _scene(None, "fan")
    options = QAOptions(before=_off(TRUTH, (0.0, 6.0, 0.0)), fixed_labels=fixed_labels, moving_labels=moving_labels)
    report = assess_registration(fixed, moving, TRUTH, options)
    record = json.loads(json.dumps(report.to_dict()))
    rows = {row["name"]: row for row in record["segmentation"]["after"]}
    assert rows["1"]["limited_by_field_of_view"] == "moving" and "limited_by_field_of_view" not in rows["2"]
    before = {row["name"]: row for row in record["segmentation"]["before"]}
    assert before["1"]["limited_by_field_of_view"] == "moving" and before["1"]["dice"] < rows["1"]["dice"]
    assert rows["1"]["dice"] > 0.97 and rows["1"]["hausdorff95_mm"] <= 1.5 * FIXED_GRID[1]
    assert any("field of view cuts segment(s) '1' (the moving image's)" in warning for warning in record["warnings"])
    assert QAReport.from_dict(record).to_dict() == record
    page = render_html(report)
    assert '<th class="text">cut by</th>' in page and '<td class="text">moving</td>' in page and '<td class="text">–</td>' in page


def test_a_skull_stripped_pair_is_measured_whole():
    """Both images zero outside the liver (a mask laid on the anatomy, as a skull-stripped brain): the segment ends
    with the anatomy, not with a view. Read as views, a pose 3 mm off scored Dice and HD95 better than it is (a
    helper's skull-stripped MNI pair: grey matter 0.584 against 0.517, HD95 5.2 against 8.5 mm)."""
    fixed, fixed_labels, moving, moving_labels = _scene()
    stripped = [sitk.Mask(image, sitk.Cast(labels == 1, sitk.sitkUInt8))
                for image, labels in ((fixed, fixed_labels), (moving, moving_labels))]  # fmt: skip
    for transform in (TRUTH, _off(TRUTH), _off(TRUTH, (OFF_MM, OFF_MM, 0.0))):
        seen = segmentation_overlap(fixed_labels, moving_labels, transform, None, "nearest", *stripped)
        whole = segmentation_overlap(fixed_labels, moving_labels, transform)
        assert seen.to_dict() == whole.to_dict(), transform
        assert all(row.limited_by_field_of_view is None for row in seen.after)
    off = {row.label: row for row in segmentation_overlap(fixed_labels, moving_labels, _off(TRUTH), None, "nearest",
                                                          *stripped).after}  # fmt: skip
    assert off[1].dice < 0.95 and off[1].hausdorff95_mm >= OFF_MM - 0.5, off[1]


def test_a_skull_stripped_image_its_box_cuts_is_measured_as_the_box_sees_it():
    """The fixed image zero outside the liver and cut by its own box along +x (a skull-stripped brain cropped at its
    base): read as a view, the liver's mask dropped what the moved labels put in the dark but imaged exterior, and a
    result 25 mm off scored Dice 0.875 against 0.779 (a helper's QA check). Measured as the box sees it."""
    fixed, fixed_labels, moving, moving_labels = _scene("box", None)
    stripped = [sitk.Mask(image, sitk.Cast(labels == 1, sitk.sitkUInt8))
                for image, labels in ((fixed, fixed_labels), (moving, moving_labels))]  # fmt: skip
    for shift in ((0.0, OFF_MM, 0.0), (0.0, 4 * OFF_MM, 0.0)):
        seen = segmentation_overlap(fixed_labels, moving_labels, _off(TRUTH, shift), None, "nearest", *stripped)
        boxed = segmentation_overlap(fixed_labels, moving_labels, _off(TRUTH, shift))
        assert seen.after[0].dice == pytest.approx(boxed.after[0].dice, abs=1e-6), (seen.after[0], boxed.after[0])


def test_a_fan_with_a_margin_of_zeros_is_still_a_view():
    """A reconstructed ultrasound volume keeps zeros all around its fan: on the image's box the data touch no face,
    as a skull-stripped brain's do, and the cut liver was measured whole (a reviewer: Dice 1.0 read 0.68). On the
    data's own bounding box the cut is a flat face: still a view."""
    fixed, fixed_labels, moving, moving_labels = _scene(None, "fan")
    padded = sitk.ConstantPad(moving, [5, 5, 5], [5, 5, 5], 0.0)
    rows = {row.label: row for row in segmentation_overlap(fixed_labels, moving_labels, TRUTH, None, "nearest",
                                                           fixed, padded).after}  # fmt: skip
    assert rows[1].limited_by_field_of_view == "moving" and rows[1].dice > 0.97, rows[1]
