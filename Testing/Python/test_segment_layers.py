"""Overlapping segments: Slicer's multi-layer .seg.nrrd read as one labelmap, in guidance and QA."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.labels import label_names, set_label_names
from MultimodalRegistrationLib.core.segment_layers import layered_segments, merged_segments, single_layer, whole_mask
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.qa.overlap import segmentation_overlap
from MultimodalRegistrationLib.registration.guided.guidance import Guidance, prepare_guidance

SIZE, SPACING, ORIGIN = (48, 40, 32), 2.0, (-48.0, -40.0, -32.0)


def _layers() -> np.ndarray:
    """(z, y, x, 2): layer 0 the gland (a box, 2112 voxels), layer 1 a lesion inside it (27 voxels)."""
    gland, lesion = np.zeros(SIZE[::-1], np.uint8), np.zeros(SIZE[::-1], np.uint8)
    gland[10:22, 12:28, 14:25] = 1
    lesion[14:17, 16:19, 18:21] = 1
    return np.stack([gland, lesion], axis=-1)


def write_two_layer_segmentation(path: Path, names=("gland", "lesion")) -> Path:
    """A multi-layer .seg.nrrd as Slicer writes overlapping segments: a 4D NRRD whose first axis lists the layers;
    both segments have label value 1, each in its own layer."""
    spacing = " ".join(f"({', '.join(str(SPACING if i == j else 0.0) for j in range(3))})" for i in range(3))
    segments = "".join(f"Segment{i}_ID:=Segment_{i + 1}\nSegment{i}_Name:={name}\nSegment{i}_LabelValue:=1\n"
                       f"Segment{i}_Layer:={i}\n" for i, name in enumerate(names))  # fmt: skip
    header = (f"NRRD0004\ntype: unsigned char\ndimension: 4\nspace: left-posterior-superior\n"
              f"sizes: 2 {SIZE[0]} {SIZE[1]} {SIZE[2]}\nspace directions: none {spacing}\n"
              f"kinds: list domain domain domain\nencoding: raw\nspace origin: ({', '.join(map(str, ORIGIN))})\n"
              f"{segments}\n")  # fmt: skip
    path.write_bytes(header.encode() + np.ascontiguousarray(_layers()).tobytes())
    return path


def _mask(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing([SPACING] * 3)
    image.SetOrigin(ORIGIN)
    return image


def test_a_segment_inside_another_stays_whole_whatever_the_order():
    gland, lesion = _layers()[..., 0], _layers()[..., 1]
    labels, warnings, wholes, _ = merged_segments([(2, "lesion", _mask(lesion)), (1, "gland", _mask(gland))],
                                               "fixed segmentation")  # fmt: skip
    array = sitk.GetArrayViewFromImage(labels)
    assert np.count_nonzero(array == 2) == 27  # drawn last: the smaller one
    assert np.count_nonzero(array == 1) == 2112 - 27
    assert label_names(labels) == {1: "gland", 2: "lesion"}
    assert warnings == [("segments 'lesion' and 'gland' of the fixed segmentation overlap (27 voxels); a labelmap "
                         "holds one segment per voxel, so 'lesion' is drawn over 'gland'")]  # fmt: skip
    assert list(wholes) == [1]  # the gland, drawn over, kept whole
    assert np.array_equal(sitk.GetArrayFromImage(whole_mask(labels, 1, wholes)), gland)
    assert merged_segments([(1, "gland", _mask(gland))], "labelmap").wholes == {}


def test_values_are_kept_unless_two_segments_share_one():
    gland, lesion = _layers()[..., 0], _layers()[..., 1]
    labels, warnings, _, _ = merged_segments([(3, "gland", _mask(gland)), (7, "lesion", _mask(lesion))], "labelmap")
    assert label_names(labels) == {3: "gland", 7: "lesion"} and not any("label value" in w for w in warnings)
    labels, warnings, _, _ = merged_segments([(1, "gland", _mask(gland)), (1, "lesion", _mask(lesion))], "labelmap")
    assert label_names(labels) == {1: "gland", 2: "lesion"}  # the first keeps its value
    assert np.count_nonzero(sitk.GetArrayViewFromImage(labels) == 2) == 27
    assert "segment 'lesion' of the labelmap has label value 1, which another segment has: it is given 2" in warnings


def test_a_multi_layer_segmentation_reads_as_one_labelmap_with_its_names(tmp_path):
    image = sitk.ReadImage(str(write_two_layer_segmentation(tmp_path / "seg.seg.nrrd")))
    assert image.GetNumberOfComponentsPerPixel() == 2
    labels, warnings, _, _ = single_layer(image, "moving segmentation")
    assert labels.GetNumberOfComponentsPerPixel() == 1 and labels.GetSize() == SIZE
    assert np.allclose(labels.GetOrigin(), ORIGIN)
    assert label_names(labels) == {1: "gland", 2: "lesion"}  # both were label 1, in two layers: renumbered
    assert np.count_nonzero(sitk.GetArrayViewFromImage(labels) == 2) == 27
    assert len(warnings) == 1 and "'lesion' is drawn over 'gland'" in warnings[0]
    same, none, wholes, _ = single_layer(labels, "moving segmentation")
    assert same is labels and none == [] and wholes == {}


def test_guidance_and_qa_take_a_multi_layer_segmentation(tmp_path):
    """Each segment guides whole (the gland's hole filled); QA pairs them by name; both say the segments overlap."""
    seg = sitk.ReadImage(str(write_two_layer_segmentation(tmp_path / "seg.seg.nrrd")))
    grid = _mask(np.zeros(SIZE[::-1]))
    guidance = Guidance(seg, seg)
    assert replace(guidance, weight=2.0).input_warnings == guidance.input_warnings  # said once, kept
    prepared = prepare_guidance(grid, grid, guidance, "elastix")
    assert [p.name for p in prepared.pairs] == ["gland", "lesion"]
    counts = [int(np.count_nonzero(sitk.GetArrayViewFromImage(m))) for m in prepared.fixed_masks]
    assert counts == [2112, 27]
    assert sum("overlap (27 voxels)" in w for w in prepared.warnings) == 2  # fixed and moving
    overlap = segmentation_overlap(seg, seg, Transform.identity())
    assert [(o.name, o.dice) for o in overlap.after] == [("gland", 1.0), ("lesion", 1.0)]
    assert sum("overlap (27 voxels)" in w for w in overlap.warnings) == 2


def test_a_lesion_at_the_gland_surface_on_one_image_only_leaves_the_gland_whole(tmp_path):
    """A lesion across the gland's edge (a peripheral-zone lesion drawn on the MR only) dented the gland it was
    drawn over, and the dent guided as surface: 0.02-0.38 mm at the start on TRUS-like pairs (not a hole, so not
    filled). The gland now guides as drawn, from the multi-layer file and from the layers the nodes write."""
    layers = _layers()
    layers[..., 1] = 0
    layers[14:17, 16:19, 23:27, 1] = 1  # 18 voxels inside the gland (x < 25), 18 outside
    seg = set_label_names(_mask(layers[..., 0]), {1: "gland"})
    lesion = _mask(layers[..., 1])
    stored, said = layered_segments([(1, "gland", seg), (2, "lesion", lesion)], "segmentation 'MR'")
    assert stored.GetNumberOfComponentsPerPixel() == 2 and said == []
    write_image(stored, tmp_path / "moving.seg.nrrd", compress=False)
    moving = sitk.ReadImage(str(tmp_path / "moving.seg.nrrd"))
    guidance = Guidance(seg, moving, segments=["gland"])
    assert any("overlap (18 voxels)" in w for w in guidance.input_warnings)
    prepared = prepare_guidance(seg, seg, guidance, "elastix")
    counts = [int(np.count_nonzero(sitk.GetArrayViewFromImage(m))) for m in (*prepared.fixed_masks,
                                                                            *prepared.moving_masks)]  # fmt: skip
    assert counts == [2112, 2112]  # 2094 before: 18 voxels dented
    merged = single_layer(moving, "moving segmentation").labels
    assert np.count_nonzero(sitk.GetArrayViewFromImage(merged) == 1) == 2112 - 18  # what a labelmap can hold
    # The whole gland belongs to the merged labelmap it came with: kept by replace(), dropped with another one.
    assert list(replace(guidance, weight=2.0).moving_wholes) == [1]
    other = set_label_names(_mask(np.roll(layers[..., 0], 3, axis=2)), {1: "gland"})
    assert replace(guidance, moving_segmentation=other).moving_wholes == {}
    # QA measures the gland whole too (Dice 0.996 and a surface distance of 0.02 mm before).
    overlap = segmentation_overlap(seg, moving, Transform.identity())
    gland = next(row for row in overlap.after if row.name == "gland")
    assert gland.dice == 1.0 and gland.mean_surface_distance_mm == 0.0 and gland.moving_volume_ml == 2112 * 8 / 1000


def test_a_gland_drawn_with_its_zones_and_a_lesion_guides_and_is_measured_whole():
    """Gland = peripheral zone + transition zone, and a lesion across the peripheral zone's edge, on the MR only.
    One labelmap shows no gland voxel at all (its zones are drawn over it) and a dented zone: the gland was not
    found to pair with the ultrasound's, and the zone guided and measured dented."""
    gland = _layers()[..., 0]
    peripheral = gland.copy()
    peripheral[:, :, 20:] = 0  # x < 20 of the gland
    transition = gland & ~peripheral.astype(bool)
    lesion = np.zeros_like(gland)
    lesion[14:17, 16:19, 18:22] = 1  # 18 voxels in the peripheral zone, 18 in the transition zone
    parts = [(1, "gland", gland), (2, "peripheral zone", peripheral), (3, "transition zone", transition),
             (4, "lesion", lesion)]  # fmt: skip
    stored, _ = layered_segments([(value, name, _mask(array)) for value, name, array in parts], "segmentation")
    assert stored.GetNumberOfComponentsPerPixel() == 3
    merged = single_layer(stored, "moving segmentation")
    shown = sitk.GetArrayViewFromImage(merged.labels)
    assert np.count_nonzero(shown == 1) == 0 and np.count_nonzero(shown == 2) == int(peripheral.sum()) - 18
    ultrasound = set_label_names(_mask(gland), {1: "gland"})
    prepared = prepare_guidance(ultrasound, ultrasound, Guidance(ultrasound, stored), "elastix")
    assert [p.name for p in prepared.pairs] == ["gland"]
    assert int(sitk.GetArrayViewFromImage(prepared.moving_masks[0]).sum()) == 2112
    zones = set_label_names(_mask(peripheral + 2 * transition), {1: "peripheral zone", 2: "transition zone"})
    prepared = prepare_guidance(zones, zones, Guidance(zones, stored, segments=["peripheral zone"]), "elastix")
    assert int(sitk.GetArrayViewFromImage(prepared.moving_masks[0]).sum()) == int(peripheral.sum())
    overlap = segmentation_overlap(zones, stored, Transform.identity())
    assert [(row.name, row.dice) for row in overlap.after if "zone" in row.name] == [("peripheral zone", 1.0),
                                                                                     ("transition zone", 1.0)]
    # Label-Gaussian interpolation rounds a segment's corners; the lesion no longer adds a dent to that.
    shifted = Transform.from_matrix(np.array([[1, 0, 0, 0.7], [0, 1, 0, -0.4], [0, 0, 1, 0.3], [0, 0, 0, 1.0]]))
    dice = {}
    for name, moving in (("lesion-free", zones), ("with the lesion", stored)):
        overlap = segmentation_overlap(zones, moving, shifted, interpolation="gaussian")
        dice[name] = next(row.dice for row in overlap.after if row.name == "peripheral zone")
    assert abs(dice["with the lesion"] - dice["lesion-free"]) < 0.003, dice
    overlap = segmentation_overlap(ultrasound, stored, Transform.identity())
    rows = {row.name: row for row in overlap.after}
    assert rows["gland"].dice == 1.0
    assert rows["lesion"].fixed_volume_ml == 0 and rows["lesion"].moving_volume_ml == pytest.approx(36 * 8 / 1000)


def test_qa_takes_an_unnamed_labelmap_beside_a_named_one():
    """A plain labelmap (no segment names) as the fixed, a .seg.nrrd as the moving: by label value, as before
    (a KeyError for a moment while names were mapped)."""
    gland = _layers()[..., 0]
    named = set_label_names(_mask(gland), {1: "gland"})
    overlap = segmentation_overlap(_mask(gland), named, Transform.identity())
    assert [(row.label, row.dice) for row in overlap.after] == [(1, 1.0)]


def test_segments_that_do_not_overlap_are_stored_in_one_layer():
    gland, lesion = _layers()[..., 0], _layers()[..., 1]
    apart = np.roll(lesion, 20, axis=2)
    stored, said = layered_segments([(1, "gland", _mask(gland)), (2, "lesion", _mask(apart))], "labelmap")
    assert stored.GetNumberOfComponentsPerPixel() == 1 and said == []
    assert label_names(stored) == {1: "gland", 2: "lesion"}
    array = sitk.GetArrayViewFromImage(stored)
    assert np.count_nonzero(array == 1) == 2112 and np.count_nonzero(array == 2) == 27


def _blob_pair(folder: Path) -> None:
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in SIZE[::-1]], indexing="ij")
    blob = sitk.GetImageFromArray((np.exp(-3 * (x**2 + (1.3 * y) ** 2 + (0.8 * z) ** 2)) * 1000).astype(np.float32))
    blob.CopyInformation(_mask(np.zeros(SIZE[::-1])))
    write_image(blob, folder / "fixed.nrrd")
    write_image(blob, folder / "moving.nrrd")


def test_mmreg_register_takes_multi_layer_segmentations(tmp_path, capsys):
    """Refused before with exit 2 ("export the segmentation as a labelmap volume")."""
    _blob_pair(tmp_path)
    seg = write_two_layer_segmentation(tmp_path / "seg.seg.nrrd")
    argv = ["register", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd"),
            "--fixed-segmentation", str(seg), "--moving-segmentation", str(seg), "--segments", "lesion",
            "--output-transform", str(tmp_path / "T.h5"), "--json", str(tmp_path / "T.json")]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "T.json").read_text())
    assert [s["name"] for s in summary["provenance"]["guidance"]["segments"]] == ["lesion"]
    assert any("'lesion' is drawn over 'gland'" in w for w in summary["warnings"])
    matrix = np.asarray(summary["transform"]["matrix_lps"])
    assert np.abs(matrix[:3, 3]).max() < 1.0 and np.allclose(matrix[:3, :3], np.eye(3), atol=0.02)


def test_mmreg_qa_takes_multi_layer_segmentations_into_its_numbers_and_pictures(tmp_path, capsys):
    _blob_pair(tmp_path)
    seg = write_two_layer_segmentation(tmp_path / "seg.seg.nrrd")
    Transform.identity().write(str(tmp_path / "T.h5"))
    argv = ["qa", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd"), "--transform",
            str(tmp_path / "T.h5"), "--fixed-labels", str(seg), "--moving-labels", str(seg), "--report",
            str(tmp_path / "qa.html"), "--json", str(tmp_path / "qa.json")]  # fmt: skip
    assert main(argv) == 0  # the pictures drew the vector image's contours and failed (exit 1)
    report = json.loads((tmp_path / "qa.json").read_text())
    assert [(s["name"], s["dice"]) for s in report["segmentation"]["after"]] == [("gland", 1.0), ("lesion", 1.0)]
    assert sum("'lesion' is drawn over 'gland'" in w for w in report["warnings"]) == 2


@pytest.mark.parametrize("replacement", ["Segment1_Layer:=5", "Segment1_LabelValue:=one", "Segment1_LabelValue:=0",
                                         "Segment1_LabelValue:=256"])  # fmt: skip
def test_a_segment_the_file_cannot_hold_is_refused(tmp_path, replacement):
    """A layer it does not have, a value that is no number, the background, beyond 8 bits (would wrap to 0)."""
    path = write_two_layer_segmentation(tmp_path / "seg.seg.nrrd")
    original = replacement.split("=")[0] + "=1"
    path.write_bytes(path.read_bytes().replace(original.encode(), replacement.encode(), 1))
    with pytest.raises(InputError, match="save (it|the segmentation) again from Slicer"):
        single_layer(sitk.ReadImage(str(path)), "fixed segmentation")


def test_a_segmentation_node_whose_lesion_comes_before_the_gland_keeps_the_lesion(scene, segment_rules):
    """In Slicer a lesion segment listed before the gland it lies in: the exported labelmap (what guidance and
    QA read from the GUI) held the gland over it, and the lesion vanished. Both now go out whole, in two layers,
    and are merged the smaller last, with a warning."""
    pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")
    import slicer
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.qa_labels import label_values, labels_image

    volume = mrml.volume_node_from_image(scene, _mask(np.zeros(SIZE[::-1])), "MR")
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "MR segments")
    for layer, name in ((1, "lesion"), (0, "gland")):  # the lesion first
        labelmap = mrml.volume_node_from_image(scene, _mask(_layers()[..., layer]), f"{name} labels", labelmap=True)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, node)
        inner = node.GetSegmentation()
        inner.GetSegment(inner.GetNthSegmentID(inner.GetNumberOfSegments() - 1)).SetName(name)
    values = label_values(node, node)[0]
    stored, said = labels_image(node, values, volume, "fixed")
    assert stored.GetNumberOfComponentsPerPixel() == 2 and said == []
    layers = sitk.GetArrayViewFromImage(stored)
    assert sorted(int(np.count_nonzero(layers[..., i])) for i in range(2)) == [27, 2112]
    labels, warnings, wholes, _ = single_layer(stored, "fixed segmentation")
    assert warnings == [("segments 'lesion' and 'gland' of the fixed segmentation overlap (27 voxels); a "
                         "labelmap holds one segment per voxel, so 'lesion' is drawn over 'gland'")]  # fmt: skip
    array = sitk.GetArrayViewFromImage(labels)
    value_of = {name: value for value, name in label_names(labels).items()}
    assert np.count_nonzero(array == value_of["lesion"]) == 27
    assert np.count_nonzero(array == value_of["gland"]) == 2112 - 27
    gland = whole_mask(labels, value_of["gland"], wholes)
    assert np.array_equal(sitk.GetArrayViewFromImage(gland), _layers()[..., 0])


def test_a_multi_layer_segmentation_whose_segments_are_all_empty_is_refused(tmp_path):
    path = write_two_layer_segmentation(tmp_path / "seg.seg.nrrd")
    data = path.read_bytes()
    size = 2 * int(np.prod(SIZE))
    path.write_bytes(data[:-size] + bytes(size))
    with pytest.raises(InputError, match="holds no segment: give a segmentation with at least one segment"):
        single_layer(sitk.ReadImage(str(path)), "fixed segmentation")


def test_two_layers_sharing_a_label_value_beside_a_labelmap_are_renumbered_and_the_job_says_so(
    scene, segment_rules, tmp_path
):
    """A segmentation node pairs with a labelmap node by its segments' own label values; Slicer gives the gland and
    a lesion drawn over it value 1 each, in two layers. The export renumbers the lesion, and the run's
    warnings (the panel's status line) say so."""
    pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")
    import slicer
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.panel import job_from_panel
    from MultimodalRegistrationLib.nodes.registration import registration_parameters
    from MultimodalRegistrationLib.nodes.registration_inputs import WRITERS
    from MultimodalRegistrationLib.process.jobs import RegistrationJob

    grid = _mask(np.zeros(SIZE[::-1]))
    fixed, moving = (mrml.volume_node_from_image(scene, grid, name) for name in ("MR", "US"))
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "MR segments")
    for layer, name in ((0, "gland"), (1, "lesion")):
        labelmap = mrml.volume_node_from_image(scene, _mask(_layers()[..., layer]), f"{name} labels", labelmap=True)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, node)
        inner = node.GetSegmentation()
        segment = inner.GetSegment(inner.GetNthSegmentID(inner.GetNumberOfSegments() - 1))
        segment.SetName(name)
        assert segment.GetLabelValue() == 1
    labelmap = mrml.volume_node_from_image(scene, _mask(_layers()[..., 0]), "US gland", labelmap=True)
    parameters = registration_parameters(fixedVolume=fixed, movingVolume=moving, fixedSegmentation=node,
                                         movingSegmentation=labelmap)  # fmt: skip
    job = job_from_panel(RegistrationJob, parameters, tmp_path, WRITERS, output_transform=str(tmp_path / "T.h5"))
    assert job.input_warnings == [
        "segment 'lesion' of the segmentation 'MR segments' has label value 1, which another segment has: it is given 2"
    ]
    guidance = Guidance(sitk.ReadImage(job.fixed_segmentation), sitk.ReadImage(job.moving_segmentation))
    prepared = prepare_guidance(grid, grid, guidance, "elastix")
    assert [(p.name, p.fixed_value, p.moving_value) for p in prepared.pairs] == [("gland", 1, 1)]
    assert int(sitk.GetArrayViewFromImage(prepared.fixed_masks[0]).sum()) == 2112


def _without_lesion(path: Path) -> Path:
    """The two-layer file with its lesion layer emptied, the lesion still listed in its header."""
    data, size = path.read_bytes(), 2 * int(np.prod(SIZE))
    layers = np.frombuffer(data[-size:], np.uint8).reshape(*SIZE[::-1], 2).copy()
    layers[..., 1] = 0
    path.write_bytes(data[:-size] + layers.tobytes())
    return path


def test_an_empty_segment_of_a_multi_layer_segmentation_is_named_empty_not_absent(tmp_path):
    """A helper's sweep: the merge left an empty segment out, name and all, so choosing it read as a segment the
    file does not hold."""
    seg = sitk.ReadImage(str(_without_lesion(write_two_layer_segmentation(tmp_path / "seg.seg.nrrd"))))
    assert label_names(single_layer(seg, "fixed segmentation").labels) == {1: "gland", 2: "lesion"}
    grid = _mask(np.zeros(SIZE[::-1]))
    with pytest.raises(InputError, match="'lesion' is empty in the fixed segmentation \\(named, no voxels\\)"):
        prepare_guidance(grid, grid, Guidance(seg, seg, segments=["lesion"]), "elastix")
    assert [p.name for p in prepare_guidance(grid, grid, Guidance(seg, seg), "elastix").pairs] == ["gland"]


def test_layers_renumbered_are_said_where_segments_pair_by_value(tmp_path):
    """Both segments of the two-layer file have label value 1; the lesion is given 2. Beside a labelmap without
    names, segments pair by value: the lesion then pairs with the labelmap's 2, and the run says why."""
    seg = sitk.ReadImage(str(write_two_layer_segmentation(tmp_path / "seg.seg.nrrd")))
    unnamed = _mask(np.where(_layers()[..., 1] == 1, 2, _layers()[..., 0]))
    said = "segment 'lesion' of the fixed segmentation has label value 1, which another segment has: it is given 2"
    grid = _mask(np.zeros(SIZE[::-1]))
    prepared = prepare_guidance(grid, grid, Guidance(seg, unnamed), "elastix")
    assert [(p.fixed_value, p.moving_value) for p in prepared.pairs] == [(1, 1), (2, 2)]
    assert said in prepared.warnings
    assert said in Guidance(seg, seg, segments=["1"]).input_warnings  # chosen by value
    assert not any("it is given" in w for w in Guidance(seg, seg, segments=["gland"]).input_warnings)
    overlap = segmentation_overlap(seg, unnamed, Transform.identity())
    assert said.replace("segmentation", "labelmap") in overlap.warnings


def test_an_empty_segment_never_takes_a_drawn_segments_value(tmp_path):
    """The review: an empty first layer sharing value 1 with a drawn lesion kept it, the lesion became 2, and beside an
    unnamed labelmap (pairing by value) the lesion paired with that labelmap's structure 2."""
    path = write_two_layer_segmentation(tmp_path / "seg.seg.nrrd", names=("placeholder", "lesion"))
    data, size = path.read_bytes(), 2 * int(np.prod(SIZE))
    layers = np.frombuffer(data[-size:], np.uint8).reshape(*SIZE[::-1], 2).copy()
    layers[..., 0] = 0  # the first layer's segment drawn empty
    path.write_bytes(data[:-size] + layers.tobytes())
    merged = single_layer(sitk.ReadImage(str(path)), "fixed segmentation")
    assert label_names(merged.labels) == {1: "lesion", 2: "placeholder"}
    assert np.count_nonzero(sitk.GetArrayViewFromImage(merged.labels) == 1) == 27
