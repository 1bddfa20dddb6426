"""QA refuses bad input before any stability restart, counts only the restarts that finished, warns when the
images agree less after the transform (or the result was made from other volumes), refuses landmarks paired by
order against their labels, and names segments without a partner. Coarse 4 mm phantoms; real MRML scenes."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.labels import set_label_names
from MultimodalRegistrationLib.core.metric import shrink_to_spacing
from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points
from MultimodalRegistrationLib.landmarks.fit import pair_landmarks
from MultimodalRegistrationLib.landmarks.points_io import write_points_csv
from MultimodalRegistrationLib.process import stability as restarts
from MultimodalRegistrationLib.process.worker import WorkerFailure
from MultimodalRegistrationLib.qa.assess import assess_registration
from MultimodalRegistrationLib.qa.overlap import segmentation_overlap
from MultimodalRegistrationLib.qa.report import render_html


@pytest.fixture(scope="module")
def coarse(small_pair):
    """The phantom pair at 4 mm and its true transform."""
    return shrink_to_spacing(small_pair.fixed, 4.0), shrink_to_spacing(small_pair.moving, 4.0), small_pair.truth


@pytest.fixture
def no_restarts(monkeypatch):
    """Record the restarts that would run (none must, before bad input is refused)."""
    started = []
    monkeypatch.setattr(restarts, "_run_jobs", lambda jobs, *rest: started.append(jobs) or [])
    return started


def skull(pair):
    fixed, moving, truth = pair
    fixed_labels = sitk.Cast(fixed > 500, sitk.sitkUInt8)
    return fixed_labels, sitk.Resample(fixed_labels, moving, truth.inverse().sitk, sitk.sitkNearestNeighbor, 0)


# --------------------------------------------------------------------------- finding 3: checks before restarts
def test_every_input_check_runs_before_any_restart(coarse, small_pair, no_restarts):
    fixed, moving, truth = coarse
    fixed_labels, moving_labels = skull(coarse)
    empty = sitk.Image(moving_labels.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(moving_labels)
    points = lps_ras_points(small_pair.head_points[:6])
    moved = lps_ras_points(truth.transform_points(small_pair.head_points[:6]))
    labels = [f"L{i}" for i in range(6)]
    cases = {
        "both the fixed labels and the moving labels": {"fixed_labels": fixed_labels},
        "moving labelmap is empty": {"fixed_labels": fixed_labels, "moving_labels": empty},
        "fit points NOPE are not among": {"fixed_points_ras": points, "moving_points_ras": moved,
                                          "fixed_point_labels": labels, "moving_point_labels": labels,
                                          "fit_labels": ["NOPE"]},
        "a landmark list is empty": {"fixed_points_ras": points, "moving_points_ras": np.zeros((0, 3))},
        "the same label in both lists": {"fixed_points_ras": points, "moving_points_ras": moved,
                                         "fixed_point_labels": labels,
                                         "moving_point_labels": ["L1", "L0", "x2", "x3", "x4", "x5"]},
    }  # fmt: skip
    for said, options in cases.items():
        with pytest.raises(InputError, match=said):
            restarts.assess_with_restarts(fixed, moving, truth, stability_restarts=3, **options)
    assert no_restarts == []


def test_nodes_refuse_an_empty_labelmap_before_any_restart(scene, coarse, no_restarts):
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.qa import assess_nodes, qa_parameters

    fixed, moving, truth = coarse
    fixed_labels, moving_labels = skull(coarse)
    stages = []
    nodes = {
        "transform": mrml.transform_to_node(scene, truth, name="result"),
        "fixedVolume": mrml.volume_node_from_image(scene, fixed, "CT"),
        "movingVolume": mrml.volume_node_from_image(scene, moving, "MR"),
        "fixedSegmentation": mrml.volume_node_from_image(scene, fixed_labels, "CT skull", labelmap=True),
        "movingSegmentation": mrml.volume_node_from_image(scene, moving_labels * 0, "MR empty", labelmap=True),
    }
    with pytest.raises(InputError, match="the moving labelmap .MR empty. has no label inside the moving volume .MR."):
        assess_nodes(
            qa_parameters(stability=True, stabilityRestarts=2, **nodes), progress=lambda f, s: stages.append(s)
        )
    assert no_restarts == [] and stages == []


# --------------------------------------------------------------------------- finding 1: relative paths
def test_relative_paths_reach_the_restarts_and_the_report_as_absolute(coarse, tmp_path, monkeypatch):
    from MultimodalRegistrationLib.cli.main import main

    fixed, moving, truth = coarse
    write_image(fixed, tmp_path / "ct.nrrd")
    write_image(moving, tmp_path / "mr.nrrd")
    truth.write(tmp_path / "T.h5")
    given = []

    def finish(jobs, *rest):  # each restart returns the truth; records the files it was given
        given.extend((job.fixed, job.moving) for job in jobs)
        for job in jobs:
            truth.write(job.output_transform)
        return [(object(), None, 0.1)] * len(jobs)

    monkeypatch.setattr(restarts, "_run_jobs", finish)
    monkeypatch.chdir(tmp_path)
    code = main(["qa", "--fixed", "ct.nrrd", "--moving", "mr.nrrd", "--transform", "T.h5", "--stability", "2",
                 "--report", "out/qa.html", "--json", "out/qa.json"])  # fmt: skip
    assert code == 0
    assert given == [(str(tmp_path / "ct.nrrd"), str(tmp_path / "mr.nrrd"))] * 2
    record = json.loads((tmp_path / "out" / "qa.json").read_text())
    assert record["inputs"]["fixed"] == str(tmp_path / "ct.nrrd")
    assert record["inputs"]["transform"] == str(tmp_path / "T.h5")
    assert record["stability"]["completed"] == 2 and record["stability"]["verdict"] == "stable"


# --------------------------------------------------------------------------- finding 4: restarts that finished
@pytest.mark.parametrize("finished, verdict", [(1, "inconclusive"), (2, "inconclusive"), (3, "stable")])
def test_the_verdict_counts_only_the_restarts_that_finished(coarse, monkeypatch, finished, verdict):
    from MultimodalRegistrationLib.nodes.qa_table import metric_rows, summary_text

    fixed, moving, truth = coarse

    def some_fail(jobs, *rest):
        outcomes = []
        for index, job in enumerate(jobs):
            if index < finished:
                truth.write(job.output_transform)
                outcomes.append((object(), None, 1.0))
            else:
                outcomes.append((None, WorkerFailure("cancelled", "stopped after 60 s, the time budget"), 60.0))
        return outcomes

    monkeypatch.setattr(restarts, "_run_jobs", some_fail)
    report = restarts.assess_with_restarts(fixed, moving, truth, stability_restarts=5)
    stability = report.stability
    assert (stability.restarts, stability.finished, stability.verdict) == (5, finished, verdict)
    assert stability.spread_p95_mm == pytest.approx(0.0, abs=1e-6)
    rows = {metric: value for metric, value, _ in metric_rows(report)}
    assert rows["stability restarts finished"] == f"{finished} of 5" and rows["stability verdict"] == verdict
    assert f"Stability: {verdict} ({finished} of 5 restarts finished" in summary_text(report)
    assert f"{finished} of 5 restarts finished" in render_html(report)
    assert report.to_dict()["stability"]["completed"] == finished
    assert any("stability inconclusive" in warning for warning in report.warnings) == (verdict == "inconclusive")


# --------------------------------------------------------------------------- finding 2: agreement falls
def test_a_transform_applied_twice_draws_a_warning(coarse):
    fixed, moving, truth = coarse
    hardened = sitk.Resample(moving, fixed, truth.sitk, sitk.sitkLinear, 0.0)  # the result already in the image
    report = assess_registration(fixed, hardened, truth)
    before, after = report.images_before.mutual_information, report.images_after.mutual_information
    assert before > after + 0.1
    assert any(w.startswith("the images agree less after the transform") for w in report.warnings), report.warnings
    good = assess_registration(fixed, moving, truth)
    assert not any("agree less" in warning for warning in good.warnings)


def test_images_apart_and_segments_outside_their_image_are_said(coarse):
    """A moving image 1000 mm away read "MI - -> -" and exit 0, and a labelmap saved 500 mm from its image read Dice
    0 before and after, both without a word (a helper's sweep)."""
    from MultimodalRegistrationLib.qa.assess import QAOptions

    fixed, moving, truth = coarse
    fixed_labels, moving_labels = skull(coarse)
    far = sitk.Image(moving)
    far.SetOrigin(tuple(np.add(moving.GetOrigin(), (0.0, 0.0, 1000.0))))
    apart = assess_registration(fixed, far, truth)
    assert apart.images_after.overlap_fraction == 0.0
    # A corner's worth of overlap (under the metric's 100 samples) read "MI - -> -" without a word too (a reviewer).
    from MultimodalRegistrationLib.core.images import physical_extent_mm

    corner = sitk.Image(moving)
    corner.SetOrigin(tuple(np.add(fixed.GetOrigin(), physical_extent_mm(fixed) - 6.0)))  # their far corners meet
    thin = assess_registration(fixed, corner, Transform.identity())
    assert 0.0 < thin.images_after.overlap_fraction < 0.01 and thin.images_after.mutual_information is None
    assert any(w.startswith("hardly any of the fixed image") for w in thin.warnings)
    assert any(w.startswith("hardly any of the fixed image (or its mask) maps inside the moving image") for w in apart.warnings)
    # A fixed image in micrometres read as mm lies wholly inside the moving one yet fills no measuring voxel: it had
    # read "hardly any ... maps inside ... (overlap 100.00%)" (a helper's sweep).
    tiny = sitk.Image(fixed)
    tiny.SetSpacing([s * 0.00325 for s in fixed.GetSpacing()])
    tiny.SetOrigin(moving.TransformContinuousIndexToPhysicalPoint([n / 2 for n in moving.GetSize()]))
    small = assess_registration(tiny, moving, Transform.identity())
    assert small.images_after.overlap_fraction == 1.0 and small.images_after.mutual_information is None
    assert any(w.startswith("the fixed image (or its mask) holds too few voxels on the measuring grid") for w in
               small.warnings), small.warnings  # fmt: skip
    good = assess_registration(fixed, moving, truth, QAOptions(fixed_labels=fixed_labels, moving_labels=moving_labels))
    assert not any("lie outside" in w or w.startswith("hardly any") for w in good.warnings), good.warnings
    assert good.segmentation.after[0].dice > 0.8
    moved = sitk.Image(moving_labels)
    moved.SetOrigin(tuple(np.add(moving_labels.GetOrigin(), (500.0, 0.0, 0.0))))
    outside = assess_registration(fixed, moving, truth, QAOptions(fixed_labels=fixed_labels, moving_labels=moved))
    assert outside.segmentation.after[0].dice == 0.0
    assert any(w.startswith("the moving segments lie outside the moving image") for w in outside.warnings)
    assert not any(w.startswith("the fixed segments lie outside") for w in outside.warnings)


def test_nodes_warn_about_swapped_volumes_and_a_result_hardened_into_the_moving_volume(scene, coarse):
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.qa import assess_nodes, qa_parameters
    from MultimodalRegistrationLib.nodes.registration import ATTRIBUTE_PREFIX

    fixed, moving, truth = coarse
    ct = mrml.volume_node_from_image(scene, fixed, "CT")
    mr = mrml.volume_node_from_image(scene, moving, "MR")
    result = mrml.transform_to_node(scene, truth, name="result")
    result.SetAttribute(ATTRIBUTE_PREFIX + "fixedNodeID", ct.GetID())
    result.SetAttribute(ATTRIBUTE_PREFIX + "movingNodeID", mr.GetID())
    metrics, _ = assess_nodes(qa_parameters(transform=result, fixedVolume=ct, movingVolume=mr))
    assert metrics.warnings == []
    recorded = metrics.images_after.mutual_information
    result.SetAttribute(ATTRIBUTE_PREFIX + "metricAfter", f"{recorded:.6f}")

    swapped, _ = assess_nodes(qa_parameters(transform=result, fixedVolume=mr, movingVolume=ct))
    assert "the volumes are swapped here; swap them" in swapped.warnings[0]

    # The module's Invert, then QA: it blamed a hardened moving volume (a helper's sweep); it names the inversion.
    from MultimodalRegistrationLib.nodes.result_extras import invert_result

    invert_result(result)
    inverted, _ = assess_nodes(qa_parameters(transform=result, fixedVolume=ct, movingVolume=mr))
    assert inverted.warnings[0].startswith("'result (-)' was inverted since its registration: it maps moving to fixed")
    invert_result(result)

    mr.SetAndObserveTransformNodeID(result.GetID())
    mr.HardenTransform()  # the result hardened into the moving volume, then measured again
    hardened, _ = assess_nodes(qa_parameters(transform=result, fixedVolume=ct, movingVolume=mr))
    measured = hardened.images_after.mutual_information
    assert recorded - measured > 0.2
    assert f"recorded mutual information {recorded:.3f} nats" in hardened.warnings[0]
    assert f"QA measures {measured:.3f}" in hardened.warnings[0]
    assert any("agree less after the transform" in warning for warning in hardened.warnings)


# --------------------------------------------------------------------------- finding 5: order against labels
def test_lists_that_share_labels_at_other_places_are_not_paired_by_order():
    points = np.arange(18, dtype=float).reshape(6, 3)
    fixed = ["A", "B", "C", "D", "E", "F"]
    with pytest.raises(InputError, match="label 'A' is point 1 in the fixed list but point 2 in the moving list"):
        pair_landmarks(points, points[[1, 0, 2, 3, 4, 5]], fixed, ["B", "A", "x3", "x4", "x5", "x6"])
    # Shared labels at the same places still pair by order, with the warning; all labels shared pair by label.
    _, moving, _, how, warnings = pair_landmarks(points, points, fixed, ["A", "B", "x3", "x4", "x5", "x6"])
    assert how == "order" and np.array_equal(moving, points) and "paired by order" in warnings[0]
    _, moving, _, how, _ = pair_landmarks(points, points[::-1], fixed, fixed[::-1])
    assert how == "label" and np.array_equal(moving, points)


def test_mmreg_qa_refuses_landmarks_paired_against_their_labels(coarse, small_pair, tmp_path, capsys):
    from MultimodalRegistrationLib.cli.main import main

    fixed, moving, truth = coarse
    write_image(fixed, tmp_path / "ct.nrrd")
    write_image(moving, tmp_path / "mr.nrrd")
    truth.write(tmp_path / "T.h5")
    points = small_pair.head_points[:6]
    write_points_csv(tmp_path / "f.csv", lps_ras_points(points), ["A", "B", "C", "D", "E", "F"])
    order = [1, 0, 2, 3, 4, 5]
    write_points_csv(tmp_path / "m.csv", lps_ras_points(truth.transform_points(points[order])),
                     ["B", "A", "x3", "x4", "x5", "x6"])  # fmt: skip
    code = main(["qa", "--fixed", str(tmp_path / "ct.nrrd"), "--moving", str(tmp_path / "mr.nrrd"), "--transform",
                 str(tmp_path / "T.h5"), "--fixed-points", str(tmp_path / "f.csv"), "--moving-points",
                 str(tmp_path / "m.csv"), "--report", str(tmp_path / "out" / "qa.html")])  # fmt: skip
    assert code == 2 and "label 'A' is point 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- finding 6: segments without partner
def test_segments_without_a_partner_are_named(coarse):
    fixed_skull, moving_skull = skull(coarse)
    fixed_two = sitk.Image(fixed_skull)
    fixed_two[5, 5, 5] = 2
    fixed_two = set_label_names(fixed_two, {1: "skull", 2: "brain"})
    moving_two = sitk.Image(moving_skull)
    moving_two[5, 5, 5] = 2
    moving_two = set_label_names(moving_two, {1: "Skull", 2: "Brain tissue"})
    overlap = segmentation_overlap(fixed_two, moving_two, coarse[2])
    dice = {row.name: round(row.dice, 3) for row in overlap.after}
    assert dice["skull"] > 0.8 and dice["brain"] == 0.0 and dice["Brain tissue"] == 0.0
    advice = "so its Dice is 0: give the same structure the same name (case, spaces and underscores do not count) or "
    advice += "label value in both"
    assert overlap.warnings == [
        f"segment 'brain' (fixed) has no partner in the moving labelmap (moving only: 'Brain tissue'), {advice}",
        f"segment 'Brain tissue' (moving) has no partner in the fixed labelmap (fixed only: 'brain'), {advice}",
    ]
    paired = segmentation_overlap(fixed_two, set_label_names(sitk.Image(moving_two), {1: "Skull", 2: "BRAIN"}),
                                  coarse[2])  # fmt: skip
    assert paired.warnings == []
    # Named apart and paired as mmreg register's --segments pairs them (gland=prostate): QA had read them as two
    # unpaired segments, Dice 0 -> 0, and batch called the case 'check' (a helper's walk through the README).
    apart = segmentation_overlap(fixed_two, moving_two, coarse[2], pairs=["brain=Brain tissue"])
    dice_apart = {row.name: round(row.dice, 3) for row in apart.after}
    assert apart.warnings == [] and set(dice_apart) == {"skull", "brain"}
    assert dice_apart["brain"] == {row.name: round(row.dice, 3) for row in paired.after}["brain"]
    with pytest.raises(InputError, match="segment 'lesion' of 'brain=lesion' is not in the moving segmentation"):
        segmentation_overlap(fixed_two, moving_two, coarse[2], pairs=["brain=lesion"])
    # Unnamed, they pair by label value as the registration's --segments 2=3 pairs them (QA had handled names only).
    fixed_values, moving_values = (sitk.Image(image) for image in (fixed_skull, moving_skull))
    fixed_values[5, 5, 5], moving_values[5, 5, 5] = 2, 3
    by_value = segmentation_overlap(fixed_values, moving_values, coarse[2], pairs=["2=3"])
    assert {row.label for row in by_value.after} == {1, 2} and by_value.warnings == []
    assert {row.label: round(row.dice, 3) for row in by_value.after}[1] == dice["skull"]


def test_lists_without_a_common_label_pair_by_order_with_a_warning_unless_their_numbers_agree():
    points = np.arange(12, dtype=float).reshape(4, 3)
    # Slicer's own names: each list numbers its points; the numbers run alike, so the order is the pairing.
    *_, how, warnings = pair_landmarks(points, points, ["TRUS-1", "TRUS-2", "TRUS-3", "TRUS-4"],
                                       ["MR-1", "MR-2", "MR-3", "MR-4"])  # fmt: skip
    assert how == "order" and warnings == []
    # Numbers in another order (a helper's QA: TRE 81 -> 78 mm, reported without a word) or no numbers: warned.
    # A list without labels reads as 1, 2, ...: against labelled points those numbers confirm nothing (a helper's
    # QA: L1..L10 against an unlabelled list in reverse, TRE 68 mm without a word).
    for moving_labels in (["F-3", "F-1", "F-4", "F-2"], ["w", "x", "y", "z"]):
        *_, how, warnings = pair_landmarks(points, points, ["T1", "T2", "T3", "T4"], moving_labels)
        assert how == "order" and len(warnings) == 1
        assert warnings[0].startswith("points are paired by order because no label is in both lists (fixed: T1, T2, "
                                      f"T3, ...; moving: {', '.join(moving_labels[:3])}, ...)")  # fmt: skip
    *_, how, warnings = pair_landmarks(points, points, ["T1", "T2", "T3", "T4"], ["1", "2", "3", "4"])
    assert how == "order" and warnings[0].startswith("points are paired by order because the moving list has no "
                                                     "labels (read as 1, 2, ...) and the fixed list's do not say")  # fmt: skip


def test_two_segments_whose_label_values_were_exchanged_are_named(coarse):
    """Skull and a block inside it valued 1 and 2 on the fixed side, 2 and 1 on the moving: each Dice read 0 -> 0
    without a word (a helper's QA sweep)."""
    fixed, moving, truth = coarse
    fixed_two = sitk.Cast(fixed > 500, sitk.sitkUInt8)
    fixed_two[15:30, 15:30, 10:25] = 2
    exchanged = sitk.ChangeLabel(fixed_two, {1: 2, 2: 1})
    moving_two = sitk.Resample(exchanged, moving, truth.inverse().sitk, sitk.sitkNearestNeighbor, 0)
    overlap = segmentation_overlap(fixed_two, moving_two, truth)
    assert all(row.dice < 0.1 for row in overlap.after)
    swapped = [warning for warning in overlap.warnings if "rather than its partner" in warning]
    assert len(swapped) == 2 and swapped[0].startswith("fixed segment label 1 overlaps moving segment label 2 (Dice 0.84)")
    kept = sitk.Resample(fixed_two, moving, truth.inverse().sitk, sitk.sitkNearestNeighbor, 0)
    same = segmentation_overlap(fixed_two, kept, truth)
    assert all(row.dice > 0.8 for row in same.after)  # 0.84 on the coarse 4 mm grid, as the exchanged pair
    assert not [warning for warning in same.warnings if "rather than its partner" in warning]


def test_fit_points_named_with_a_comma_or_by_the_moving_lists_labels_are_found():
    """'eye, left' had been split into 'eye' and 'left' and refused; 'M-1' (the moving list's name for the point
    paired by order with 'F-1') had been refused as having no partner (a helper's QA sweep)."""
    from MultimodalRegistrationLib.qa.landmarks import paired_landmarks

    points = np.array([[0.0, 0, 0], [30, 0, 0], [0, 30, 0], [0, 0, 30], [20, 20, 20]])
    labels = ["eye, left", "eye, right", "nose", "chin", "ear"]
    *_, roles, how, _ = paired_landmarks(points, points + 1, labels, labels, ["eye, left", "nose,chin"])
    assert how == "label" and roles == ["fit", "target", "fit", "fit", "target"]
    fixed_names, moving_names = [f"F-{i}" for i in range(1, 6)], [f"M-{i}" for i in range(1, 6)]
    _, _, paired, roles, how, _ = paired_landmarks(points, points + 1, fixed_names, moving_names, ["M-1", "F-3"])
    assert how == "order" and paired == fixed_names and roles == ["fit", "target", "fit", "target", "target"]
    # 'l1 ' as the moving list writes the point that paired with fixed 'L1', case and spaces aside (a review)
    *_, roles, how, _ = paired_landmarks(points, points + 1, ["L1", "L2", "L3", "L4", "L5"],
                                         ["l1 ", "l2", "l3", "l4", "l5"], ["l1 "])  # fmt: skip
    assert how == "label" and roles == ["fit", "target", "target", "target", "target"]
    with pytest.raises(InputError, match="fit points M-9 are not among the paired landmarks"):
        paired_landmarks(points, points + 1, fixed_names, moving_names, ["M-9"])


def test_mmreg_qa_hands_fit_point_names_on_whole_for_the_labels_to_split(tmp_path):
    from MultimodalRegistrationLib.cli.main import build_parser
    from MultimodalRegistrationLib.cli.qa import qa_job

    arguments = build_parser().parse_args(["qa", "--fixed", "f.nrrd", "--moving", "m.nrrd", "--transform", "T.h5",
                                           "--report", str(tmp_path / "r.html"), "--fit-points", "eye, left", " nose "])
    assert qa_job(arguments).fit_points == ["eye, left", "nose"]
