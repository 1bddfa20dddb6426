"""The guided start keeps a near-symmetric gland the right way up, and a guided run judged by its guidance
never ends worse than the segments' centroids brought together (issue 22; the hard TRUS-like pair of
Testing/Python/trus_data.py, seed 104: a 21-degree pose, probe push and warp, independent segmentations)."""

from __future__ import annotations

import numpy as np
import pytest
from MultimodalRegistrationLib.core.rotations import axis_angle_matrices, rotation_angle_deg
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.output import EngineOutput
from MultimodalRegistrationLib.registration import runs
from MultimodalRegistrationLib.registration.guided.guidance import Guidance, prepare_guidance
from MultimodalRegistrationLib.registration.guided.score import (
    LANDMARKS_TRUSTED_MM,
    GuidanceScore,
    guidance_score,
    landmark_fit_rms_mm,
    landmarks_outweigh_surfaces,
)
from MultimodalRegistrationLib.registration.guided.start import (
    _axes_candidates,
    guided_start,
    lattice,
    pose_about,
    segment_centroid_alignment,
    segment_moments,
)
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules import keep
from MultimodalRegistrationLib.registration.rules.keep import worse_beyond_noise
from scipy.spatial.transform import Rotation
from trus_data import gland_guidance, trus_pair


@pytest.fixture(scope="module")
def pair():
    return trus_pair(104)


@pytest.fixture(scope="module")
def prepared(pair):
    return gland_guidance(pair)


def turned(prepared, start, vector_deg) -> Transform:
    """``start`` (a GuidedStart) turned by the rotation vector ``vector_deg`` (degrees, LPS) about the fixed
    gland's centre, its moving point held."""
    fixed_centre = segment_moments(prepared, np.eye(3))[0]
    pose = start.transform.matrix
    moving_centre = pose[:3, :3] @ fixed_centre + pose[:3, 3]
    turn = axis_angle_matrices(np.deg2rad(np.asarray(vector_deg, float))[None])[0]
    return Transform.from_matrix(pose_about(turn @ pose[:3, :3], fixed_centre, moving_centre))


def rotation_error_deg(pose: np.ndarray, pair) -> float:
    """Degrees between a pose's rotation and the truth's rigid part."""
    return float(rotation_angle_deg(pose[:3, :3] @ pair.rigid[:3, :3].T))


def test_the_gland_is_ambiguous_to_its_principal_axes(pair, prepared):
    # What made the old start flip: an axes rotation about 170 degrees from the truth overlaps as well as
    # the right one (Dice 0.836 against 0.833), and better than the centroids at the headers' rotation (0.811).
    fixed_centre, fixed_axes, moving_centre, moving_axes = segment_moments(prepared, np.eye(3))
    axes = _axes_candidates(fixed_axes, moving_axes, fixed_centre, moving_centre)
    dice = {name: guidance_score(prepared, Transform.from_matrix(pose)).mean_dice for name, pose in axes}
    flipped = [name for name, pose in axes if rotation_error_deg(pose, pair) > 150]
    right = [name for name, pose in axes if rotation_error_deg(pose, pair) < 20]
    assert flipped and right
    assert max(dice[name] for name in flipped) >= max(dice[name] for name in right) - 0.02
    centroids = guidance_score(prepared, segment_centroid_alignment(prepared)).mean_dice
    assert max(dice[name] for name in flipped) > centroids + 0.02


def test_the_start_keeps_the_gland_the_right_way_up(pair, prepared):
    start = guided_start(prepared, None, pair.fixed, pair.moving)
    assert not start.name.startswith("segment axes")
    assert rotation_error_deg(start.transform.matrix, pair) < 15.0  # measured 9.8 degrees (the truth is 21 degrees from the headers); the old start's flip is 168
    tre, centroids = pair.tre(start.transform), pair.tre(segment_centroid_alignment(prepared))
    assert np.mean(tre) < np.mean(centroids)  # measured 4.3 against 5.4 mm
    # Every candidate is on record, with its score, confidence and reason; exactly one was chosen.
    record = start.record()
    # the lattice, the proposal, the four axes
    assert len(record["candidates"]) == len(lattice()) + 1 + 4
    assert all(c["confidence"] is not None and c["surface_mm"] is not None for c in record["candidates"])
    assert sum(c["reason"].startswith("chosen") for c in record["candidates"]) == 1
    assert record["chosen"] == start.name and record["noise"]["surface_mm"] > 0
    for candidate in record["candidates"]:
        if candidate["name"].startswith("segment axes"):
            assert "an axes rotation needs" in candidate["reason"] or "not eligible" in candidate["reason"]
            assert ("not eligible" in candidate["reason"]) == (candidate["rotation_from_prior_deg"] > 60)


def stays(request) -> EngineOutput:
    """An engine that does not move from its start."""
    return EngineOutput(request.initial, request.initial.inverse(), "", "none", 1, stages=[("rigid", request.initial)])


def test_a_run_that_cannot_beat_its_start_returns_the_centroid_alignment_with_a_warning(pair, monkeypatch):
    # An engine that does not move from the headers' pose (as rigid runs from --init geometry did on 3 of the
    # 10 real pairs, from the image centres): its result is its start, far off (mean TRE); the centroids 5.4 mm.
    monkeypatch.setattr(runs, "run_engine", stays)
    guidance = Guidance(pair.fixed_labels, pair.moving_labels)
    result = register(pair.fixed, pair.moving, engine="elastix", guidance=guidance, init="none")
    prepared = prepare_guidance(pair.fixed, pair.moving, guidance, "elastix")
    np.testing.assert_allclose(result.transform.matrix, segment_centroid_alignment(prepared).matrix, atol=1e-9)
    assert result.provenance.kept == "segment centroids"
    assert any("returned the centroid alignment" in w and "segment surface distance" in w for w in result.warnings)
    start = Transform.from_matrix(np.asarray(result.provenance.start_matrix_lps))
    assert np.mean(pair.tre(result.transform)) < 6.0
    assert np.mean(pair.tre(start)) > 8.0


@pytest.mark.parametrize("init", ["geometry", "moments"])
def test_with_segments_a_centres_init_starts_from_the_segment_centroids(pair, prepared, monkeypatch, init):
    # Issue 22: the translation starts from the segments' centroids whenever segments are given. From the image
    # centres elastix rigid ended more than 1 mm worse than the centroids on 7 of 24 hard pairs (1300-1323).
    monkeypatch.setattr(runs, "run_engine", stays)
    stages = []
    result = register(pair.fixed, pair.moving, engine="elastix", guidance=Guidance(pair.fixed_labels,
                      pair.moving_labels), init=init, progress=lambda fraction, stage, **_: stages.append(stage))  # fmt: skip
    assert "finding the starting pose: where each image has data" in stages  # the step that can take a minute
    assert "finding the starting pose: scoring rotations of the segments" not in stages
    start = np.asarray(result.provenance.start_matrix_lps)
    np.testing.assert_allclose(start, segment_centroid_alignment(prepared).matrix, atol=1e-9)
    assert result.provenance.start == "guided (segment centroids)"
    assert result.provenance.guidance.start_choice.chosen == "segment centroids"
    assert np.mean(pair.tre(Transform.from_matrix(start))) < 6.0
    unguided = register(pair.fixed, pair.moving, engine="elastix", init=init)
    assert np.mean(pair.tre(unguided.transform)) > 8.0  # without segments: the centres, as before


def test_a_result_not_better_than_its_start_beyond_the_noise_is_refused(pair, prepared):
    # Judged as the start was chosen: the start against itself is no worse (and moved nothing, so it needs no
    # evidence); moved 4 mm along the probe's axis (anterior), its surfaces are worse by 6.4 SD (limit 1).
    start = guided_start(prepared, None, pair.fixed, pair.moving)
    assert worse_beyond_noise(prepared, pair.fixed, pair.moving, start.transform, start.transform, 0) == ""
    moved = start.transform.matrix.copy()
    moved[:3, 3] += [0.0, -4.0, 0.0]
    reason = worse_beyond_noise(prepared, pair.fixed, pair.moving, start.transform, Transform.from_matrix(moved), 0)
    assert "one score is worse by more than 1 SD" in reason, reason


def test_a_turn_about_the_gland_is_not_a_polish(pair, prepared):
    # Turning 6 degrees about the gland's centre moves its surface only 1.3 mm RMS (under the 3 mm a polish may
    # move) but the landmarks further off (MNI texture: 3.9 -> 4.6 mm; phantom texture, without ../shared/data:
    # 4.0 -> 4.2 mm): it needs the evidence a move does, and has none.
    start = guided_start(prepared, None, pair.fixed, pair.moving)
    turned_6 = turned(prepared, start, [6.0, 0.0, 0.0])
    assert np.mean(pair.tre(turned_6)) > np.mean(pair.tre(start.transform)) + 0.1
    reason = worse_beyond_noise(prepared, pair.fixed, pair.moving, start.transform, turned_6, 0)
    assert "turned 6.0 degrees, but is better by less than 2 SD" in reason, reason


def test_a_rigid_result_that_turns_beyond_the_start_search_needs_the_axes_rules_evidence(pair, prepared, monkeypatch):
    # Hard pair 321 (6000 intensity samples): elastix rigid, guided, turned 41 degrees from the guided start
    # and ended 12.7 mm off (start 7.7 mm), its scores better by 2.3 SD together (surfaces +3.0, intensities
    # +0.2). Those scores, given to a 10-degree and a 41-degree turn of the start about the gland's centre:
    monkeypatch.setattr(keep, "paired_z", lambda *args: (3.0, 0.2, 2.3))
    monkeypatch.setattr(keep, "wide_intensity_z", lambda *args: 2.5)  # the referee confirms (see test_keep_referee)
    start = guided_start(prepared, None, pair.fixed, pair.moving)
    near, far = turned(prepared, start, [0.0, 0.0, 10.0]), turned(prepared, start, [0.0, 0.0, 41.0])
    assert worse_beyond_noise(prepared, pair.fixed, pair.moving, start.transform, near, 0) == ""
    reason = worse_beyond_noise(prepared, pair.fixed, pair.moving, start.transform, far, 0)
    assert "turned 41 degrees from its start, beyond the start's own search (30)" in reason, reason
    monkeypatch.setattr(keep, "paired_z", lambda *args: (2.5, 1.0, 3.4))  # what an axes start that far needs
    assert worse_beyond_noise(prepared, pair.fixed, pair.moving, start.transform, far, 0) == ""


def test_a_rigid_result_may_not_turn_further_from_the_prior_than_an_axes_start(pair, prepared, monkeypatch):
    # Fresh hard pair 801: ANTs rigid, guided, turned 66 degrees from its start (74 from the headers) and
    # ended 12.1 mm off (start 3.9 mm) with better guidance (Dice 0.74 -> 0.86, surfaces 2.33 -> 1.28 mm),
    # so strong scores that the far-turn rule passed it. Such scores, given to turns of this pair's start:
    monkeypatch.setattr(keep, "paired_z", lambda *args: (5.0, 2.5, 5.0))
    monkeypatch.setattr(keep, "wide_intensity_z", lambda *args: 2.5)
    start = guided_start(prepared, None, pair.fixed, pair.moving)
    rotation, prior = start.transform.matrix[:3, :3], np.eye(3)
    start_from_prior = rotation_angle_deg(rotation)
    assert start_from_prior < 45.0
    # about the axis that carries the start away from the headers, so the angles add
    vector = Rotation.from_matrix(rotation).as_rotvec(degrees=True)
    axis = vector / np.linalg.norm(vector) if start_from_prior > 1e-6 else np.array([1.0, 0.0, 0.0])
    far = turned(prepared, start, axis * (70.0 - start_from_prior))
    assert abs(rotation_angle_deg(far.matrix[:3, :3]) - 70.0) < 0.5
    reason = worse_beyond_noise(prepared, pair.fixed, pair.moving, start.transform, far, 0, prior)
    assert "turned 70 degrees from the prior" in reason and "beyond the 60 degrees" in reason, reason
    assert np.mean(pair.tre(far)) > np.mean(pair.tre(start.transform)) + 5.0
    # Without a prior (a start not searched about the headers, --init any-pose say) only the far-turn rule judges.
    assert worse_beyond_noise(prepared, pair.fixed, pair.moving, start.transform, far, 0, None) == ""
    # A start the landmarks placed beyond 60 degrees from the prior may be polished there.
    landmarks_start = Transform.from_matrix(far.matrix)
    assert worse_beyond_noise(prepared, pair.fixed, pair.moving, landmarks_start, far, 0, prior) == ""


def test_a_result_the_landmarks_prefer_is_not_traded_for_the_centroids_on_the_segments_alone():
    """Hard pair 109 with its 4 clicked landmarks: their rigid fit (the guided start there) overlaps the drawn glands
    less than the centroid alignment (Dice 0.776 against 0.834) but lies 1.5 mm RMS from the landmarks against
    7.0 mm, and 5.2 mm from the truth at 40 targets in the gland against 7.6 mm. Both scores are in mm: the landmarks
    gain 5.5, the surfaces lose 0.5, so it is kept, with a warning. Without landmarks the segments decide."""
    from MultimodalRegistrationLib.core.rotations import orthogonal_fit
    from MultimodalRegistrationLib.registration.guided.run import judged_by_centroids
    from MultimodalRegistrationLib.registration.summary import GuidanceRecord

    pair = trus_pair(109, source=None)  # the landmarks and segmentations do not depend on the texture
    fit = Transform.from_matrix(orthogonal_fit(pair.landmarks_fixed, pair.landmarks_moving, scale=False))
    outcome = (fit, fit.inverse(), 0.0, "start", "")
    with_points = Guidance(pair.fixed_labels, pair.moving_labels, fixed_points_lps=pair.landmarks_fixed,
                           moving_points_lps=pair.landmarks_moving)  # fmt: skip
    prepared = prepare_guidance(pair.fixed, pair.moving, with_points, "elastix")
    warnings: list[str] = []
    kept = judged_by_centroids(prepared, None, pair.fixed, pair.moving, None, outcome, GuidanceRecord(), warnings)
    assert kept[0] is fit and kept[3] == "start"
    (warning,) = warnings
    assert "agrees less with the segments than their centroids brought together (segment Dice" in warning
    assert "kept for the landmarks" in warning
    centroids = segment_centroid_alignment(prepared)
    assert np.mean(pair.target_error(fit)) < np.mean(pair.target_error(centroids)) - 2.0  # measured 5.2 against 7.6 mm

    glands = Guidance(pair.fixed_labels, pair.moving_labels)
    segments_only = prepare_guidance(pair.fixed, pair.moving, glands, "elastix")
    warnings = []
    fallback = judged_by_centroids(segments_only, None, pair.fixed, pair.moving, None, outcome, GuidanceRecord(),
                                   warnings)  # fmt: skip
    assert fallback[3] == "segment centroids" and "returned the centroid alignment" in warnings[0]

    # Landmarks that moved with the wrong labels (each fixed point paired with the next moving one) do not keep it.
    shuffled = np.roll(pair.landmarks_moving, 1, axis=0)
    wrong = Guidance(pair.fixed_labels, pair.moving_labels, fixed_points_lps=pair.landmarks_fixed,
                     moving_points_lps=shuffled)  # fmt: skip
    prepared = prepare_guidance(pair.fixed, pair.moving, wrong, "elastix")
    bad = Transform.from_matrix(orthogonal_fit(pair.landmarks_fixed, shuffled, scale=False))
    warnings = []
    judged = judged_by_centroids(prepared, None, pair.fixed, pair.moving, None, (bad, bad.inverse(), 0.0, "start", ""),
                                 GuidanceRecord(), warnings)  # fmt: skip
    assert judged[3] == "segment centroids", warnings
    assert landmark_fit_rms_mm(prepared) > LANDMARKS_TRUSTED_MM  # measured 10.6 mm; the right labels' 1.5 mm


def test_landmarks_outweigh_the_surfaces_only_when_they_agree_with_a_rigid_motion_and_every_segment_stays():
    centroids = GuidanceScore({"gland": 0.85, "urethra": 0.6}, {"gland": 1.5, "urethra": 1.0}, [9.0, 9.0, 9.0, 9.0])
    closer = GuidanceScore({"gland": 0.80, "urethra": 0.55}, {"gland": 2.0, "urethra": 1.5}, [2.0, 2.0, 2.0, 2.0])
    assert landmarks_outweigh_surfaces(closer, centroids, fit_rms_mm=2.0)  # 7 mm closer, surfaces 0.5 mm apart
    assert not landmarks_outweigh_surfaces(closer, centroids, fit_rms_mm=8.0)  # landmarks that fit no rigid motion
    assert not landmarks_outweigh_surfaces(closer, centroids, fit_rms_mm=None)  # fewer than MIN_LANDMARKS
    # A deformable result can pass through wrong landmarks; their own rigid fit still shows them wrong.
    through = GuidanceScore(closer.dice, closer.surface_mm, [0.1, 0.1, 0.1, 0.1])
    assert not landmarks_outweigh_surfaces(through, centroids, fit_rms_mm=10.6)
    vanished = GuidanceScore({"gland": 0.55, "urethra": 0.0}, {"gland": 2.0, "urethra": None}, closer.points_mm)
    assert not landmarks_outweigh_surfaces(vanished, centroids, fit_rms_mm=2.0)  # the urethra left the image
    apart = GuidanceScore(closer.dice, {"gland": 9.0, "urethra": 9.0}, closer.points_mm)
    assert not landmarks_outweigh_surfaces(apart, centroids, fit_rms_mm=2.0)  # surfaces 7.75 mm apart > 7 mm
