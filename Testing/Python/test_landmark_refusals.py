"""Landmark fits that must be refused before anything is written, and the record a fit leaves (mmreg prealign)."""

import json
import os
import re

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.core.transforms import lps_ras_points
from MultimodalRegistrationLib.core.version import __version__
from MultimodalRegistrationLib.landmarks.fit import fit_landmarks
from MultimodalRegistrationLib.landmarks.points_io import read_points, read_points_file

TRUTH = rigid_transform(20.0, (0.0, 0.0, 1.0), (5.0, -3.0, 8.0))  # fixed -> moving, LPS mm
FIXED_LPS = np.random.default_rng(21).uniform(-40, 40, size=(6, 3))
MOVING_LPS = TRUTH.transform_points(FIXED_LPS)
FIXED_RAS, MOVING_RAS = lps_ras_points(FIXED_LPS), lps_ras_points(MOVING_LPS)
LABELS = [f"P{i}" for i in range(6)]


def markups(path, points_ras, labels, system="RAS", statuses=None, kind="Fiducial", positions=None):
    """A Slicer .mrk.json point list; ``statuses``/``positions`` override single points by index."""
    control = []
    for index, (label, point) in enumerate(zip(labels, points_ras)):
        stored = point if system == "RAS" else lps_ras_points(point[None])[0]
        entry = {"label": label, "position": [float(v) for v in stored], "positionStatus": "defined"}
        entry.update({"positionStatus": (statuses or {})[index]} if index in (statuses or {}) else {})
        entry.update({"position": (positions or {})[index]} if index in (positions or {}) else {})
        control.append(entry)
    document = {
        "markups": [{"type": kind, "coordinateSystem": system, "coordinateUnits": "mm", "controlPoints": control}]
    }
    path.write_text(json.dumps(document))
    return path


def prealign(tmp_path, *extra):
    """Run mmreg prealign on f.mrk.json and m.mrk.json; returns (exit code, files written to out/)."""
    out = tmp_path / "out"
    argv = ["prealign", "--fixed-points", str(tmp_path / "f.mrk.json"), "--moving-points", str(tmp_path / "m.mrk.json"),
            "--output-transform", str(out / "t.h5"), "--json", str(out / "s.json"), "--report", str(out / "r.csv"),
            *map(str, extra)]  # fmt: skip
    code = main(argv)
    return code, sorted(p.name for p in out.iterdir()) if out.exists() else []


# --------------------------------------------------------------------------- F1: degenerate moving points
def test_moving_points_in_one_plane_are_refused_for_affine_and_tps_but_fit_rigidly(tmp_path, capsys):
    flat = MOVING_RAS.copy()
    flat[:, 2] = 0.0  # all placed on one slice
    for kind in ("affine", "tps"):
        with pytest.raises(InputError, match="moving points lie in one plane.*use rigid or similarity, or place"):
            fit_landmarks(FIXED_RAS, flat, kind)
    rigid = fit_landmarks(FIXED_RAS, flat, "rigid")
    assert np.linalg.det(rigid.transform.matrix[:3, :3]) == pytest.approx(1.0)
    markups(tmp_path / "f.mrk.json", FIXED_RAS, LABELS)
    markups(tmp_path / "m.mrk.json", flat, LABELS)
    assert prealign(tmp_path, "--type", "affine") == (2, [])
    assert "place moving points off that plane" in capsys.readouterr().err


def test_moving_points_at_one_position_are_refused():
    collapsed = np.tile(MOVING_RAS[0], (6, 1))
    for kind in ("rigid", "similarity", "affine"):
        with pytest.raises(InputError, match=r"6 moving points lie within 0.00 mm RMS of one position"):
            fit_landmarks(FIXED_RAS, collapsed, kind)
    assert fit_landmarks(FIXED_RAS, collapsed, "translation").fre_rms_mm > 10  # a shift is still defined


def test_a_nearly_singular_affine_is_refused_and_a_well_spread_one_is_not():
    nearly = MOVING_LPS.copy()
    nearly[:, 2] = 0.1 * np.random.default_rng(0).normal(size=6)  # 0.1 mm off one plane, over 80 mm
    with pytest.raises(InputError, match=r"affine fit is singular or nearly so \(scales .*use rigid"):
        fit_landmarks(FIXED_RAS, lps_ras_points(nearly), "affine")
    fit = fit_landmarks(FIXED_RAS, MOVING_RAS, "affine")
    assert np.linalg.det(fit.transform.matrix[:3, :3]) == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- F2: tps and points placed twice
@pytest.mark.parametrize("gap_mm", [0.0, 0.001, 0.5])
def test_tps_refuses_two_fixed_points_closer_than_the_duplicate_tolerance(gap_mm):
    fixed = FIXED_RAS.copy()
    fixed[5] = fixed[4] + [gap_mm, 0.0, 0.0]
    with pytest.raises(InputError, match=rf"fixed points 'P4' and 'P5' are {gap_mm:.2f} mm apart: a thin-plate spline"):
        fit_landmarks(fixed, MOVING_RAS, "tps", LABELS, LABELS)
    assert fit_landmarks(fixed, MOVING_RAS, "affine", LABELS, LABELS).kind == "affine"  # warned only


def test_tps_takes_distinct_points_under_a_millimetre_apart_on_a_mouse_sized_set():
    """The tolerance follows the points' extent below 1 mm: two landmarks 0.7 mm apart on neighbouring structures
    of a 10 mm brain were refused (review); the spline passes through both."""
    rng = np.random.default_rng(3)
    fixed = rng.uniform([-5, -4, -3], [5, 4, 3], size=(10, 3))
    fixed[1] = fixed[0] + [0.7, 0.0, 0.0]
    moving = fixed * 1.05 + 0.15 * np.sin(fixed[:, [1, 2, 0]])
    fit = fit_landmarks(fixed, moving, "tps")
    assert fit.fre_max_mm < 0.1
    with pytest.raises(InputError, match="0.05 mm apart: a thin-plate spline"):
        fit_landmarks(np.vstack([fixed, fixed[0] + [0.05, 0.0, 0.0]]), np.vstack([moving, moving[0] + 1.0]), "tps")


def test_tps_with_a_point_placed_twice_exits_2_without_a_traceback(tmp_path, capsys):
    fixed = FIXED_RAS.copy()
    fixed[5] = fixed[4]
    markups(tmp_path / "f.mrk.json", fixed, LABELS)
    markups(tmp_path / "m.mrk.json", MOVING_RAS, LABELS)
    assert prealign(tmp_path, "--type", "tps") == (2, [])
    err = capsys.readouterr().err
    assert "'P4' and 'P5' are 0.00 mm apart" in err and "Traceback" not in err


def test_points_placed_several_times_give_one_warning_per_group():
    moving = np.tile(MOVING_RAS[0], (6, 1)) + np.random.default_rng(1).normal(0, 0.05, (6, 3))
    moving[3:] = MOVING_RAS[3:]
    fit = fit_landmarks(FIXED_RAS, moving, "rigid", LABELS, LABELS)
    placed = [w for w in fit.warnings if "placed" in w and "times" in w]
    assert placed == [w for w in fit.warnings if "moving points 'P0'" in w]
    assert len(placed) == 1 and placed[0].startswith("moving points 'P0', 'P1', 'P2' lie within 1 mm of one another")


# --------------------------------------------------------------------------- F3: RAS read as LPS
def test_a_list_in_the_other_system_is_refused_when_both_checks_agree(tmp_path, capsys):
    """The bounds check alone only warns when some points stay inside (check_points_inside, tested in
    test_landmark_checks); with the frame check's ~180 degree turn for the same list the fit is refused."""
    fixed_lps = np.array([[-30, -30, -20], [30, -30, -10], [0, 30, 0], [-20, 10, 25], [25, 20, 20], [5, -5, -25.0]])
    moving_lps = rigid_transform(10.0, (0, 0, 1), (4.0, 6.0, 0.0)).transform_points(fixed_lps)
    image = sitk.Image([40, 40, 40], sitk.sitkUInt8)
    image.SetSpacing([2.0] * 3)
    image.SetOrigin([-36.0, -36.0, -40.0])  # 42 mm to +42 mm in x, y: a flip keeps most points inside
    write_image(image, tmp_path / "fixed.nrrd")
    write_image(image, tmp_path / "moving.nrrd")
    markups(tmp_path / "f.mrk.json", lps_ras_points(fixed_lps), LABELS)
    # RAS numbers in a file that says LPS: read as LPS they are flipped through RAS<->LPS.
    markups(tmp_path / "m.mrk.json", lps_ras_points(moving_lps), LABELS)
    path = tmp_path / "m.mrk.json"
    path.write_text(path.read_text().replace('"coordinateSystem": "RAS"', '"coordinateSystem": "LPS"'))
    code, written = prealign(
        tmp_path, "--fixed-image", tmp_path / "fixed.nrrd", "--moving-image", tmp_path / "moving.nrrd"
    )
    err = capsys.readouterr().err
    assert (code, written) == (2, []), err
    assert 'set "coordinateSystem": "RAS" in m.mrk.json' in err and "turned about 180 degrees" in err


# --------------------------------------------------------------------------- F9, F8, F12: points files
@pytest.mark.parametrize(
    "position, shown", [(["a", "b", "c"], "['a', 'b', 'c']"), (5, "5"), ([1.0, 2.0], "[1.0, 2.0]"), ("", "''")]
)
def test_malformed_positions_name_the_file_and_the_point(tmp_path, position, shown):
    path = markups(tmp_path / "p.mrk.json", FIXED_RAS, LABELS, positions={2: position})
    with pytest.raises(InputError, match=re.escape(f"p.mrk.json: point 3 ('P2') has no x, y, z numbers ({shown})")):
        read_points(path)


@pytest.mark.parametrize("document", [{"markups": [5]}, {"markups": [{"controlPoints": {"a": 1}}]},
                                      {"markups": [{"controlPoints": ["x"]}]}])  # fmt: skip
def test_malformed_markups_structure_is_an_input_error(tmp_path, document):
    (tmp_path / "p.mrk.json").write_text(json.dumps(document))
    with pytest.raises(InputError, match="p.mrk.json.*save it again from Slicer"):
        read_points(tmp_path / "p.mrk.json")


@pytest.mark.parametrize("kind", ["Curve", "ClosedCurve", "Plane", "ROI"])
def test_markups_that_are_not_point_lists_are_refused(tmp_path, kind):
    path = markups(tmp_path / "p.mrk.json", FIXED_RAS, LABELS, kind=kind)
    with pytest.raises(InputError, match=f"holds a {kind} markup, not a point list"):
        read_points(path)


def test_a_skipped_point_is_left_out_with_label_pairing_and_refused_by_order(tmp_path, capsys):
    markups(tmp_path / "f.mrk.json", FIXED_RAS, LABELS)
    markups(tmp_path / "m.mrk.json", MOVING_RAS, LABELS, statuses={2: "missing"})
    with pytest.raises(InputError, match="point 'P2' is marked skipped"):
        read_points(tmp_path / "m.mrk.json")  # readers that cannot leave it out say so
    assert read_points_file(tmp_path / "m.mrk.json", skipped_ok=True).skipped == ["P2"]
    assert prealign(tmp_path) == (0, ["r.csv", "s.json", "t.h5"])
    summary = json.loads((tmp_path / "out" / "s.json").read_text())
    assert [p["label"] for p in summary["points"]] == ["P0", "P1", "P3", "P4", "P5"]
    assert (
        "moving point 'P2' in m.mrk.json is marked skipped (not visible in that image): left out"
        in summary["warnings"][0]
    )
    capsys.readouterr()
    # Paired by order (no common labels) a skipped point would shift every later pair: refused.
    markups(tmp_path / "f.mrk.json", FIXED_RAS, [f"F{i}" for i in range(6)])
    for written in (tmp_path / "out").iterdir():
        written.unlink()
    assert prealign(tmp_path) == (2, [])
    assert "is marked skipped" in capsys.readouterr().err


# --------------------------------------------------------------------------- F13: pairing words
def test_pairing_messages_name_the_repeated_label_and_missing_labels():
    with pytest.raises(InputError, match=r"cannot be paired by label \(label 'P2' appears twice in the fixed list\)"):
        fit_landmarks(FIXED_RAS, MOVING_RAS[:5], "rigid", ["P0", "P1", "P2", "P2", "P4", "P5"], LABELS[:5])
    unlabelled = fit_landmarks(FIXED_RAS, MOVING_RAS, "rigid", [""] * 6, [""] * 6)
    assert unlabelled.paired_by == "order" and unlabelled.fre_rms_mm < 1e-9
    (warning,) = [w for w in unlabelled.warnings if "paired by order" in w]
    assert warning.startswith("points are paired by order because the points have no labels: label them alike")


# --------------------------------------------------------------------------- F7, F11, F4: the record
def test_the_summary_records_version_command_absolute_inputs_systems_grid_and_mirror(tmp_path, monkeypatch):
    markups(tmp_path / "f.mrk.json", FIXED_RAS, LABELS, system="LPS")
    mirrored = MOVING_RAS * [-1.0, 1.0, 1.0]  # a mirrored section: kept, with a warning, and recorded
    markups(tmp_path / "m.mrk.json", mirrored, LABELS)
    monkeypatch.chdir(tmp_path)
    argv = ["prealign", "--fixed-points", "f.mrk.json", "--moving-points", "m.mrk.json", "--type", "tps",
            "--output-transform", "t.h5", "--json", "s.json"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["library_version"] == __version__
    assert summary["command"] == "mmreg " + " ".join(argv)
    assert summary["inputs"]["fixed_points"] == os.path.join(str(tmp_path), "f.mrk.json")
    assert summary["inputs"]["reference_image"] is None
    assert summary["points_systems"] == {
        "fixed_points": {"system": "LPS", "declared": 'its "coordinateSystem": "LPS"'},
        "moving_points": {"system": "RAS", "declared": 'its "coordinateSystem": "RAS"'},
    }
    grid = summary["field_grid"]
    assert grid["source"] == "box around the fixed points" and grid["spacing_mm"] == [2.0, 2.0, 2.0]
    assert not [w for w in summary["warnings"] if "tear" in w or "box" in w]
    assert summary["transform"]["mirrors"] is True and summary["transform"]["determinant"] == pytest.approx(
        -1, abs=1e-6
    )


def test_a_tps_on_the_fixed_image_records_that_grid_and_does_not_warn(tmp_path):
    image = sitk.Image([30, 30, 30], sitk.sitkUInt8)
    image.SetSpacing([3.0] * 3)
    image.SetOrigin([-45.0] * 3)
    write_image(image, tmp_path / "fixed.nrrd")
    markups(tmp_path / "f.mrk.json", FIXED_RAS, LABELS)
    markups(tmp_path / "m.mrk.json", MOVING_RAS, LABELS)
    assert prealign(tmp_path, "--type", "tps", "--fixed-image", tmp_path / "fixed.nrrd")[0] == 0
    summary = json.loads((tmp_path / "out" / "s.json").read_text())
    # The fixed image's 30 x 30 x 30 grid, grown on each side by the bend's fade.
    assert summary["field_grid"]["source"] == "fixed image" and min(summary["field_grid"]["size"]) > 30
    assert summary["transform"]["mirrors"] is False
