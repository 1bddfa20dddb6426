"""Scale in the start (issue 23): shrunken, rotated, partly covered tissue against a whole head.

Data: micro_data.py (MNI ICBM152 maps): a whole-head T2-like MRI at 1.5 mm (fixed) and a
brain-only, light-sheet-like image (moving) shrunk by 0.6-0.7 and turned by 25-34 degrees, whole
or cut to a 65% stack. Errors are mean distances (mm) over 2000 points inside the brain.

Seeds 12 (65%, no mask) and 15 (65%, brain mask) started 104 and 70 mm off before the search ranked
its grid by the overlap rule at 10 mm; they are two of the cases here.
"""

import micro_data as md
import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.rotations import axis_angle_matrices, pose_change, pose_difference
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.registration.describe import describe_start
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.sampling_region import overlap_regions
from MultimodalRegistrationLib.registration.rules.weak_result import weak_result_warning

needs_data = pytest.mark.skipif(not md.available(), reason="MNI ICBM152 maps not in ../shared/data")


@pytest.fixture(scope="module")
def head():
    return md.head_mri(1.5)


def shrink_case(head, seed: int, coverage: float) -> md.ShrinkCase:
    rng = np.random.default_rng(seed)
    shrink, angle = float(rng.uniform(0.6, 0.7)), float(rng.uniform(15.0, 35.0))
    return md.light_sheet(shrink, angle, coverage, seed=seed, brain_points=head.brain_points)


def test_presets_that_scale_are_flagged():
    for engine in ("elastix", "ants"):
        assert not load_preset(engine, "rigid").scales
        assert load_preset(engine, "similarity").scales and load_preset(engine, "similarity").is_linear
        assert load_preset(engine, "affine").scales


def test_pose_difference_reports_rotation_and_scale_apart():
    turn = np.eye(4)
    turn[:3, :3] = axis_angle_matrices(np.array([[0.0, 0.0, np.radians(25.0)]]))[0]
    shrunk = turn.copy()
    shrunk[:3, :3] *= 0.62
    center = np.array([10.0, -20.0, 30.0])
    angle, scale, _ = pose_change(shrunk, np.eye(4), center)
    assert angle == pytest.approx(25.0, abs=1e-6)  # the scale no longer reads as a turn (it read 82 deg)
    assert scale == pytest.approx(0.62, abs=1e-9)
    assert pose_difference(turn, np.eye(4), center)[0] == pytest.approx(25.0, abs=1e-6)
    sheared = shrunk.copy()
    sheared[0, 1] += 0.05
    assert pose_difference(sheared, turn, center)[0] < 3.0


@needs_data
@pytest.mark.parametrize(
    "seed, coverage, masked, preset",
    [
        (13, 1.0, False, "similarity"),
        (12, 0.65, False, "affine"),
        (16, 1.0, True, "affine"),
        (15, 0.65, True, "similarity"),
    ],
)
def test_shrunken_tissue_registers_within_2_mm(head, seed, coverage, masked, preset):
    case = shrink_case(head, seed, coverage)
    result = register(head.image, case.moving, preset=preset, fixed_mask=head.brain_mask if masked else None)
    error = md.mean_error(result.transform.matrix, case.truth, head.brain_points)
    assert error < 2.0, f"{preset}, shrink {case.shrink:.3f}, {case.angle_deg:.0f} deg, {coverage:.0%}: {error:.2f} mm"
    provenance = result.provenance
    start_scale = provenance.any_pose.scale
    assert start_scale == pytest.approx(case.shrink, rel=0.08), "the start's scale is reported and near the shrink"
    offset = provenance.start_offset
    assert offset.scale == pytest.approx(start_scale, rel=1e-3)
    assert abs(offset.rotation_deg - case.angle_deg) < 8.0, offset  # the turn alone, not the turn and the size
    assert f"scale {offset.scale:.2f}" in describe_start(result.summary())
    assert not any("probably wrong" in warning for warning in result.warnings)


@needs_data
def test_a_cleared_hemisphere_starts_on_its_own_half_of_the_head(head):
    """One hemisphere, cleared and shrunk, against the whole head: its centroid lies a quarter of the brain off the
    head's, so the grid's centres-met poses all missed it (seeds 4, 8 and 11 of 12 started 76-111 mm off; with the
    whole brain's mask, 11 of 12). The grid now also slides tissue that looks dissected along its principal axes:
    12 of 12 (and 10 of 12 with the mask) start within 2.2 mm."""
    from MultimodalRegistrationLib.registration.pose.coarse import CoarseImage
    from MultimodalRegistrationLib.registration.pose.scale_search import search_scaled_pose
    from MultimodalRegistrationLib.registration.pose.scale_seed import looks_dissected, solid

    rng = np.random.default_rng(4)
    shrink, angle = float(rng.uniform(0.6, 0.75)), float(rng.uniform(10, 35))
    case = md.light_sheet(shrink, angle, seed=4, brain_points=head.brain_points, side=-1)
    start = search_scaled_pose(head.image, case.moving)
    assert md.mean_error(start.transform.matrix, case.truth, case.covered_points) < 3.0  # was 75.7 mm
    assert start.scale == pytest.approx(shrink, rel=0.05)
    fixed = solid(CoarseImage.of(head.image, 5.0, None))
    assert looks_dissected(fixed, solid(CoarseImage.of(case.moving, 5.0, None)))
    assert not looks_dissected(fixed, solid(CoarseImage.of(shrink_case(head, 13, 1.0).moving, 5.0, None)))  # whole


@needs_data
def test_a_half_stack_whose_first_search_misses_is_found_by_the_searches_that_disagree_with_it(head):
    """Half a brain, shrunk 0.55 and turned 16.5 degrees: the search from the default seed started 100 mm off (its
    grid's poses near the truth were never refined) and the run ended there, warned. A second seed's search
    disagrees, so five are run and the best final score is kept: 1.8 mm (a helper's sweep: 8 of 12 such misses)."""
    from MultimodalRegistrationLib.core.choices import DEFAULT_SEED
    from MultimodalRegistrationLib.registration.pose.scale_consensus import search_scaled_pose_agreed
    from MultimodalRegistrationLib.registration.pose.scale_search import search_scaled_pose
    from MultimodalRegistrationLib.registration.runs import working_image

    case = md.light_sheet(0.55, 16.5, 0.5, seed=4, brain_points=head.brain_points)
    fixed, moving = working_image(head.image, "fixed image")[0], working_image(case.moving, "moving image")[0]
    first = search_scaled_pose(fixed, moving, seed=DEFAULT_SEED)
    assert md.mean_error(first.transform.matrix, case.truth, case.covered_points) > 50.0
    agreed = search_scaled_pose_agreed(fixed, moving, seed=DEFAULT_SEED)
    assert md.mean_error(agreed.transform.matrix, case.truth, case.covered_points) < 3.0
    assert agreed.metric > first.metric + 0.1 and agreed.scale == pytest.approx(0.55, rel=0.05)
    # The kept start scores 2.2 times the best distinct one: sure, so the result's check keeps its usual bar.
    assert agreed.seed_margin == pytest.approx(2.2, abs=0.1) and agreed.summary()["seed_margin"] > 2.0


@needs_data
def test_partial_stack_samples_where_both_images_exist(head):
    case = shrink_case(head, 12, 0.65)
    start = Transform.from_matrix(case.truth)
    regions = overlap_regions([("any-pose", start)], head.image, case.moving, load_preset("elastix", "affine"))
    region = regions["any-pose"].mask
    inside = sitk.GetArrayViewFromImage(region).astype(bool)
    # Covered brain points fall inside the region, brain points beyond the stack's end mostly not.
    index = np.array([head.image.TransformPhysicalPointToIndex(p.tolist()) for p in head.brain_points])
    hits = inside[index[:, 2], index[:, 1], index[:, 0]]
    covered_set = {tuple(point) for point in case.covered_points}
    covered = np.array([tuple(point) in covered_set for point in head.brain_points])
    assert hits[covered].mean() > 0.99
    assert hits[~covered].mean() < 0.35
    assert "moving tissue" in regions["any-pose"].describe()
    masked = overlap_regions(
        [("any-pose", start)], head.image, case.moving, load_preset("elastix", "affine"), fixed_mask=head.brain_mask
    )
    assert "within the fixed mask" in masked["any-pose"].describe()


@needs_data
def test_a_result_the_images_do_not_confirm_is_warned_about(head):
    case = shrink_case(head, 12, 1.0)
    center = head.brain_points.mean(axis=0)
    from MultimodalRegistrationLib.core.metric import mutual_information

    truth = Transform.from_matrix(case.truth)
    right = mutual_information(head.image, case.moving, truth)
    assert weak_result_warning(head.image, case.moving, truth, right, 0.05, center) is None
    # What today's rigid start led to: the brain at its own size over the whole head, 40 mm off.
    wrong_matrix = case.truth.copy()
    wrong_matrix[:3, :3] /= case.shrink
    wrong_matrix[:3, 3] += 40.0
    wrong = Transform.from_matrix(wrong_matrix)
    metric = mutual_information(head.image, case.moving, wrong)
    warning = weak_result_warning(head.image, case.moving, wrong, metric, 0.05, center)
    assert warning is not None and warning.startswith("the result is probably wrong")
    assert "90 deg away" in warning and "--preset similarity" in warning


@needs_data
def test_landmarks_guide_a_similarity_run_from_their_scaled_fit(head):
    """Six landmarks clicked 1 mm off on the shrunken, 65%-covered stack: the guided start is their fit with its
    scale (a rigid fit left this case 19 mm off, and ANTs similarity from there kept it)."""
    case = md.light_sheet(0.65, 30.0, 0.65, seed=5, brain_points=head.brain_points)
    rng = np.random.default_rng(0)
    fixed_points = case.covered_points[rng.choice(len(case.covered_points), 6, replace=False)]
    moving_points = fixed_points @ case.truth[:3, :3].T + case.truth[:3, 3]
    clicked = [points + rng.normal(0.0, 1.0 / np.sqrt(3), points.shape) for points in (fixed_points, moving_points)]
    guidance = Guidance(fixed_points_lps=clicked[0], moving_points_lps=clicked[1])
    result = register(head.image, case.moving, preset="similarity", guidance=guidance)
    start = np.array(result.provenance.start_matrix_lps)
    assert result.provenance.start == "guided (landmarks)"
    assert np.cbrt(np.linalg.det(start[:3, :3])) == pytest.approx(0.65, abs=0.02)
    assert md.mean_error(start, case.truth, case.covered_points) < 2.0
    error = md.mean_error(result.transform.matrix, case.truth, case.covered_points)
    assert error < 1.0, error


@needs_data
def test_landmarks_that_fit_a_size_change_outweigh_segments_cut_by_the_field_of_view(head):
    """The shrunken stack's brain mask covers 65% of the brain, so its centroid is not the whole brain's: the
    segment centroids brought together lie 36 mm off and overlap more (Dice 0.67) than the truth (0.48). Six
    landmarks clicked 1 mm off fit the 0.65 shrink within a millimetre, but a rigid fit misses them by 18 mm, so
    they were not trusted and elastix similarity guided by both returned the centroid alignment (36.2 mm). Under a
    preset that scales they are judged by their scaled fit: the landmark pose is kept (that run: 0.48 mm)."""
    from MultimodalRegistrationLib.core.rotations import orthogonal_fit
    from MultimodalRegistrationLib.registration.guided.guidance import prepare_guidance
    from MultimodalRegistrationLib.registration.guided.run import judged_by_centroids
    from MultimodalRegistrationLib.registration.summary import GuidanceRecord

    case = md.light_sheet(0.65, 30.0, 0.65, seed=5, brain_points=head.brain_points)
    values = sitk.GetArrayViewFromImage(case.moving)
    moving_mask = sitk.BinaryMorphologicalClosing(sitk.Cast(case.moving > float(np.percentile(values, 60)),
                                                            sitk.sitkUInt8), [2, 2, 2])  # fmt: skip
    rng = np.random.default_rng(0)
    fixed_points = case.covered_points[rng.choice(len(case.covered_points), 6, replace=False)]
    moving_points = fixed_points @ case.truth[:3, :3].T + case.truth[:3, 3]
    clicked = [points + rng.normal(0.0, 1.0 / np.sqrt(3), points.shape) for points in (fixed_points, moving_points)]
    guidance = Guidance(head.brain_mask, moving_mask, fixed_points_lps=clicked[0], moving_points_lps=clicked[1])
    prepared = prepare_guidance(head.image, case.moving, guidance, "elastix")
    fit = Transform.from_matrix(orthogonal_fit(*clicked, scale=True))
    assert md.mean_error(fit.matrix, case.truth, case.covered_points) < 1.5
    judged = {}
    for scale in (False, True):
        warnings: list[str] = []
        outcome = (fit, fit.inverse(), 0.0, "result", "")
        judged[scale] = judged_by_centroids(prepared, None, head.image, case.moving, None, outcome, GuidanceRecord(),
                                            warnings, scale)  # fmt: skip
    assert judged[False][3] == "segment centroids"  # the rigid preset's verdict: the landmarks do not fit it
    assert md.mean_error(judged[False][0].matrix, case.truth, case.covered_points) > 20.0
    assert judged[True][0] is fit and judged[True][3] == "result"


def test_a_start_that_puts_no_moving_tissue_over_the_fixed_image_gives_no_sampling_region(small_pair):
    """A helper's CT whose air wrapped round uint16 had its scaled start's tissue footprint empty, and elastix affine
    stopped with "No label object with label 1" (exit 1, "this is a bug"). Such a start samples the whole image."""
    away = Transform.from_matrix(np.array([[1, 0, 0, 900.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    regions = overlap_regions([("far", away)], small_pair.fixed, small_pair.moving, load_preset("elastix", "affine"))
    assert regions == {}
