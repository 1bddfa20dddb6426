"""Landmark checks that report each defect once, by the check that names its cause (a swap is not also a
mirror, a wrong scale or two outliers; a mirror is not also a swap or a wrong scale), outliers, and
points refused before any work when they all lie outside their image (with the RAS<->LPS fix)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points
from MultimodalRegistrationLib.landmarks.bounds import check_points_inside
from MultimodalRegistrationLib.landmarks.fit import fit_landmarks
from MultimodalRegistrationLib.landmarks.models import fit_rms
from MultimodalRegistrationLib.landmarks.pairing import swapped_rms
from MultimodalRegistrationLib.landmarks.points_io import read_points_file, write_points_csv

TRUTH = rigid_transform(20.0, (1.0, 2.0, 3.0), (10.0, -5.0, 8.0))  # fixed -> moving, LPS mm


def pairs(count, seed, noise=0.5, truth=TRUTH):
    """Non-coplanar fixed landmarks (LPS mm) and their moving counterparts under ``truth``, with noise."""
    fixed = np.random.default_rng(seed).uniform(-60, 60, size=(count, 3))
    moving = truth.transform_points(fixed) + np.random.default_rng(seed + 1000).normal(0, noise, fixed.shape)
    return fixed, moving


def fit(fixed_lps, moving_lps, kind):
    labels = [f"L{i}" for i in range(len(fixed_lps))]
    return fit_landmarks(lps_ras_points(fixed_lps), lps_ras_points(moving_lps), kind, labels, labels)


def about(result, text):
    return [warning for warning in result.warnings if text in warning]


# --------------------------------------------------------------------------- one defect, one warning
# Each of these gave a second, false warning before: a mirror (rigid 6/3, similarity 6/3, affine 6/3), a
# wrong scale (similarity 6/0) or a negative determinant and a wrong scale (affine 6/0).
@pytest.mark.parametrize(
    "kind, count, seed",
    [("rigid", 6, 3), ("rigid", 8, 1), ("similarity", 6, 0), ("similarity", 6, 3), ("affine", 6, 0), ("affine", 6, 3)],
)
def test_a_swapped_pair_gives_exactly_one_warning(kind, count, seed):
    fixed, moving = pairs(count, seed)
    moving[[1, 4]] = moving[[4, 1]]
    result = fit(fixed, moving, kind)
    (warning,) = result.warnings
    assert warning.startswith("points 'L1' and 'L4' look swapped") and "check their labels" in warning


# Each of these gave a false swap (rigid 7/0 and 8/0, similarity 7/0) or a wrong scale (similarity 8/4) before.
@pytest.mark.parametrize(
    "kind, count, seed",
    [("rigid", 7, 0), ("rigid", 8, 0), ("similarity", 7, 0), ("similarity", 8, 4), ("affine", 8, 0)],
)
def test_a_mirrored_list_gives_exactly_one_warning(kind, count, seed):
    fixed, moving = pairs(count, seed)
    moving[:, 0] *= -1  # the moving list mirrored left <-> right
    result = fit(fixed, moving, kind)
    (warning,) = result.warnings
    assert warning.startswith("only a mirror image fits these points") and "left/right swapped" in warning


def test_prealign_reports_a_swapped_pair_once(tmp_path, capsys):
    fixed, moving = pairs(6, 3)
    moving[[1, 4]] = moving[[4, 1]]
    labels = [f"L{i}" for i in range(6)]
    write_points_csv(tmp_path / "fixed.csv", lps_ras_points(fixed), labels)
    write_points_csv(tmp_path / "moving.csv", lps_ras_points(moving), labels)
    argv = ["prealign", "--fixed-points", tmp_path / "fixed.csv", "--moving-points", tmp_path / "moving.csv"]
    assert main([*map(str, argv), "--output-transform", str(tmp_path / "T.h5")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "'L1' and 'L4' look swapped" in warnings[0]


# --------------------------------------------------------------------------- true positives stay
@pytest.mark.parametrize("kind", ["rigid", "similarity", "affine"])
def test_a_misplaced_point_is_named_as_an_outlier(kind):
    fixed, moving = pairs(8, 2)
    moving[5] += [15.0, -10.0, 8.0]  # 20 mm off: placed on another feature
    result = fit(fixed, moving, kind)
    (warning,) = result.warnings
    assert warning.startswith(f"point 'L5' does not fit with the others: {'an' if kind == 'affine' else 'a'} {kind}")
    miss = float(warning.split("misses its moving point by ")[1].split(" mm")[0])
    assert 15 < miss < 25 and "check the pair, or delete it" in warning


def test_a_swap_and_a_misplaced_point_are_each_named_once():
    fixed, moving = pairs(10, 4)
    moving[[1, 4]] = moving[[4, 1]]
    moving[7] += [0.0, 18.0, -6.0]
    result = fit(fixed, moving, "rigid")
    assert len(result.warnings) == 2
    assert about(result, "'L1' and 'L4' look swapped") and about(result, "point 'L7' does not fit")


def test_a_mirror_and_a_swap_inside_it_are_each_named_once():
    fixed, moving = pairs(8, 0)
    moving[:, 0] *= -1
    moving[[2, 5]] = moving[[5, 2]]
    result = fit(fixed, moving, "rigid")
    assert len(result.warnings) == 2
    assert "with the swapped pairs named below undone" in result.warnings[0]
    (swap,) = about(result, "look swapped")
    assert "'L2' and 'L5'" in swap and "mirror-image rigid RMS" in swap


@pytest.mark.parametrize("kind", ["similarity", "affine"])
def test_a_swap_does_not_hide_a_true_scale_error(kind):
    scaled = TRUTH @ Transform.from_matrix(np.diag([2.0, 2.0, 2.0, 1.0]))  # a wrong voxel size: 2x
    fixed, moving = pairs(8, 1, truth=scaled)
    moving[[1, 4]] = moving[[4, 1]]
    result = fit(fixed, moving, kind)
    assert len(result.warnings) == 2 and about(result, "look swapped") and about(result, "check image spacing")
    assert "2.00" in about(result, "check image spacing")[0]


def test_several_swaps_among_many_points_are_swaps_not_outliers():
    """No single swap halves the RMS here; each is confirmed by the pairs fitting like the others once swapped."""
    fixed, moving = pairs(40, 2, noise=1.0)
    moving[[0, 5]] = moving[[5, 0]]
    moving[[2, 7]] = moving[[7, 2]]
    result = fit(fixed, moving, "rigid")
    assert len(result.warnings) == 2, result.warnings
    assert about(result, "'L0' and 'L5' look swapped") and about(result, "'L2' and 'L7' look swapped")


@pytest.mark.parametrize("kind", ["translation", "rigid", "similarity", "affine"])
def test_the_swap_search_shortcut_equals_a_refit(kind):
    rng = np.random.default_rng(5)
    fixed = rng.uniform(-60, 60, (9, 3))
    moving = TRUTH.transform_points(fixed) + rng.normal(0, 3.0, fixed.shape)
    moving[[0, 3]] = moving[[3, 0]]
    first, second = np.triu_indices(9, k=1)
    fast = swapped_rms(kind, fixed, moving, first, second)
    for k, (i, j) in enumerate(zip(first, second)):
        swapped = moving.copy()
        swapped[[i, j]] = swapped[[j, i]]
        assert fast[k] == pytest.approx(fit_rms(kind, fixed, swapped), abs=1e-6)


# --------------------------------------------------------------------------- points inside their image
def box(origin_lps, size=20, spacing=4.0):
    image = sitk.Image([size] * 3, sitk.sitkFloat32)
    image.SetSpacing([spacing] * 3)
    image.SetOrigin(origin_lps)
    return image


FIXED_ORIGIN = (20.0, 30.0, -40.0)  # LPS: x 18..98, y 28..108, z -42..38 mm (voxel edges); off the origin,
# so that negating x and y (RAS <-> LPS) sends points inside it far outside it


def scene(tmp_path, fixed_file="fixed.csv", fixed_writer=None):
    """Fixed and moving images and point files: the moving ones right, the fixed ones by ``fixed_writer``."""
    fixed = np.random.default_rng(1).uniform([30, 40, -30], [90, 100, 30], size=(7, 3))  # LPS, inside
    moving = fixed + [5.0, -4.0, 3.0]
    labels = [f"L{i}" for i in range(7)]
    write_image(box(FIXED_ORIGIN), tmp_path / "fixed.nrrd")
    write_image(box((0.0, 0.0, -60.0), size=30), tmp_path / "moving.nrrd")
    (fixed_writer or write_lps_as_ras_csv)(tmp_path / fixed_file, fixed, labels)
    write_points_csv(tmp_path / "moving.csv", lps_ras_points(moving), labels)
    return fixed, labels


def write_lps_as_ras_csv(path, points_lps, labels):
    """The classic mistake: LPS numbers (from ITK or Python tools) under the RAS header x,y,z."""
    write_points_csv(path, points_lps, labels)


def write_lps_as_ras_fcsv(path, points_lps, labels, header=True):
    lines = ["# Markups fiducial file version = 4.11"] + (["# CoordinateSystem = RAS"] if header else [])
    lines.append("# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID")
    lines += [
        f"{i},{p[0]},{p[1]},{p[2]},0,0,0,1,1,1,0,{label},," for i, (p, label) in enumerate(zip(points_lps, labels))
    ]
    path.write_text("\n".join(lines) + "\n")


def write_ras_as_lps_json(path, points_lps, labels):
    """The reverse mistake: RAS numbers in a markups file that says LPS."""
    control = [
        {"label": label, "position": list(map(float, p))} for p, label in zip(lps_ras_points(points_lps), labels)
    ]
    markups = [{"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "controlPoints": control}]
    path.write_text(json.dumps({"markups": markups}))


def snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "name, writer, fix",
    [
        ("fixed.csv", write_lps_as_ras_csv, "name the columns l,p,s instead of x,y,z in fixed.csv"),
        ("fixed.fcsv", write_lps_as_ras_fcsv, "change the line '# CoordinateSystem = LPS' in fixed.fcsv"),
        (
            "fixed.fcsv",
            lambda path, points, labels: write_lps_as_ras_fcsv(path, points, labels, header=False),
            "add the line '# CoordinateSystem = LPS' in fixed.fcsv",
        ),
        ("fixed.mrk.json", write_ras_as_lps_json, 'set "coordinateSystem": "RAS" in fixed.mrk.json'),
    ],
)
def test_prealign_refuses_points_in_the_other_convention_and_names_the_fix(tmp_path, capsys, name, writer, fix):
    scene(tmp_path, name, writer)
    before = snapshot(tmp_path)
    argv = [
        "prealign", "--fixed-points", tmp_path / name, "--moving-points", tmp_path / "moving.csv",
        "--fixed-image", tmp_path / "fixed.nrrd", "--moving-image", tmp_path / "moving.nrrd",
        "--output-transform", tmp_path / "out" / "T.h5", "--json", tmp_path / "out" / "s.json",
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: all 7 fixed points lie outside the fixed image (the nearest ")
    assert "but inside it after flipping RAS<->LPS (negating x and y)" in err
    other, said = ("RAS", "LPS") if name.endswith(".json") else ("LPS", "RAS")
    assert f"the coordinates are {other} but {name} says {said}" in err and fix in err
    assert "export the points from Slicer as .mrk.json or .fcsv" in err
    assert snapshot(tmp_path) == before  # inputs unchanged, nothing written


def test_prealign_refuses_points_from_another_image(tmp_path, capsys):
    fixed, labels = scene(tmp_path, "fixed.csv", lambda path, points, labels: None)
    write_points_csv(tmp_path / "fixed.csv", lps_ras_points(fixed + [300.0, 0.0, 0.0]), labels)
    before = snapshot(tmp_path)
    argv = [
        "prealign", "--fixed-points", tmp_path / "fixed.csv", "--moving-points", tmp_path / "moving.csv",
        "--fixed-image", tmp_path / "fixed.nrrd", "--output-transform", tmp_path / "T.h5",
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "all 7 fixed points lie outside the fixed image" in err and "flipping" not in err
    assert "check that the fixed points and the fixed image belong together" in err
    assert snapshot(tmp_path) == before


def test_prealign_with_points_inside_their_images_runs(tmp_path, capsys):
    fixed, labels = scene(tmp_path, "fixed.csv", lambda path, points, labels: None)
    write_points_csv(tmp_path / "fixed.csv", lps_ras_points(fixed), labels)
    argv = [
        "prealign", "--fixed-points", tmp_path / "fixed.csv", "--moving-points", tmp_path / "moving.csv",
        "--fixed-image", tmp_path / "fixed.nrrd", "--moving-image", tmp_path / "moving.nrrd",
        "--output-transform", tmp_path / "T.h5",
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    assert "warning" not in capsys.readouterr().err and (tmp_path / "T.h5").exists()


def test_some_points_outside_warn_and_say_when_a_flip_would_bring_them_all_inside():
    """The bounds check alone still only warns when some points lie inside (QA and guidance read it so): points
    near an edge are common. A landmark fit refuses such a list only when the frame check also finds the ~180
    degree turn, two independent checks naming one RAS/LPS mistake (test_landmark_refusals)."""
    image = box((-40.0, -40.0, -40.0))  # LPS -42..38 mm on each axis: not symmetric about 0, so a flip matters
    # 'a' is outside (x > 38) but inside flipped; 'b' is outside either way (z is not flipped); 'c' is inside.
    points = np.array([[39.5, 0.0, 0.0], [0.0, 0.0, 39.0], [-41.0, 5.0, 0.0]])
    (warning,) = check_points_inside(points, image, ["a", "b", "c"], "moving")
    assert warning.startswith("moving points 'a', 'b' lie outside the moving image (up to 1.5 mm beyond its edge)")
    assert "flipping" not in warning
    flipped_inside = np.array([[39.5, 10.0, 0.0], [10.0, 39.5, 0.0], [-10.0, 20.0, 0.0]])
    (warning,) = check_points_inside(flipped_inside, image, ["a", "b", "c"], "moving")
    assert "'a', 'b' lie outside" in warning and "all of them lie inside it after flipping RAS<->LPS" in warning
    assert "probably LPS read as RAS, or the reverse" in warning  # no file: no file-specific fix
    with pytest.raises(InputError, match=r"all 2 fixed points .* but inside it after flipping RAS<->LPS"):
        check_points_inside(np.array([[39.5, 39.5, 0.0], [40.0, 0.0, 0.0]]), image, ["a", "b"], "fixed")
    assert check_points_inside(points, None, ["a", "b", "c"], "fixed") == []


def test_qa_refuses_points_outside_their_image_before_any_work(tmp_path, capsys):
    scene(tmp_path)  # fixed.csv: LPS numbers under x,y,z
    Transform.from_matrix(np.eye(4)).write(tmp_path / "T.h5")
    before = snapshot(tmp_path)
    argv = [
        "qa", "--fixed", tmp_path / "fixed.nrrd", "--moving", tmp_path / "moving.nrrd", "--transform", tmp_path / "T.h5",
        "--fixed-points", tmp_path / "fixed.csv", "--moving-points", tmp_path / "moving.csv",
        "--report", tmp_path / "qa" / "report.html", "--stability", "3",
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "all 7 fixed points lie outside the fixed image" in err and "name the columns l,p,s" in err
    assert snapshot(tmp_path) == before


def test_qa_with_one_point_outside_runs_and_reports_it(tmp_path, capsys):
    fixed, labels = scene(tmp_path, "fixed.csv", lambda path, points, labels: None)
    for name, origin, size in (("fixed.nrrd", FIXED_ORIGIN, 20), ("moving.nrrd", (0.0, 0.0, -60.0), 30)):
        array = np.random.default_rng(0).normal(100, 20, (size,) * 3).astype(np.float32)
        array[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] += 300
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(box(origin, size=size))
        write_image(image, tmp_path / name)
    fixed[2, 2] = 50.0  # 12 mm above the fixed image
    write_points_csv(tmp_path / "fixed.csv", lps_ras_points(fixed), labels)
    Transform.from_matrix(np.eye(4)).write(tmp_path / "T.h5")
    argv = [
        "qa", "--fixed", tmp_path / "fixed.nrrd", "--moving", tmp_path / "moving.nrrd", "--transform", tmp_path / "T.h5",
        "--fixed-points", tmp_path / "fixed.csv", "--moving-points", tmp_path / "moving.csv",
        "--report", tmp_path / "qa.html", "--json", tmp_path / "qa.json",
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    expected = "fixed points 'L2' lie outside the fixed image (up to 12.0 mm beyond its edge)"
    assert expected in capsys.readouterr().err
    # The moved point also ends far off the others (44.5 mm against their 7.1): QA names it (its labels or place).
    warning, far = json.loads((tmp_path / "qa.json").read_text())["warnings"]
    assert far.startswith("landmarks far off the others after the transform ('L2' 44.5 mm")
    assert (
        warning.startswith(expected)
        and "lie outside the fixed image (up to 12.0 mm" in (tmp_path / "qa.html").read_text()
    )


def test_points_file_says_how_it_declared_its_coordinates(tmp_path):
    write_points_csv(tmp_path / "p.csv", [[1.0, 2.0, 3.0]], ["a"])
    system = read_points_file(tmp_path / "p.csv").system
    assert (system.system, system.other, system.declared) == ("RAS", "LPS", "its columns x,y,z")
    (tmp_path / "q.csv").write_text("label,l,p,s\na,1,2,3\n")
    read = read_points_file(tmp_path / "q.csv")
    assert np.allclose(read.points_ras, [[-1, -2, 3]]) and read.system.fix.startswith("name the columns x,y,z")


def test_landmarks_paired_one_place_off_are_named_as_not_fitting_together():
    """Five landmarks in a gland (15 mm spread), the moving list starting one feature later: no pair stands out
    and no swap explains it, so the fit was taken silently (a TRUS start turned 162 degrees, 22 mm off). Now a
    warning says the pairs do not fit together; the right pairs, with 1.5 mm of click noise, do not warn."""
    from MultimodalRegistrationLib.core.rotations import axis_angle_matrices
    from MultimodalRegistrationLib.landmarks.models import fit_model
    from MultimodalRegistrationLib.landmarks.pairing import pairing_warnings

    rng = np.random.default_rng(3)
    fixed = np.array([[12.0, 0, 3], [-10, 6, -2], [2, -13, 5], [-4, 3, 14], [6, 9, -12]])
    turn = axis_angle_matrices(np.deg2rad([[10.0, -20.0, 15.0]]))[0]
    moving = fixed @ turn.T + [5.0, -8.0, 12.0] + rng.normal(0.0, 1.5 / np.sqrt(3), fixed.shape)
    labels = ["1", "2", "3", "4", "5"]
    assert pairing_warnings("rigid", fit_model("rigid", fixed, moving), fixed, moving, labels, "label") == []
    shifted = np.roll(moving, 1, axis=0)
    said = pairing_warnings("rigid", fit_model("rigid", fixed, shifted), fixed, shifted, labels, "order")
    assert len(said) == 1 and said[0].startswith("the landmarks do not fit together: a rigid fit leaves"), said
    assert "paired by their order" in said[0]



def test_lists_that_fit_the_images_only_exchanged_are_named_exchanged():
    """A helper's real spinal cords at a 45 degree start: 13 and 7 of 20 points outside their own images, each list
    warned as "placed on another volume", the fit 70 mm wrong; exchanged, every point lies inside. Only a list wholly
    outside had been called exchanged."""
    from MultimodalRegistrationLib.landmarks.bounds import PointBounds

    def box(origin_x: float) -> sitk.Image:
        image = sitk.Image([50, 20, 20], sitk.sitkUInt8)
        image.SetSpacing([2.0, 2.0, 2.0])
        image.SetOrigin([origin_x, 0.0, 0.0])
        return image

    fixed_image, moving_image = box(0.0), box(50.0)  # x from 0 to 100 mm, and from 50 to 150 mm
    on_moving = np.array([[x, 20.0, 20.0] for x in (60, 80, 105, 120, 140)])  # placed on the moving image
    on_fixed = np.array([[x, 20.0, 20.0] for x in (10, 30, 60, 80, 95)])  # placed on the fixed image
    labels = [f"P{i}" for i in range(5)]
    said = PointBounds(fixed_image, moving_image).check(on_moving, on_fixed, labels, labels)
    assert said[-1].startswith("the fixed and moving point lists look exchanged: 5 points lie outside their own "
                               "image, and none once the lists are exchanged")  # fmt: skip
    assert not any("exchanged" in warning for warning in PointBounds(fixed_image, moving_image).check(
        on_fixed, on_moving, labels, labels))  # given the right way round  # fmt: skip
    # A fixed image that holds the moving one: moving points beyond the moving image's edge are not an exchange.
    head = sitk.Image([100, 20, 20], sitk.sitkUInt8)
    head.SetSpacing([2.0, 2.0, 2.0])
    spilled = np.array([[x, 20.0, 20.0] for x in (60, 80, 155, 165, 175)])  # three beyond the moving image
    said = PointBounds(head, moving_image).check(on_fixed, spilled, labels, labels)
    assert said and not any("exchanged" in warning for warning in said)
