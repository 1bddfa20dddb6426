"""How :func:`..register.register` treats a guided run: its start, which of several runs agrees best with
the guidance, the guidance's record, and the two rules that judge a guided result (better than its start
beyond the noise; better than the segment centroids brought together)."""

from __future__ import annotations

import SimpleITK as sitk

from ...core.metric import mutual_information
from ...core.transforms import Transform
from ..pose.centres import centre_alignment
from ..pose.initialize import StartingPoses
from ..rules.keep import worse_beyond_noise
from ..summary import GuidanceRecord, GuidanceScores
from .guidance import PreparedGuidance
from .score import guidance_score, landmark_fit_rms_mm, landmarks_outweigh_surfaces, worse_than
from .start import (
    LANDMARKS_NAME,
    centroid_start,
    guided_start,
    prior_rotation,
    segment_centroid_alignment,
    uncertainty_warning,
)


def guided_starts(
    fixed: sitk.Image, moving: sitk.Image, prepared: PreparedGuidance, initial_transform: Transform | None, seed: int,
    scale: bool = False, search: bool = True,
) -> tuple[StartingPoses, dict]:
    """The one start the guidance suggests (see :mod:`.guided.start`; ``scale``: the preset is linear and scales),
    and the record of the candidates it weighed; without ``search``, the segments' centroids at the prior rotation."""
    if search:
        chosen = guided_start(prepared, initial_transform, fixed, moving, seed, scale)
    else:
        chosen = centroid_start(prepared, initial_transform)
    before = initial_transform if initial_transform is not None else centre_alignment(fixed, moving, None, "geometry")
    return StartingPoses(poses=[(f"guided ({chosen.name})", chosen.transform)], before=before), chosen.record()


def start_uncertainty(
    choice: dict | None, kept: str, from_guided_start: bool, initial_given: bool = False, intensities: bool = True
) -> str | None:
    """The guided start's uncertainty warning (:func:`.start.uncertainty_warning`) when the result's rotation
    is the start's: ``kept`` is "start", or it is "result" and the run's deformable stages ran from the start
    itself (the plan's ``from_guided_start``, see :func:`..rigid_first.rigid_first`); ``initial_given``: the user
    gave the start's prior rotation (an initial transform)."""
    from_start = kept == "start" or (kept == "result" and from_guided_start)
    if not choice or not from_start:
        return None
    landmarks = any(c.get("name", "").startswith(LANDMARKS_NAME) for c in choice.get("candidates") or [])
    return uncertainty_warning(choice.get("chosen", ""), choice.get("noise") or {}, initial_given, landmarks,
                               intensities)  # fmt: skip


def guided_rank(prepared: PreparedGuidance, transform: Transform) -> float:
    """Which of several guided runs agrees best with the guidance: mean Dice, else minus the landmark RMS (mm)."""
    score = guidance_score(prepared, transform)
    return score.mean_dice if score.mean_dice is not None else -score.points_rms_mm


def guided_record(
    prepared: PreparedGuidance | None, start: Transform, result: Transform, choice: dict | None
) -> tuple[GuidanceRecord | None, dict | None]:
    """The guidance's provenance (scores at the start and the result) and the keep rule's verdict on it."""
    if prepared is None:
        return None, None
    at_start, at_result = guidance_score(prepared, start), guidance_score(prepared, result)
    choice = choice or {}
    parts = {
        "start_candidates": choice.get("candidates"),
        "start_choice": {key: value for key, value in choice.items() if key != "candidates"} or None,
        "score_start": at_start.to_dict(),
        "score_result": at_result.to_dict(),
        "points_fit_rms_mm": None if (fit := landmark_fit_rms_mm(prepared)) is None else round(fit, 4),
    }
    record = GuidanceRecord.from_dict(prepared.describe() | parts)
    voxel_mm = max(prepared.fixed_masks[0].GetSpacing()) if prepared.fixed_masks else 0.0
    worse = worse_than(at_result, at_start, voxel_mm)
    return record, {"worse": worse, "intensity": prepared.guidance.metric == "intensity"}


def noise_reason(prepared, fixed, moving, start: Transform, output, seed: int,
                 initial_transform: Transform | None, from_guided_start: bool) -> str:  # fmt: skip
    """Why a guided result is not better than its start beyond the noise ("" when it is). A nonlinear result
    is judged by its last linear stage, the pose its deformable stage started from. When the run started from a
    guided start (searched about, or under ``--init geometry`` placed at, the prior: ``initial_transform``'s rotation,
    else the headers'), the result may not turn far from the prior either, and a turn must convince the start's
    referee (the intensities farther out)."""
    judged, what = output.transform, "is"
    if not judged.is_linear:
        linear = [transform for _, transform in getattr(output, "stages", []) if transform.is_linear]
        if not linear:
            return ""
        judged, what = linear[-1], "starts its deformable stage from a linear stage that is"
    prior = prior_rotation(initial_transform) if from_guided_start else None
    noise = worse_beyond_noise(prepared, fixed, moving, start, judged, seed, prior, refereed=from_guided_start)
    return f"{what} not better than its start beyond the noise: {noise}" if noise else ""


def judged_by_centroids(
    prepared, initial_transform, fixed, moving, fixed_mask, outcome: tuple, guided: GuidanceRecord, warnings: list[str],
    scale: bool = False,
) -> tuple:
    """A guided result no better than the segments' centroids brought together gives way to that alignment,
    with a warning. Judged by the guidance only, to MIN_TOLERANCE_MM without widening to a voxel: the centroid
    alignment needs no engine, so a result must at least match it; mutual information cannot overrule this, and
    landmarks can only as :func:`.score.landmarks_outweigh_surfaces` says (trusted when they fit a rigid motion, or
    with ``scale`` a scaled one: a cleared, shrunk brain). ``outcome`` and the return:
    (transform, inverse, metric_after, kept, kept_reason)."""
    transform, inverse, metric, kept, kept_reason = outcome
    centroids = segment_centroid_alignment(prepared, initial_transform)
    after, at_centroids = guidance_score(prepared, transform), guidance_score(prepared, centroids)
    worse = worse_than(after, at_centroids, 0.0)
    guided.score_centroids = GuidanceScores.from_dict(at_centroids.to_dict())
    what = "result" if kept == "result" else f"result's {kept}"
    if worse and landmarks_outweigh_surfaces(after, at_centroids, landmark_fit_rms_mm(prepared, scale)):
        reason = (f"the guided {what} agrees less with the segments than their centroids brought together ({worse}), "
                  f"but is closer to the landmarks ({after.points_rms_mm:.2f} against "
                  f"{at_centroids.points_rms_mm:.2f} mm RMS) by more than the segment surfaces moved apart: kept for "
                  "the landmarks; check the segmentations and the landmarks' labels")  # fmt: skip
        warnings.append(reason)
        return transform, inverse, metric, kept, f"{kept_reason}; {reason}" if kept_reason else reason
    if not worse:
        return outcome
    reason = (f"the guided {what} agrees less with the guidance than the segment centroids brought together "
              f"({worse}): returned the centroid alignment; check the segmentations"
              f"{' and the landmarks' if prepared.guidance.has_points else ', or add landmarks'}")  # fmt: skip
    warnings.append(reason)
    metric_centroids = mutual_information(fixed, moving, centroids, fixed_mask)
    return centroids, centroids.inverse(), metric_centroids, "segment centroids", reason
