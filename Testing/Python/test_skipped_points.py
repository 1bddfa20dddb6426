"""A landmark marked Skip in Slicer (not visible in that image) is left out, whatever format Slicer saved it in.

A helper's sweep: Slicer 5 writes a skipped point's position status after the named columns of a .fcsv row (3,
unnamed), and "Export to CSV" writes ``defined`` 0; both had been read as placed points, at (0, 0, 0) or wherever
the point last was. Four points, one skipped: prealign ended 21 mm off the truth, exit 0, without a word. And QA
refused a skipped target (exit 2) that prealign left out."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points
from MultimodalRegistrationLib.landmarks.points_io import read_points_file, write_markups_json

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")

TRUTH = rigid_transform(15.0, (1.0, 2.0, 3.0), (6.0, -4.0, 9.0))  # fixed -> moving, LPS mm
FIXED_LPS = np.array([[-16.0, -24.0, 18.0], [22.0, -12.0, 13.0], [3.0, 19.0, -8.0], [-14.0, 10.0, -20.0],
                      [10.0, 5.0, 21.0]])  # fmt: skip
LABELS = [f"L{i + 1}" for i in range(len(FIXED_LPS))]


def slicer_files(folder, points_ras, skipped: int) -> dict[str, str]:
    """The moving list as Slicer itself saves it (.fcsv by its storage node, .csv by "Export to CSV"), with
    point ``skipped`` marked Skip (never placed)."""
    scene = slicer.vtkMRMLScene()
    selection = slicer.vtkMRMLSelectionNode()
    selection.SetSingletonTag("Singleton")  # the logic looks for it (else it logs errors)
    scene.AddNode(selection)
    logic = slicer.vtkSlicerMarkupsLogic()
    logic.SetMRMLScene(scene)
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "moving")
    for index, (point, label) in enumerate(zip(points_ras, LABELS)):
        markups.AddControlPoint(*map(float, point), label)
        if index == skipped:
            markups.UnsetNthControlPointPosition(index)
            markups.SetNthControlPointPositionMissing(index)
    storage = slicer.vtkMRMLMarkupsFiducialStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(folder / "moving.fcsv"))
    assert storage.WriteData(markups)
    logic.ExportControlPointsToCSV(markups, str(folder / "moving.csv"), False)
    return {"fcsv": str(folder / "moving.fcsv"), "csv": str(folder / "moving.csv")}


@pytest.mark.parametrize("kind", ["fcsv", "csv"])
def test_a_point_slicer_saved_as_skipped_is_left_out_with_its_partner(tmp_path, kind, capsys):
    moving_ras = lps_ras_points(TRUTH.transform_points(FIXED_LPS[:4]))
    path = slicer_files(tmp_path, moving_ras, skipped=2)[kind]
    with pytest.raises(InputError, match="point 'L3' is marked skipped"):
        read_points_file(path)
    read = read_points_file(path, skipped_ok=True)
    assert read.labels == ["L1", "L2", "L4"] and read.skipped == ["L3"]
    np.testing.assert_allclose(read.points_ras, moving_ras[[0, 1, 3]], atol=1e-4)  # the CSV keeps 6 digits
    write_markups_json(tmp_path / "fixed.mrk.json", lps_ras_points(FIXED_LPS[:4]), LABELS[:4])
    argv = ["prealign", "--fixed-points", str(tmp_path / "fixed.mrk.json"), "--moving-points", path,
            "--output-transform", str(tmp_path / "T.h5")]  # fmt: skip
    assert main(argv) == 0
    fitted = Transform.read(tmp_path / "T.h5").transform_points(FIXED_LPS)
    assert np.abs(fitted - TRUTH.transform_points(FIXED_LPS)).max() < 1e-3  # was 21 mm off, from (0, 0, 0)
    assert f"moving point 'L3' in moving.{kind} is marked skipped" in capsys.readouterr().err


def test_qa_leaves_a_skipped_target_out_as_prealign_does(tmp_path):
    array = np.random.default_rng(3).normal(100, 20, (40, 40, 40)).astype(np.float32)
    array[10:30, 12:28, 8:32] += 300
    fixed = sitk.GetImageFromArray(array)
    fixed.SetOrigin((-40.0, -40.0, -40.0))
    fixed.SetSpacing((2.0, 2.0, 2.0))
    write_image(fixed, tmp_path / "fixed.nrrd")
    write_image(sitk.Resample(fixed, TRUTH.inverse().sitk, sitk.sitkLinear, 100.0), tmp_path / "moving.nrrd")
    TRUTH.write(tmp_path / "T.h5")
    write_markups_json(tmp_path / "fixed.mrk.json", lps_ras_points(FIXED_LPS), LABELS)
    moving_ras = lps_ras_points(TRUTH.transform_points(FIXED_LPS))
    document = json.loads(slicer_json(tmp_path, moving_ras, skipped=1))
    (tmp_path / "moving.mrk.json").write_text(json.dumps(document))
    argv = ["qa", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd"),
            "--transform", str(tmp_path / "T.h5"), "--fixed-points", str(tmp_path / "fixed.mrk.json"),
            "--moving-points", str(tmp_path / "moving.mrk.json"), "--json", str(tmp_path / "qa.json"),
            "--report", str(tmp_path / "qa.html")]  # fmt: skip
    assert main(argv) == 0  # was exit 2: "point 'L2' is marked skipped"
    summary = json.loads((tmp_path / "qa.json").read_text())
    after = summary["landmarks"]["tre"]["after"]
    assert after["count"] == 4 and after["max_mm"] < 1e-3
    assert [point["label"] for point in summary["landmarks"]["points"]] == ["L1", "L3", "L4", "L5"]
    (warning,) = summary["warnings"]  # and nothing else: the images agree
    assert warning.startswith("moving point 'L2' in moving.mrk.json is marked skipped (not visible in that image): "
                              "left out, with its partner")  # fmt: skip


def slicer_json(folder, points_ras, skipped: int) -> str:
    """The moving list as Slicer's .mrk.json storage node writes it, point ``skipped`` marked Skip."""
    scene = slicer.vtkMRMLScene()
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "moving")
    for index, (point, label) in enumerate(zip(points_ras, LABELS)):
        markups.AddControlPoint(*map(float, point), label)
        if index == skipped:
            markups.SetNthControlPointPositionMissing(index)
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(folder / "written.mrk.json"))
    assert storage.WriteData(markups)
    return (folder / "written.mrk.json").read_text()
