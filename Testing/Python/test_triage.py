"""Triage without ground truth: real QA reports of a coarse phantom pair under known transforms (the truth,
identity, shifted out of view, mirrored, folding, unstable) get the verdicts and reasons they should, and
the cohort rule flags only the case far below the others of its engine and preset, also on metrics measured
on real registrations."""

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.phantom import make_phantom_pair
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform
from MultimodalRegistrationLib.qa.assess import QAOptions, assess_registration
from MultimodalRegistrationLib.qa.cohort_triage import (
    COHORT_Z,
    CohortRow,
    apply_cohort,
    cohort_outliers,
    robust_z,
    triage_cohort,
)
from MultimodalRegistrationLib.qa.stability import StabilityResult
from MultimodalRegistrationLib.qa.triage import Verdict, triage_case
from MultimodalRegistrationLib.registration.rules.nearby_pose import NEARBY_POSE_WARNING
from MultimodalRegistrationLib.registration.summary import Provenance, RegistrationSummary

# 4 mm voxels: a phantom pair in ~0.1 s and a QA report in ~0.1 s.
COARSE = {"ct_spacing": (4.0, 4.0, 4.0), "mr_spacing": (4.0, 4.0, 4.0)}


@pytest.fixture(scope="module")
def pair():
    return make_phantom_pair(**COARSE)


@pytest.fixture(scope="module")
def assess(pair):
    """QA report of the pair under a transform (fixed -> moving, LPS), cached per name."""
    cache = {}

    def report(name, transform):
        if name not in cache:
            cache[name] = assess_registration(pair.fixed, pair.moving, transform, QAOptions(jacobian_spacing_mm=4.0))
        return cache[name]

    return report


def shifted(pair, mm):
    """The truth, then a shift of ``mm`` along L in fixed space: the moving image slides out of view."""
    return pair.truth @ rigid_transform(0.0, (1.0, 0.0, 0.0), (mm, 0.0, 0.0))


def planted_fold(pair, strength, center=(10.0, -6.0, 8.0), sigma=12.0):
    """The truth after u_x = strength (x - x0) exp(-r^2 / 2 sigma^2) on the fixed grid: the Jacobian
    determinant at x0 is 1 + strength (a fold for strength < -1)."""
    fixed = pair.fixed
    size, spacing, origin = np.array(fixed.GetSize()), np.array(fixed.GetSpacing()), np.array(fixed.GetOrigin())
    axes = [origin[a] + spacing[a] * np.arange(size[a]) for a in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    offset = np.stack([x, y, z], axis=-1) - np.asarray(center)
    displacement = np.zeros_like(offset)
    displacement[..., 0] = strength * offset[..., 0] * np.exp(-(offset**2).sum(-1) / (2 * sigma**2))
    field = sitk.GetImageFromArray(displacement, isVector=True)
    field.CopyInformation(fixed)
    return pair.truth @ Transform.from_displacement_field(field)


def summary_of(report, engine="elastix", preset="rigid"):
    """The registration summary a run would have written with the report's numbers (before = identity)."""
    return RegistrationSummary(
        transform_kind=report.transform.kind,
        matrix_lps=report.transform.matrix_lps,
        has_inverse=False,
        metric_name="mutual_information",
        metric_before=report.images_before.mutual_information,
        metric_after=report.images_after.mutual_information,
        seconds=1.0,
        warnings=[],
        provenance=Provenance.from_dict({"engine": engine, "preset": preset}),
    )


def has(verdict, fragment):
    return any(fragment in reason for reason in verdict.reasons)


# --------------------------------------------------------------------------- one case
def test_the_true_transform_is_ok_with_no_reasons(pair, assess):
    report = assess("truth", pair.truth)
    verdict = triage_case(summary_of(report), report)
    assert verdict.verdict == "ok" and verdict.reasons == []
    # What the rules saw: MI 0.27 -> 0.64 nats, 79% overlap, a proper rotation.
    assert verdict.measures["metric_gain_nats"] > 0.3
    assert verdict.measures["overlap_after"] > 0.7
    assert verdict.measures["determinant"] == pytest.approx(1.0)
    assert triage_case(None, report).verdict == "ok"  # the QA report alone says the same


def test_identity_far_from_the_truth_did_not_improve_the_metric(pair, assess):
    report = assess("identity", Transform.identity())
    verdict = triage_case(summary_of(report), report)
    assert verdict.verdict == "check"
    assert [reason.split(":")[0] for reason in verdict.reasons] == ["the metric did not improve", "the QA warned"]
    assert NEARBY_POSE_WARNING in verdict.reasons[1]  # the images would correct it (QA's nearby search)
    assert verdict.measures["metric_gain_nats"] == 0.0 and verdict.measures["overlap_after"] > 0.6


def test_a_run_guided_by_segments_is_judged_by_their_overlap_not_by_the_metric(pair):
    """An MR -> TRUS run whose gland Dice went 0.20 -> 0.83 while the MI moved 0.053 -> 0.057 nats was flagged 'the
    metric did not improve' (every guided case of a TRUS cohort was). Here the skull, segmented on the CT and carried
    to the MR by the truth, guides; the summaries say the MI did not move."""
    fixed_labels = sitk.Cast(pair.fixed > 300, sitk.sitkUInt8)  # the skull
    moving_labels = sitk.Resample(fixed_labels, pair.moving, pair.truth.inverse().sitk, sitk.sitkNearestNeighbor)
    options = QAOptions(fixed_labels=fixed_labels, moving_labels=moving_labels, jacobian_spacing_mm=4.0)
    guidance = {"segments": [{"name": "1", "fixed_value": 1, "moving_value": 1}]}
    for name, transform, dice_gain in (("truth", pair.truth, True), ("identity", Transform.identity(), False)):
        report = assess_registration(pair.fixed, pair.moving, transform, options)
        flat = replace(summary_of(report), metric_after=report.images_before.mutual_information)
        guided = replace(flat, provenance=Provenance.from_dict({"engine": "elastix", "preset": "rigid",
                                                                "guidance": guidance}))  # fmt: skip
        verdict = triage_case(guided, report)
        before, after = verdict.measures["guiding_dice_before"], verdict.measures["guiding_dice_after"]
        assert not has(verdict, "the metric did not improve")
        if dice_gain:  # measured: 0.17 -> 0.96
            assert after > before + 0.5 and verdict.verdict == "ok", verdict.reasons
        else:
            assert after == before and has(verdict, "the guiding segments' overlap did not improve"), verdict.reasons
        assert has(triage_case(flat, report), "the metric did not improve")  # unguided, the MI rule as before


def test_a_moving_image_pushed_out_of_view_is_flagged_by_severity(pair, assess):
    # 200 mm off: 12% of the fixed image still overlaps (68% before), MI 0.27 -> 0.01 nats.
    far = triage_case(None, assess("shift200", shifted(pair, 200.0)))
    assert far.verdict == "check"
    assert has(far, "the metric got worse") and has(far, "the images overlap little")
    assert has(far, "left the fixed field of view")
    # 240 mm off: 3% overlaps, nothing but air.
    gone = triage_case(None, assess("shift240", shifted(pair, 240.0)))
    assert gone.verdict == "failed" and has(gone, "the images hardly overlap after registration")
    # 300 mm off: no voxel overlaps, no MI at all.
    none = triage_case(None, assess("shift300", shifted(pair, 300.0)))
    assert none.verdict == "failed" and none.measures["overlap_after"] == 0.0
    assert has(none, "hardly overlap")
    # 120 mm off: 41% overlaps, down from 68%: not yet half lost, so only the metric speaks.
    nearer = triage_case(None, assess("shift120", shifted(pair, 120.0)))
    assert nearer.verdict == "check" and not has(nearer, "overlap") and not has(nearer, "field of view")
    assert has(nearer, "the metric got worse")


def test_a_result_that_shrinks_the_tissue_has_not_left_the_field_of_view(pair, assess):
    """A cleared stack stored at 1 mm (audit: 294x340x198 voxels against a 161x185x155 head MRI at 1.5 mm) registered
    at its true size, 1.74x per axis from fixed to moving: the overlap falls from 85% to 23% of the fixed image, all
    that a box of its size can cover there (24%). Without the images' sizes the rule cannot tell, and flags it."""
    from MultimodalRegistrationLib.registration.summary import ImageDescription

    truth = assess("truth", pair.truth)

    def shrunk(overlap_after: float, sizes: bool = True):
        report = replace(truth, transform=replace(truth.transform, matrix_lps=np.diag([1.74, 1.74, 1.74, 1.0]).tolist()),
                         images_before=replace(truth.images_before, overlap_fraction=0.85),
                         images_after=replace(truth.images_after, overlap_fraction=overlap_after))  # fmt: skip
        summary = summary_of(report)
        summary.provenance.fixed = ImageDescription(size=[161, 185, 155], spacing_mm=[1.5, 1.5, 1.5])
        summary.provenance.moving = ImageDescription(size=[294, 340, 198], spacing_mm=[1.0, 1.0, 1.0])
        return triage_case(summary if sizes else None, report)

    assert shrunk(0.23).verdict == "ok"
    assert has(shrunk(0.23, sizes=False), "left the fixed field of view")
    assert has(shrunk(0.10), "left the fixed field of view")  # under half of what its size allows
    # A summary that does not describe the images, or a fixed mask (the QA's overlap is then the mask's): no bound.
    report = replace(truth, transform=replace(truth.transform, matrix_lps=np.diag([1.74, 1.74, 1.74, 1.0]).tolist()),
                     images_before=replace(truth.images_before, overlap_fraction=0.85),
                     images_after=replace(truth.images_after, overlap_fraction=0.23))  # fmt: skip
    bare = summary_of(report)
    assert has(triage_case(bare, report), "left the fixed field of view")
    masked = summary_of(report)
    masked.provenance.fixed = ImageDescription(size=[161, 185, 155], spacing_mm=[1.5, 1.5, 1.5])
    masked.provenance.moving = ImageDescription(size=[294, 340, 198], spacing_mm=[1.0, 1.0, 1.0])
    masked.provenance.fixed_mask = "brain_mask.nrrd"
    assert has(triage_case(masked, report), "left the fixed field of view")


def test_a_slab_registered_to_a_whole_head_is_judged_by_what_it_can_cover(pair, assess):
    """A helper's real heads: an 8 mm CT slab as the moving image covers 2% of a whole-head MR at the right pose;
    triage called it failed ("the images hardly overlap"), and the same pose the other way round check."""
    from MultimodalRegistrationLib.registration.summary import ImageDescription

    truth = assess("truth", pair.truth)

    def slab(overlap_after: float):
        report = replace(truth, images_before=replace(truth.images_before, overlap_fraction=0.02),
                         images_after=replace(truth.images_after, overlap_fraction=overlap_after))  # fmt: skip
        summary = summary_of(report)
        summary.provenance.fixed = ImageDescription(size=[256, 256, 400], spacing_mm=[1.0, 1.0, 1.0])  # the MR
        summary.provenance.moving = ImageDescription(size=[512, 512, 8], spacing_mm=[0.5, 0.5, 1.0])  # the slab
        return triage_case(summary, report)

    assert not has(slab(0.0195), "overlap")  # 2% of the head: all an 8 mm slab can cover (2.0%)
    # A small image pushed off the field of view (it had its 2% before) is still judged by the fixed image's share.
    report = replace(truth, images_before=replace(truth.images_before, overlap_fraction=0.02),
                     images_after=replace(truth.images_after, overlap_fraction=0.005))  # fmt: skip
    summary = summary_of(report)
    summary.provenance.fixed = ImageDescription(size=[256, 256, 400], spacing_mm=[1.0, 1.0, 1.0])
    summary.provenance.moving = ImageDescription(size=[512, 512, 8], spacing_mm=[0.5, 0.5, 1.0])
    pushed = triage_case(summary, report)
    assert pushed.verdict == "failed" and has(pushed, "left the fixed field of view")
    failed = slab(0.0008)
    assert failed.verdict == "failed" and has(failed, "the moving image can cover at most 2% of it")


def test_a_warning_that_doubts_the_result_makes_the_case_worth_a_look(pair, assess):
    report = assess("truth", pair.truth)
    summary = summary_of(report)
    weak = ("the result is probably wrong: its mutual information (0.074 before, 0.117 after) is only 1.4 times that "
            "of poses 30 mm or 90 deg away")
    summary.warnings = ["segments on the fixed image only: lesion", weak]
    verdict = triage_case(summary, report)
    assert verdict.verdict == "check"
    assert verdict.reasons == [f"the registration warned: {summary.warnings[1]}"]  # the other warning doubts nothing
    summary.warnings = ["the result lies 31 mm (median over the fixed image's anatomy) from the initial transform"]
    assert triage_case(summary, report).verdict == "check"


def test_target_landmarks_far_apart_or_worse_after_registration_ask_for_a_check(pair):
    """Two points files swapped, or in another frame, gave a median TRE of 86 mm with the verdict 'ok' (audit)."""
    from MultimodalRegistrationLib.core.transforms import lps_ras_points

    points = pair.head_points[::400][:8]
    fixed_ras, moving_ras = lps_ras_points(points), lps_ras_points(pair.truth.transform_points(points))

    def verdict(moving, transform):
        options = QAOptions(jacobian_spacing_mm=4.0, fixed_points_ras=fixed_ras, moving_points_ras=moving)
        report = assess_registration(pair.fixed, pair.moving, transform, options)
        return triage_case(summary_of(report), report)

    good = verdict(moving_ras, pair.truth)
    assert good.verdict == "ok" and good.measures["tre_median_after_mm"] < 0.01
    assert good.measures["tre_median_before_mm"] > 20  # the truth moves the points far: before = identity
    off = verdict(moving_ras + [9.0, 0.0, 0.0], pair.truth)  # every moving point 9 mm off its partner
    assert off.verdict == "check" and off.measures["tre_median_after_mm"] == pytest.approx(9.0, abs=0.01)
    assert has(off, "the target landmarks lie 9.0 mm apart after registration")
    shuffled = verdict(moving_ras[::-1], pair.truth)  # paired wrongly: worse than at the start
    assert shuffled.verdict == "check" and has(shuffled, "the target landmarks got worse: median TRE")


def test_two_swapped_target_landmarks_ask_for_a_check_though_the_median_is_fine(pair):
    """The median TRE hides two of eight points swapped (each about 99 mm off in a helper's QA sweep: 'ok')."""
    from MultimodalRegistrationLib.core.transforms import lps_ras_points

    points = pair.head_points[:: len(pair.head_points) // 8][:8]
    moving = pair.truth.transform_points(points)
    moving[[0, 1]] = moving[[1, 0]]
    options = QAOptions(jacobian_spacing_mm=4.0, fixed_points_ras=lps_ras_points(points),
                        moving_points_ras=lps_ras_points(moving))  # fmt: skip
    report = assess_registration(pair.fixed, pair.moving, pair.truth, options)
    verdict = triage_case(summary_of(report), report)
    assert verdict.measures["tre_median_after_mm"] < 0.01
    assert verdict.verdict == "check" and has(verdict, "the QA warned: landmarks far off the others")


def test_a_start_fitted_to_the_target_points_is_not_what_the_result_is_judged_worse_against(pair):
    """A case started from a landmark fit on its own target points: 'before' is that fit's residual, the smallest
    any transform of its kind leaves there, so the exact result read as 'worse by 0.5 mm' and every such case was
    'check' (review finding). The fit is recognised, said, and the worse rule left out; a far TRE still counts."""
    from MultimodalRegistrationLib.core.transforms import lps_ras_points
    from MultimodalRegistrationLib.landmarks.models import fit_model
    from MultimodalRegistrationLib.qa.landmarks import before_fitted_to

    points = pair.head_points[:: len(pair.head_points) // 8][:8]
    assert len(points) == 8
    clicked = pair.truth.transform_points(points) + np.random.default_rng(3).normal(0, 1.5, points.shape)
    fit = Transform.from_matrix(fit_model("affine", points, clicked))  # what prealign writes from these clicks

    def assessed(transform, before, moving=clicked):
        options = QAOptions(jacobian_spacing_mm=4.0, fixed_points_ras=lps_ras_points(points),
                            moving_points_ras=lps_ras_points(moving), before=before)  # fmt: skip
        report = assess_registration(pair.fixed, pair.moving, transform, options)
        return report, triage_case(summary_of(report), report)

    report, started_from_fit = assessed(pair.truth, fit)
    tre = report.landmarks
    assert tre.tre_after.median_mm > tre.tre_before.median_mm + 0.5  # the exact result 'worse' than the fit
    assert tre.before_fitted == "affine" and any("is the affine fit to these target points" in w for w in tre.warnings)
    assert started_from_fit.verdict == "ok", started_from_fit.reasons
    assert type(tre).from_dict(tre.to_dict()).before_fitted == "affine"
    held_out = assessed(pair.truth, pair.truth @ rigid_transform(4.0, (0, 0, 1), (3, 0, 0)))[0].landmarks
    assert held_out.before_fitted is None  # any other start: the rule applies as before
    assert before_fitted_to(fit, points[:3], clicked[:3]) is None  # a fit to all eight is not one to three
    far = assessed(pair.truth @ rigid_transform(0.0, (0, 0, 1), (9, 0, 0)), fit)[1]  # worse by 7 mm: still counts
    assert far.verdict == "check" and has(far, "the target landmarks got worse")  # by more than 2 mm


def test_a_mirrored_result_fails_even_though_its_metric_is_as_good(pair, assess):
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])  # left-right, through the (symmetric) phantom's midline
    report = assess("mirror", pair.truth @ Transform.from_matrix(flip))
    verdict = triage_case(summary_of(report), report)
    assert verdict.measures["metric_after_nats"] == pytest.approx(
        assess("truth", pair.truth).images_after.mutual_information, abs=0.01
    )
    assert verdict.verdict == "failed" and verdict.reasons[0].startswith("mirrored result (determinant -1.000)")
    assert not has(verdict, "folds")  # a linear result's determinant is one finding, not two
    collapsed = triage_case(None, assess("collapsed", Transform.from_matrix(np.diag([0.1, 1.0, 1.0, 1.0]))))
    assert collapsed.verdict == "failed" and has(collapsed, "degenerate result: the transform scales by 0.10")


def test_a_folding_deformable_result_fails_and_a_mild_one_is_ok(pair, assess):
    folded = assess("fold", planted_fold(pair, -2.0))
    verdict = triage_case(summary_of(folded, preset="deformable"), folded)
    assert verdict.verdict == "failed" and has(verdict, "the deformable result folds")
    assert verdict.measures["jacobian_min"] < 0 and 0 < verdict.measures["folding_percent"] < 5
    mild = assess("mild", planted_fold(pair, -0.5))
    quiet = triage_case(summary_of(mild, preset="deformable"), mild)
    assert quiet.verdict == "ok" and quiet.reasons == []
    assert triage_case(None, mild).measures["jacobian_min"] == pytest.approx(0.5, abs=0.1)


def test_unstable_restarts_ask_for_a_check(pair, assess):
    def stability(spread_mm):
        return StabilityResult(
            "elastix", "rigid", 3, 5.0, 5.0, 2.0, spread_mm, spread_mm * 1.3, spread_mm > 2.0, [], 500, 1, 1, 9.0
        )

    truth = assess("truth", pair.truth)
    unstable = triage_case(None, replace(truth, stability=stability(14.2)))
    assert unstable.verdict == "check" and unstable.reasons == [
        "the stability restarts disagree by 14.2 mm (95th percentile, threshold 2 mm): the result may be a wrong optimum"
    ]
    assert triage_case(None, replace(truth, stability=stability(0.3))).verdict == "ok"
    # 1 of 3 restarts finished, agreeing: too few to call it stable, so not 'ok' either (review finding).
    few = triage_case(None, replace(truth, stability=replace(stability(0.3), completed=1)))
    assert few.verdict == "check" and few.reasons == [
        ("stability inconclusive: only 1 of 3 restarts finished, too few to call the result stable: see the case's "
         "warnings for why they failed")
    ]


def test_a_failed_registration_or_no_record_fails_and_the_worst_rule_wins(pair, assess):
    failed = triage_case(None, None, "the rigid result is mirrored (determinant -1.000)\nhint: use the rigid preset")
    assert failed == Verdict("failed", ["the registration failed: the rigid result is mirrored (determinant -1.000)"])
    assert triage_case(None, None).verdict == "failed"
    # Mirrored (failed) and no metric gain (check): failed, both reasons, worst first as found.
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    both = triage_case(None, assess("flip only", Transform.from_matrix(flip)))
    assert both.verdict == "failed" and has(both, "mirrored") and has(both, "the metric")
    assert Verdict.from_dict(both.to_dict()).verdict == "failed"
    with pytest.raises(InputError, match="unknown verdict"):
        Verdict("maybe")


# --------------------------------------------------------------------------- the cohort
def cohort(count, seed=0, engine="elastix", preset="rigid"):
    """``count`` good cases: MI about 0.27 -> 0.64 nats, varying like different patients do."""
    rng = np.random.default_rng(seed)
    before = rng.normal(0.27, 0.03, count)
    after = rng.normal(0.64, 0.02, count)
    return [
        CohortRow(f"{engine}-{preset}-{i:02d}", engine, preset, b, a) for i, (b, a) in enumerate(zip(before, after))
    ]


def test_only_the_case_far_below_its_cohort_is_flagged():
    rows = cohort(12) + [CohortRow("wrong-optimum", "elastix", "rigid", 0.27, 0.45)]
    rows.append(CohortRow("better", "elastix", "rigid", 0.27, 0.95))  # better than usual: not suspicious
    outliers = cohort_outliers(rows)
    assert list(outliers) == ["wrong-optimum"]
    assert [reason.split(":")[0] for reason in outliers["wrong-optimum"]] == [
        "the metric is low for the cohort",
        "the metric gain is low for the cohort",
    ]
    assert "0.450 nats against a median of 0.6" in outliers["wrong-optimum"][0]
    assert "over 14 elastix rigid cases" in outliers["wrong-optimum"][0]
    scores, _, _ = robust_z(np.array([row.metric_after for row in rows]))
    assert scores[12] < -COHORT_Z < scores[:12].min() and scores[13] > COHORT_Z


# Measured: 12 phantom pairs (4 mm voxels, poses 2-179 degrees, shifts up to 60 mm) registered by elastix
# rigid, every one under 1.1 mm from the truth: (MI before, MI after) in nats. The two near-axis poses
# (6 and 2 degrees, the 4th and 5th) end 6-7% below the others: MI depends on the pose of a correct result.
MEASURED_GOOD = [
    (0.196, 0.672), (0.143, 0.663), (0.181, 0.663), (0.291, 0.617), (0.292, 0.625), (0.269, 0.655),
    (0.147, 0.661), (0.190, 0.685), (0.208, 0.677), (0.190, 0.676), (0.243, 0.661), (0.212, 0.672),
]  # fmt: skip
MEASURED_MNI = (0.239, 0.456)  # the MNI T1 head registered to the phantom CT: different anatomy


def test_measured_good_cases_stay_quiet_and_different_anatomy_is_flagged():
    rows = [CohortRow(f"good-{i}", "elastix", "rigid", *metric) for i, metric in enumerate(MEASURED_GOOD)]
    assert cohort_outliers(rows) == {}
    outliers = cohort_outliers([*rows, CohortRow("mni", "elastix", "rigid", *MEASURED_MNI)])
    assert list(outliers) == ["mni"] and len(outliers["mni"]) == 2  # final metric and gain
    scores, _, _ = robust_z(np.array([after for _, after in MEASURED_GOOD]))
    assert scores.min() < -3.0  # without the cohort's spread floor the 6-degree case sits at the threshold


def test_a_low_gain_with_a_usual_final_metric_is_not_flagged():
    # Gain 0.22 nats against about 0.37 (gain z below -3.5), final 0.62 a little below the median of 0.64.
    started_closer = CohortRow("prealigned", "elastix", "rigid", 0.40, 0.62)
    rows = [*cohort(12), started_closer]
    assert robust_z(np.array([row.gain for row in rows]), 0.01, 0.05)[0][-1] < -COHORT_Z
    assert cohort_outliers(rows) == {}


def test_a_small_cohort_flags_nothing_and_groups_are_kept_apart():
    small = cohort(2) + [CohortRow("wrong-optimum", "elastix", "rigid", 0.27, 0.45)]
    assert cohort_outliers(small) == {}
    # The same low case among 12 ANTs cases is not compared with the elastix ones.
    rows = cohort(12, engine="ants") + cohort(3, seed=1) + [CohortRow("low-elastix", "elastix", "rigid", 0.27, 0.45)]
    assert cohort_outliers(rows) == {}
    # A failed case (no metric) does not count towards a group's size.
    rows = cohort(3) + [
        CohortRow("failed", "elastix", "rigid", None, None),
        CohortRow("low", "elastix", "rigid", 0.27, 0.3),
    ]
    assert cohort_outliers(rows) == {}


def test_identical_metrics_do_not_divide_by_zero():
    same = [CohortRow(f"c{i}", "ants", "affine", 0.3, 0.6) for i in range(10)]
    assert cohort_outliers(same) == {}
    slightly = same + [CohortRow("slightly", "ants", "affine", 0.3, 0.595)]  # 0.005 nats: within half a mm
    assert cohort_outliers(slightly) == {}
    far = same + [CohortRow("far", "ants", "affine", 0.3, 0.4)]
    assert set(cohort_outliers(far)) == {"far"}
    with pytest.raises(InputError, match="repeat"):
        cohort_outliers(same + [same[0]])


def test_the_cohort_raises_ok_to_check_and_keeps_failed(pair, assess):
    rows = cohort(12) + [
        CohortRow("low", "elastix", "rigid", 0.27, 0.30),
        CohortRow("mirrored", "elastix", "rigid", 0.27, 0.30),
    ]
    verdicts = {row.case: Verdict() for row in rows}
    verdicts["mirrored"] = Verdict("failed", ["mirrored result (determinant -1.000)"])
    final = apply_cohort(verdicts, cohort_outliers(rows))
    assert {case for case, v in final.items() if v.verdict != "ok"} == {"low", "mirrored"}
    assert final["low"].verdict == "check" and has(final["low"], "low for the cohort")
    assert final["mirrored"].verdict == "failed" and final["mirrored"].reasons[0].startswith("mirrored")
    assert verdicts["low"].verdict == "ok"  # pure: the per-case verdicts are not changed
    with pytest.raises(InputError, match="without a verdict"):
        apply_cohort({}, {"low": ["x"]})


def test_triage_cohort_runs_all_three_steps_on_real_reports(pair, assess):
    truth = assess("truth", pair.truth)
    good = summary_of(truth)
    cases = {
        f"good-{i}": (replace(good, metric_after=good.metric_after + 0.01 * (i % 3 - 1)), truth, None) for i in range(6)
    }
    cases["identity"] = (
        summary_of(assess("identity", Transform.identity())),
        assess("identity", Transform.identity()),
        None,
    )
    cases["unreadable"] = (None, None, "could not read mr.nii.gz: the file is truncated")
    final = triage_cohort(cases)
    assert {case: v.verdict for case, v in final.items() if v.verdict != "ok"} == {
        "identity": "check",
        "unreadable": "failed",
    }
    assert has(final["identity"], "did not improve") and has(final["identity"], "metric is low for the cohort")
    assert CohortRow.from_summary("x", good) == CohortRow(
        "x", "elastix", "rigid", good.metric_before, good.metric_after
    )


def test_images_too_small_for_any_mi_are_failed_for_that_not_for_their_overlap():
    """A 4 x 4 x 4 voxel pair overlaps whole and still gives no MI (64 samples): the reason says so, instead of
    "hardly overlap: 100%"."""
    rng = np.random.default_rng(0)
    fixed = sitk.GetImageFromArray(rng.uniform(0, 100, (4, 4, 4)).astype(np.float32))
    report = assess_registration(fixed, sitk.Image(fixed), Transform.identity())
    verdict = triage_case(None, report)
    assert report.images_after.overlap_fraction == 1.0 and report.images_after.mutual_information is None
    assert verdict.verdict == "failed"
    assert any("100% of the fixed image maps into the moving image (64 voxels, too few for any mutual "
               "information)" in reason for reason in verdict.reasons), verdict.reasons


def test_a_guided_case_is_not_judged_by_the_cohorts_mutual_information():
    """An MR -> TRUS case guided by its glands (MI 0.06, right by its Dice) among CT/MR cases (MI 0.6) read "the
    metric is low for the cohort" (a helper's batch sweep); its guidance judges it, as docs/cohorts.md says."""
    rows = cohort(7)
    summary = RegistrationSummary(
        transform_kind="linear", matrix_lps=np.eye(4).tolist(), has_inverse=True, metric_name="mutual_information",
        metric_before=0.035, metric_after=0.060, seconds=3.0, warnings=[],
        provenance=Provenance.from_dict({"engine": "elastix", "preset": "rigid", "guidance": {"metric": "intensity"}}),
    )  # fmt: skip
    assert summary.provenance.guidance is not None
    unguided = RegistrationSummary.from_dict({**summary.to_dict(), "provenance": {"engine": "elastix", "preset": "rigid"}})
    assert list(cohort_outliers([*rows, CohortRow.from_summary("trus", unguided)])) == ["trus"]
    assert cohort_outliers([*rows, CohortRow.from_summary("trus", summary)]) == {}


def test_a_failed_case_gives_the_engines_cause_not_the_exceptions_name():
    """The reason kept only the first line, "elastix failed: itk::ExceptionObject (0x55c3...)"; the cause was in
    case.json alone (a helper's batch sweep)."""
    message = ("elastix failed: itk::ExceptionObject (0x55c38880a510)\nLocation: \"ElastixTemplate - Run()\"\n"
               "Description: ITK ERROR: AdvancedMattesMutualInformationMetric(0x1): Too many samples map outside "
               "moving image buffer: 859 / 4096")  # fmt: skip
    verdict = triage_case(None, None, message)
    assert verdict.verdict == "failed"
    assert verdict.reasons == ["the registration failed: elastix failed: Too many samples map outside moving image "
                               "buffer: 859 / 4096"]  # fmt: skip


def test_the_batch_names_the_cases_the_cohort_flagged_after_their_own_verdicts():
    """Each progress line gives a case's own verdict; the cohort's rules come after: a case printed 'ok' and was
    'check' in batch.csv, and only the counts said so (a helper's batch sweep)."""
    from MultimodalRegistrationLib.cli.batch import cohort_note

    low = "the metric is low for the cohort: 0.450 nats against a median of 0.640 over 12 elastix rigid cases"
    verdicts = {"a": {"verdict": "ok", "reasons": []}, "b": {"verdict": "check", "reasons": [low]},
                "c": {"verdict": "check", "reasons": ["the landmarks end 7.1 mm apart"]}}  # fmt: skip
    assert cohort_note(verdicts) == ("the cohort's rules flagged b after their own verdicts (a metric far below the "
                                     "other cases'): see batch.csv")  # fmt: skip
    assert cohort_note({"a": {"verdict": "ok", "reasons": []}}) is None


@pytest.mark.parametrize("kind", ["tps", "affine"])
def test_a_transform_fitted_to_the_target_points_it_is_judged_on_is_said_and_checked(pair, kind):
    """A thin-plate spline judged on its own fit points read TRE 0.01 mm with no warning, and triage said ok (a
    helper's QA). The fit is recognised (the spline's field within 0.1 mm of the clicks, the clicks 1.5 mm from any
    rigid map), said, and sent to check; the exact transform on the same clicks, and exact clicks, are not a fit."""
    from MultimodalRegistrationLib.core.transforms import lps_ras_points
    from MultimodalRegistrationLib.landmarks.fit import fit_landmarks

    points = pair.head_points[:: len(pair.head_points) // 8][:8]
    clicked = pair.truth.transform_points(points) + np.random.default_rng(4).normal(0, 1.5, points.shape)
    fit = fit_landmarks(lps_ras_points(points), lps_ras_points(clicked), kind, reference_image=pair.fixed).transform

    def assessed(transform, moving=clicked):
        options = QAOptions(jacobian_spacing_mm=4.0, fixed_points_ras=lps_ras_points(points),
                            moving_points_ras=lps_ras_points(moving))  # fmt: skip
        report = assess_registration(pair.fixed, pair.moving, transform, options)
        return report, triage_case(summary_of(report), report)

    report, verdict = assessed(fit)
    said = [w for w in report.landmarks.warnings if "is fitted to these target points" in w]
    assert len(said) == 1 and ("thin-plate spline" if kind == "tps" else "the affine fit") in said[0]
    assert report.landmarks.tre_after.median_mm < (0.1 if kind == "tps" else 2.5)
    assert verdict.verdict == "check" and has(verdict, "is fitted to these target points")
    exact, exact_verdict = assessed(pair.truth)  # the same clicks, a transform not fitted to them
    assert not any("fitted to these target" in w for w in exact.landmarks.warnings)
    assert exact.landmarks.tre_after.median_mm > 1.0
    noiseless = assessed(pair.truth, pair.truth.transform_points(points))[0]
    assert noiseless.landmarks.tre_after.median_mm < 0.01
    assert not any("fitted to these target" in w for w in noiseless.landmarks.warnings)
