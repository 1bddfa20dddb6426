"""The starting pose of a guided registration, from the paired segments and landmarks (LPS mm, fixed -> moving).

The images' own orientation is the prior: medical headers agree on which way is anterior and superior, and
a near-symmetric organ's principal axes do not tell front from back. So:

1. Prior rotation: the initial transform's (identity: the headers'). Translation: the segments' centroids
   brought together; every candidate turns about the fixed centroid and lands on the moving one (where a field
   of view cuts a segment, the centroids of the parts both images see at that candidate's rotation).
2. Candidates: the prior ("segment centroids") and rotations on a ``STEP_DEG`` lattice within ``MAX_DEG`` of
   it, each scored by the guidance (surface distance, mm) and the intensities (mutual information), each in
   units of its own bootstrap noise (:mod:`.start_score`), the surfaces' at ``SURFACE_WEIGHT``. A candidate's
   confidence is its share of bootstrap replicates in which it scores best.
3. The proposal, the mean rotation of the replicate winners, replaces the prior only when better beyond the
   noise: by ``PROPOSAL_Z`` SDs on the two scores together, neither of them worse by more than ``VETO_Z`` SDs,
   and by ``REFEREE_Z`` SDs on the mutual information of a wider region (the referee), or, read inside the
   segments, by ``REFEREE_Z`` SDs on their own intensities with the surfaces and the referee not against it
   by more than ``VETO_Z`` (:func:`_inside_confirms`).
   The replicate winners' spread is the rotation's uncertainty; beyond ``UNCERTAIN_MM``
   at the segments' surface a result that keeps the start's rotation warns (:func:`uncertainty_warning`).
4. Beyond the lattice: the four principal-axes rotations within ``AXES_MAX_DEG`` of the prior win only when
   better than the choice of step 3 by ``FAR_Z`` SDs together and ``WIN_Z`` SDs on the surfaces alone, and
   confirmed by the referee as the proposal is (a tie never turns an organ over; farther ones are listed, not
   eligible); the
   rigid fit of three or more landmarks wins unless worse than it beyond ``WIN_Z`` SDs.

Without segments, the landmarks give the start (their rigid fit, else their centroid at the prior rotation).
Under ``--init geometry`` or ``moments`` the segments' centroids at the prior rotation are the start, without
steps 2-4 (:func:`centroid_start`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ...core.choices import DEFAULT_SEED
from ...core.rotations import axis_angle_matrices, orthogonal_fit, rotation_angle_deg
from ...core.transforms import Transform
from ..summary import StartCandidate
from .guidance import PreparedGuidance
from .start_score import REFEREE_REGION_MM, SURFACE_WEIGHT, Judge, StartScorer, wide_intensity_z
from .views import SegmentViews, seen_parts

MAX_DEG = 30.0
STEP_DEG = 7.5
# A rotation within MAX_DEG of the prior, found by the bagged lattice search, needs this much evidence;
# farther candidates (axes, which may turn the organ over) need WIN_Z and FAR_Z.
PROPOSAL_Z = 1.0
WIN_Z = 2.0
VETO_Z = 1.0
# The referee: the intensities farther out (start_score.REFEREE_REGION_MM) must prefer the proposal too. On 168
# hard TRUS-like pairs at three true-turn ranges (504 starts; guided_results.md, tenth session) the starts
# worse than the centroids by > 1 mm fell from 31 to 20 at 0 SD and to 10 at 1 SD, the medians unchanged.
REFEREE_Z = 1.0
# Where the TRUS echoes none of the tissue around the gland, 25 mm of it can confirm no turn; the intensities
# inside the gland can. Chosen on 264 hard TRUS-like starts at 15-30 degrees and checked on 120 fresh ones: of the
# 116 turns this added, 65 came > 1 mm closer to the truth than the centroids and none > 1 mm farther; without the
# surfaces' and the referee's veto, 3 pairs did (guided_results.md, thirty-fourth session).
FAR_Z = 3.0
# Axes rotations farther than this from the prior are listed but cannot win: headers agree on the
# orientation to tens of degrees, and on a near-symmetric organ every axes rotation, flips included, can
# fit the surfaces better than a prior that is 30 degrees off (seen on the hard cohort: 86, 95, 169 and
# 179 degrees, +2.2 to +3.4 SD).
AXES_MAX_DEG = 2 * MAX_DEG
# The lattice search's own uncertainty: the RMS spread (degrees) of the bootstrap replicates' winning
# rotations about their mean, and that turn at the fixed segments' RMS radius (mm). On 48 hard TRUS-like pairs
# (seeds 100-123, 600-623) the 17 starts spread beyond UNCERTAIN_MM were a median 21 degrees from the truth
# (4.9 mm at the landmarks), the other 31 8.5 degrees (3.8 mm); they held 12 of the 15 starts more than 15
# degrees off. Those runs warn.
UNCERTAIN_MM = 4.0
PRIOR = "segment centroids"
# Candidate names start with these; the rules below tell the candidates apart by them.
AXES_NAME = "segment axes"
LANDMARKS_NAME = "landmark"


@dataclass
class GuidedStart:
    """The chosen start (fixed -> moving), why it won, every candidate, and the scores' noise."""

    name: str
    transform: Transform
    candidates: list[StartCandidate]
    reason: str = ""
    noise: dict = field(default_factory=dict)

    def record(self) -> dict:
        """For provenance: the choice, its reason, the noise scales and every candidate."""
        return {"chosen": self.name, "reason": self.reason, "noise": self.noise,
                "candidates": [candidate.to_dict() for candidate in self.candidates]}  # fmt: skip


def _moments(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (LPS mm) and principal axes (columns, largest spread first) of segment voxel positions (N, 3)."""
    centroid = points.mean(axis=0)
    # bias: a one-voxel segment (a calcification) has zero spread, not NaN; its axes are then the grid's
    _, vectors = np.linalg.eigh(np.cov((points - centroid).T, bias=True))
    return centroid, vectors[:, ::-1]


def segment_moments(prepared: PreparedGuidance, prior: np.ndarray) -> tuple[np.ndarray, ...]:
    """(fixed centroid, fixed axes, moving centroid, moving axes) of the segment parts both images see with the
    centroids brought together at ``prior`` (3x3; :func:`.views.seen_parts`): LPS mm, axes as columns."""
    fixed_points, moving_points = seen_parts(prepared, prior)
    return (*_moments(fixed_points), *_moments(moving_points))


def _recentred(prepared: PreparedGuidance, pose: np.ndarray, thin: bool = False) -> np.ndarray:
    """``pose`` (4x4) with its translation bringing together the centroids of the segment parts both images see
    at its rotation: which part a field of view cuts off depends on the rotation. Unchanged when none is cut.
    ``thin``: the centroids from a thinned set of voxels (:func:`.views.seen_parts`)."""
    if not SegmentViews.of(prepared).any_cut:
        return pose
    fixed_points, moving_points = seen_parts(prepared, pose[:3, :3], thin)
    return pose_about(pose[:3, :3], fixed_points.mean(axis=0), moving_points.mean(axis=0))


def pose_about(rotation: np.ndarray, fixed_centre: np.ndarray, moving_centre: np.ndarray) -> np.ndarray:
    """x_moving = rotation (x_fixed - fixed_centre) + moving_centre, as a 4x4 matrix."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = moving_centre - rotation @ fixed_centre
    return matrix


def lattice(max_deg: float = MAX_DEG, step_deg: float = STEP_DEG) -> np.ndarray:
    """Rotation vectors (degrees) on a cubic lattice inside a ball of ``max_deg``, the zero vector first."""
    steps = np.arange(-max_deg, max_deg + 1e-9, step_deg)
    grid = np.array([(a, b, c) for a in steps for b in steps for c in steps if a * a + b * b + c * c <= max_deg**2 + 1e-6])
    return grid[np.argsort(np.linalg.norm(grid, axis=1), kind="stable")]


def _rotation(vector_deg: np.ndarray) -> np.ndarray:
    return axis_angle_matrices(np.deg2rad(np.asarray(vector_deg, float))[None])[0]


def segment_centroid_alignment(prepared: PreparedGuidance, initial_transform: Transform | None = None) -> Transform:
    """The segments' centroids brought together at the prior rotation (the initial transform's, else none): of the
    parts both images see, where a field of view cuts a segment (:func:`.views.seen_parts`)."""
    prior = prior_rotation(initial_transform)
    fixed_centre, _, moving_centre, _ = segment_moments(prepared, prior)
    return Transform.from_matrix(pose_about(prior, fixed_centre, moving_centre))


def prior_rotation(initial_transform: Transform | None) -> np.ndarray:
    """The prior's rotation (3x3, fixed -> moving, LPS): the initial transform's when linear, else the headers'."""
    linear = initial_transform is not None and initial_transform.is_linear
    return initial_transform.matrix[:3, :3] if linear else np.eye(3)


def _axes_candidates(fixed_axes, moving_axes, fixed_centre, moving_centre) -> list[tuple[str, np.ndarray]]:
    out = []
    for signs in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        flip = np.diag([signs[0], signs[1], 1.0])
        rotation = moving_axes @ flip @ fixed_axes.T
        if np.linalg.det(rotation) < 0:
            rotation = moving_axes @ flip @ np.diag([1.0, 1.0, -1.0]) @ fixed_axes.T
        out.append((f"{AXES_NAME} {signs[0]:+d}{signs[1]:+d}", pose_about(rotation, fixed_centre, moving_centre)))
    return out


def _points_candidate(prepared: PreparedGuidance, prior: np.ndarray, scale: bool = False) -> tuple[str, np.ndarray] | None:
    """The landmarks' fit (rigid, or with one scale for a preset that scales), else their centroids at the prior."""
    terms = prepared.engine_terms
    if terms.fixed_points_lps is None:
        return None
    fixed, moving = terms.fixed_points_lps, terms.moving_points_lps
    centred = fixed - fixed.mean(axis=0)
    if len(fixed) >= 3 and np.linalg.matrix_rank(centred, tol=1.0) >= 2:  # not all on one line (1 mm)
        return f"{LANDMARKS_NAME}s", orthogonal_fit(fixed, moving, scale=scale)
    return f"{LANDMARKS_NAME} centroid", pose_about(prior, fixed.mean(axis=0), moving.mean(axis=0))


def _turn_from_prior_deg(pose: np.ndarray, prior: np.ndarray) -> float:
    """Degrees between a pose's rotation (its uniform scale taken out) and the prior's."""
    linear = pose[:3, :3] / np.cbrt(abs(np.linalg.det(pose[:3, :3])))
    return float(rotation_angle_deg(linear @ prior.T))


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _not_chosen(candidate: StartCandidate) -> None:
    """Mark a candidate that was chosen as no longer chosen, keeping its reason."""
    candidate.reason = f"not chosen: {candidate.reason.split(': ', 1)[1]}"


def _referee_z(scorer: StartScorer, prior_pose, proposal_pose, gain) -> float:
    """The wider region's intensity z of the proposal against the prior; +inf (no objection) without intensities."""
    if gain["z_mi"] is None:
        return float("inf")
    wide = wide_intensity_z(scorer, prior_pose, proposal_pose)
    return float("inf") if wide is None else wide


def _inside_confirms(scorer: StartScorer, gain: dict, wide_z: float) -> bool:
    """Whether a proposal the referee does not confirm stands on the intensities inside the segments: they
    prefer it by REFEREE_Z SDs, and neither the surfaces nor the referee are against it by more than VETO_Z."""
    return (scorer.reads_inside and gain["z_mi"] >= REFEREE_Z and gain["z_surface"] > -VETO_Z
            and wide_z > -VETO_Z)  # fmt: skip


def _segment_start(prepared, prior, fixed, moving, seed, scale) -> GuidedStart:
    scorer = StartScorer.of(prepared, fixed, moving, seed)
    judge = Judge(scorer)
    fixed_centre, fixed_axes, moving_centre, moving_axes = segment_moments(prepared, prior)
    vectors = lattice()
    # Each candidate turns about the parts both images see at its own rotation: with the prior's parts, a head
    # whose MR box cut 25% of the brain started 12.5 mm off (the truth 25 degrees from the headers).
    poses = [pose_about(_rotation(v) @ prior, fixed_centre, moving_centre) for v in vectors]
    poses[1:] = [_recentred(prepared, pose, thin=True) for pose in poses[1:]]
    scores = scorer.evaluate(poses)
    surface, mi = scores.surface, scores.mi
    rs, rm = scorer.replicates(scores)
    judge.calibrate(rs, rm)
    combined = judge.combined(rs, rm)
    winners = np.argmax(combined, axis=1)
    wins = np.bincount(winners, minlength=len(poses)) / len(winners)
    vector = vectors[winners].mean(axis=0)  # the bagged proposal (step 3); its winners' RMS spread about it:
    spread_deg = float(np.sqrt(((vectors[winners] - vector) ** 2).sum(axis=1).mean()))
    radius_mm = float(np.sqrt((np.linalg.norm(np.concatenate(scorer.points) - fixed_centre, axis=1) ** 2).mean()))
    point = judge.combined(surface.mean(axis=1)[None], None if mi is None else mi.mean(axis=1)[None])[0]
    spread = (combined - combined[:, [0]]).std(axis=0)
    candidates = [
        StartCandidate(PRIOR if not v.any() else f"segment surfaces, rotated {np.round(v, 1).tolist()} deg",
                       _rounded(np.linalg.norm(v), 1), _rounded(surface[i].mean(), 3),
                       None if mi is None else _rounded(mi[i].mean(), 5),
                       _rounded((point[i] - point[0]) / spread[i], 2) if spread[i] > 0 else 0.0,
                       _rounded(wins[i], 3), "scored on the lattice")
        for i, v in enumerate(vectors)
    ]  # fmt: skip
    noise = {"surface_mm": _rounded(judge.tau_s, 4), "mutual_information": _rounded(judge.tau_i, 6),
             "bootstrap": len(winners), "surface_cut_by_field_of_view": _rounded(scorer.cut_fraction, 3),
             "intensities": scorer.intensity is not None, "intensity_region_mm": scorer.intensity_region_mm,
             "rotation_spread_deg": _rounded(spread_deg, 1),
             "rotation_spread_mm": _rounded(np.deg2rad(spread_deg) * radius_mm, 1)}  # fmt: skip

    # Step 3: the bagged proposal against the prior.
    proposal_pose = _recentred(prepared, pose_about(_rotation(vector) @ prior, fixed_centre, moving_centre))
    angle = float(np.linalg.norm(vector))
    gain = judge.gains(poses[0], [proposal_pose])[0]
    proposal = StartCandidate(f"segment surfaces, rotated {angle:.0f} deg", _rounded(angle, 1),
                              _rounded(gain["surface_mm"], 3), _rounded(gain["mi"], 5), _rounded(gain["z"], 2),
                              _rounded(gain["confidence"], 3))  # fmt: skip
    candidates.append(proposal)
    vetoed = [name for name, z in (("surface distance", gain["z_surface"] * SURFACE_WEIGHT),
                                   ("mutual information", gain["z_mi"])) if z is not None and z < -VETO_Z]  # fmt: skip
    # The surfaces alone: their noise is 1 / SURFACE_WEIGHT times their bootstrap SD, so z counts that much less.
    needed = PROPOSAL_Z if gain["z_mi"] is not None else PROPOSAL_Z / SURFACE_WEIGHT
    if angle < 1.0:
        reason, chosen, chosen_pose = "no rotation near the prior scores better", candidates[0], poses[0]
    elif gain["z"] < needed:
        reason = f"the proposal {angle:.0f} degrees from the prior is better by only {gain['z']:.1f} SD (< {needed:g})"
        chosen, chosen_pose = candidates[0], poses[0]
    elif vetoed:
        reason = f"the proposal is better overall ({gain['z']:.1f} SD) but its {vetoed[0]} is worse beyond the noise"
        chosen, chosen_pose = candidates[0], poses[0]
    elif ((wide_z := _referee_z(scorer, poses[0], proposal_pose, gain)) < REFEREE_Z
          and not _inside_confirms(scorer, gain, wide_z)):  # fmt: skip
        reason = (f"the proposal {angle:.0f} degrees from the prior is better by {gain['z']:.1f} SD near the "
                  f"segments, but the intensities within {REFEREE_REGION_MM:g} mm do not confirm it "
                  f"({wide_z:+.1f} SD < {REFEREE_Z:g}), nor, unopposed, those inside them (intensities "
                  f"{gain['z_mi']:+.1f}, surfaces {gain['z_surface']:+.1f})")  # fmt: skip
        chosen, chosen_pose = candidates[0], poses[0]
    else:
        mi_text = "" if gain["z_mi"] is None else f", intensities {gain['z_mi']:+.1f}"
        wide_text = "" if not np.isfinite(wide_z) else f"; within {REFEREE_REGION_MM:g} mm {wide_z:+.1f}" + (
            "" if wide_z >= REFEREE_Z else ", confirmed inside the segments")
        reason = (f"{angle:.0f} degrees from the prior, better by {gain['z']:.1f} SD (surfaces "
                  f"{gain['z_surface']:+.1f}{mi_text}{wide_text}); confidence {gain['confidence']:.2f}")  # fmt: skip
        chosen, chosen_pose = proposal, proposal_pose
    proposal.reason = ("chosen: " if chosen is proposal else "not chosen: ") + reason
    if chosen is not proposal:
        candidates[0].reason = "chosen (the prior): " + reason

    # Step 4: candidates beyond the lattice, against the choice.
    extras = [(name, _recentred(prepared, pose))
              for name, pose in _axes_candidates(fixed_axes, moving_axes, fixed_centre, moving_centre)]
    points = _points_candidate(prepared, prior, scale)
    extras += [points] if points is not None else []
    winners_beyond = []
    for (name, pose), gain in zip(extras, judge.gains(chosen_pose, [pose for _, pose in extras])):
        extra = StartCandidate(name, _rounded(_turn_from_prior_deg(pose, prior), 1),
                               _rounded(gain["surface_mm"], 3), _rounded(gain["mi"], 5), None,
                               _rounded(gain["confidence"], 3))  # fmt: skip
        if name.startswith(AXES_NAME) and extra.rotation_from_prior_deg > AXES_MAX_DEG:
            wins_here = False
            rule = f"not eligible: more than {AXES_MAX_DEG:g} degrees from the prior"
        elif name.startswith(AXES_NAME):
            wins_here = gain["z"] > FAR_Z and gain["z_surface"] > WIN_Z and (gain["z_mi"] or 0.0) > -VETO_Z
            rule = f"an axes rotation needs > {FAR_Z:g} SD together and > {WIN_Z:g} SD on the surfaces"
            if wins_here:  # and, as the lattice's proposal, the wider intensities' confirmation
                wide_z = _referee_z(scorer, chosen_pose, pose, gain)
                wins_here = wide_z >= REFEREE_Z
                if np.isfinite(wide_z):
                    rule += f", and >= {REFEREE_Z:g} SD within {REFEREE_REGION_MM:g} mm ({wide_z:+.1f})"
        else:
            wins_here = gain["z"] >= -WIN_Z
            rule = f"the landmarks' fit wins unless worse by > {WIN_Z:g} SD"
        extra.reason = f"against {chosen.name}: {gain['z']:+.1f} SD, surfaces {gain['z_surface']:+.1f} SD ({rule})"
        candidates.append(extra)
        if wins_here:
            rank = (name.startswith(LANDMARKS_NAME), gain["z"])
            winners_beyond.append((rank, extra, pose))
    if winners_beyond:
        _, extra, chosen_pose = max(winners_beyond, key=lambda item: item[0])
        _not_chosen(chosen)
        chosen, reason = extra, extra.reason
        extra.reason = "chosen: " + extra.reason
    return GuidedStart(chosen.name, Transform.from_matrix(chosen_pose), candidates, reason, noise)


# How the uncertainty warnings begin (a batch's triage looks for them).
UNCERTAIN_START = "the guided start's rotation is"
KEEPS_INITIAL_ROTATION = "the result keeps the initial transform's rotation"


def uncertainty_warning(name: str, noise: dict, initial_given: bool = False, landmarks_given: bool = False,
                        intensities: bool = True) -> str | None:  # fmt: skip
    """A warning when the rotation the segments and intensities chose (start ``name``, its record's ``noise``)
    is uncertain beyond UNCERTAIN_MM at the segments' RMS radius; None when it is not, or when the landmarks or
    a principal-axes turn chose. ``initial_given``: the prior is the user's initial transform, not the headers;
    ``landmarks_given``: landmarks guided too, and their fit lost; ``intensities``: the start scored them too (not
    under --metric segments, whose warning had named them all the same; a helper's sweep)."""
    judges = "the segments and intensities" if intensities else "the segments"
    spread_mm = noise.get("rotation_spread_mm")
    if spread_mm is None or spread_mm <= UNCERTAIN_MM or name.startswith((LANDMARKS_NAME, AXES_NAME)):
        return None
    spread = (f"uncertain by about {noise['rotation_spread_deg']:.0f} degrees ({spread_mm:.1f} mm at the segments' "
              "surface; the spread of its bootstrap winners)")  # fmt: skip
    if initial_given and name == PRIOR:  # e.g. a landmark prealignment: its rotation is kept, unchecked
        return (f"{KEEPS_INITIAL_ROTATION}, which {judges} neither "
                f"confirm nor correct: it is {spread}. Check the initial transform, or the result "
                "(Registration QA)")  # fmt: skip
    advice = ("The landmarks' own fit lost to it: check that each pair marks the same feature, and the result"
              if landmarks_given else "Add three or more landmarks on both images, or check the result")
    return (f"{UNCERTAIN_START} {spread}, and the result keeps it: {judges} do not fix it. "
            f"{advice} (Registration QA)")  # fmt: skip


def guided_start(
    prepared: PreparedGuidance,
    initial_transform: Transform | None = None,
    fixed: sitk.Image | None = None,
    moving: sitk.Image | None = None,
    seed: int = DEFAULT_SEED,
    scale: bool = False,
) -> GuidedStart:
    """The start the guidance suggests. ``initial_transform`` (linear, fixed -> moving) gives the prior
    rotation; ``fixed``/``moving`` add the intensities to the scores (without them the guidance alone decides).
    ``scale`` (a linear preset that scales: similarity, affine): the landmarks' fit takes one scale too."""
    prior = prior_rotation(initial_transform)
    if prepared.pairs:
        return _segment_start(prepared, prior, fixed, moving, seed, scale)
    name, pose = _points_candidate(prepared, prior, scale)
    candidate = StartCandidate(name, _rounded(_turn_from_prior_deg(pose, prior), 1), reason="the only candidate")
    return GuidedStart(name, Transform.from_matrix(pose), [candidate], "landmarks alone guide")


def centroid_start(prepared: PreparedGuidance, initial_transform: Transform | None = None) -> GuidedStart:
    """The start of ``--init geometry`` or ``moments`` with segments: the segments' centroids brought together at
    the prior rotation, without the rotation search. The image boxes' or foregrounds' centres would leave the
    organ where the two fields of view put it (the real MR -> TRUS pairs of issue 22: 11-18 mm, against 4-7 mm
    for the centroids)."""
    pose = segment_centroid_alignment(prepared, initial_transform)
    candidate = StartCandidate(PRIOR, 0.0, reason="the only candidate: the init method asks for no rotation search")
    return GuidedStart(PRIOR, pose, [candidate], "segments given: the translation starts from their centroids")
