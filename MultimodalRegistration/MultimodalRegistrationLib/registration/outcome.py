"""The last steps of :func:`.register.register`: never worse than the start (keep the result, an earlier
stage of it, the segment centroids or the start), the weak-result check, and the provenance."""

from __future__ import annotations

import platform
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ..core.choices import FULL_ROTATION_DEG
from ..core.digest import file_sha256
from ..core.images import physical_center
from ..core.metric import mutual_information
from ..core.point_frames import FRAME_FIX, other_frame_fit
from ..core.rotations import pose_change
from ..core.transforms import Transform
from ..core.version import __version__
from ..core.views import field_of_view
from ..engines.output import EngineOutput
from ..engines.registry import engine_spec
from ..engines.run import lost_overlap
from .guided.run import guided_record, judged_by_centroids, noise_reason, start_uncertainty
from .guided.score import guidance_score, segments_apart_warning
from .rules.axis_spacing import axis_spacing_warning
from .rules.far_from_start import (
    FAR_FROM_HEADERS_MM,
    FAR_FROM_START,
    FAR_MOVE_MM,
    confirms_start,
    far_warning,
    moved_from_start_mm,
)
from .rules.inside_size import inside_size_warning
from .rules.keep import earlier_stage, far_turn_warning, images_outvote_guidance, why_not_kept
from .rules.masks import anatomy_center
from .rules.scale_drift import SCALE_DRIFT, SIZE_DRIFTED, scale_drift_reason, size_drift_warning
from .rules.shape_change import shape_change_warning
from .rules.size_check import SIZE_WARNING, size_warning
from .rules.slab_probe import SLAB_POSE, probe_slab, slab_probe_words
from .rules.thin_moving import OTHER_WAY, thin_side_mm
from .rules.uneven_size import uneven_size_warning
from .rules.view_mask import SMALL_VIEW, VIEW_MASK_SOURCE, from_view
from .rules.weak_result import WEAK_RESULT, weak_result_warning
from .runs import EngineRuns, RegistrationRun, RunPlan, error_reason
from .summary import GuidanceScores, Provenance


class Kept(NamedTuple):
    """What the registration returns, and why: ``kept`` is result, "<stage> stage", start or segment centroids."""

    transform: Transform
    inverse: Transform | None
    metric_after: float  # mutual information (nats) of ``transform``
    kept: str
    kept_reason: str


def _other_frame_words(prepared, result: Transform) -> str:
    """Why the images outvoted the landmarks, when the engine's ``result`` fits them read in the other frame
    (:func:`..core.point_frames.other_frame_fit`): a reviewer's walkthrough gave both lists in LPS, and the run
    returned their fit, 48 mm off, saying only that the images agreed far better with the engine's result."""
    guidance = prepared.guidance if prepared is not None else None
    if guidance is None or guidance.fixed_points_lps is None or len(guidance.fixed_points_lps) < 3:
        return ""
    found = other_frame_fit(guidance.fixed_points_lps, guidance.moving_points_lps, result)
    if found is None:
        return ""
    which, best, given = found
    return (f". The engine's result fits the {which} landmark list{'s' * (which == 'fixed and moving')} read with x "
            f"and y negated ({best:.1f} mm against {given:.1f} mm as given): they seem to be in the other coordinate "
            f"system (LPS read as RAS, or RAS as LPS): {FRAME_FIX}")


def keep_no_worse(run: RegistrationRun, plan: RunPlan, best: tuple) -> tuple[Kept, dict | None]:
    """The picked run's result if it is no worse than its start, else the latest earlier stage that is, else
    the start; guided, also no worse than the segment centroids brought together. Returns it and the
    guidance's record (None unguided)."""
    _, metric_after, _, start, output = best
    fixed, moving, prepared = run.fixed, run.moving, run.prepared
    metric_start = mutual_information(fixed, moving, start, run.fixed_mask)
    guided, judge = guided_record(prepared, start, output.transform, plan.guided_candidates)
    kept = Kept(output.transform, output.inverse, metric_after, "result", "")
    reason = why_not_kept(output.transform, metric_after, metric_start, fixed, judge, start)
    refused_by_noise = False
    if not reason and prepared is not None:
        from_guided = plan.guided_candidates is not None
        reason = noise_reason(
            prepared, fixed, moving, start, output, run.settings.seed, run.settings.initial_transform, from_guided
        )
        refused_by_noise = bool(reason)
    if reason:
        outvoted = images_outvote_guidance(metric_start, metric_after, judge)
        if outvoted:
            run.warnings.append(outvoted + _other_frame_words(prepared, output.transform))
        what = f"the {run.settings.engine} {run.recipe.name} result {reason}"
        hint = refusal_hint(run)
        score_start = guidance_score(prepared, start) if prepared is not None else None
        stage = None if refused_by_noise else earlier_stage(
            output, fixed, moving, run.fixed_mask, metric_start, prepared, score_start, start
        )  # fmt: skip
        if stage is not None:
            name, transform, metric = stage[0] + " stage", stage[1], stage[2]
            kept_reason = f"{what}: kept its {stage[0]} stage instead; {hint}"
        else:
            name, transform, metric = "start", start, metric_start
            kept_reason = f"{what}: kept the start; {hint}"
        kept = Kept(transform, transform.inverse() if transform.is_linear else None, metric, name, kept_reason)
        confirmed = (prepared is None and name == "start"
                     and confirms_start(fixed, start, output.transform, run.fixed_mask))  # fmt: skip
        if not (name == "start" and run.recipe.is_linear and plan.guided_candidates is not None) and not confirmed:
            run.warnings.append(kept_reason)
    kept = _judged_by_guidance(run, plan, kept, guided)
    if guided is not None and kept.kept != "result":  # the scores of what is returned; the engine's beside them
        guided.score_engine = guided.score_result
        scored = {"start": guided.score_start, "segment centroids": guided.score_centroids}.get(kept.kept)
        guided.score_result = scored or GuidanceScores.from_dict(guidance_score(prepared, kept.transform).to_dict())
    if guided is not None and (apart := segments_apart_warning(guided.score_result.dice)):
        run.warnings.append(apart)
    if guided is not None and guided.score_engine is not None and kept.kept != "result":
        turn = far_turn_warning(kept.kept_reason, guided.score_engine.mean_dice, guided.score_result.mean_dice)
        run.warnings.extend([turn] if turn else [])
    return kept, guided


def refusal_hint(run: RegistrationRun) -> str:
    """What to try when a result is refused, from what the run was given: no "add landmarks" to a run that has
    them, no "try the rigid preset" to a rigid one."""
    has_points = run.prepared is not None and run.prepared.guidance.has_points
    if not run.recipe.is_linear:
        if has_points:
            return "check the result in Registration QA"
        return "landmarks on both images can guide the deformable stage"
    return "try another start or a mask" if has_points else "try another start, a mask or landmarks"


def _judged_by_guidance(run: RegistrationRun, plan: RunPlan, kept: Kept, guided: dict | None) -> Kept:
    """Guided by segments, ``kept`` unless the segment centroids brought together are better; warns when the
    start's rotation is uncertain and the result keeps it."""
    if run.prepared is not None and run.prepared.pairs:
        kept = Kept(*judged_by_centroids(
            run.prepared, run.settings.initial_transform, run.fixed, run.moving, run.fixed_mask, kept, guided,
            run.warnings, run.recipe.scales,
        ))  # fmt: skip
        uncertain = start_uncertainty(plan.guided_candidates, kept.kept, plan.from_guided_start,
                                      run.settings.initial_transform is not None,
                                      run.prepared.guidance.metric == "intensity")  # fmt: skip
        run.warnings += [uncertain] if uncertain else []
    run.lap("keep_check_s")
    return kept


def start_after_lost_overlap(run: RegistrationRun, plan: RunPlan, engine_runs: EngineRuns) -> tuple | None:
    """Guided, when every engine run failed because the optimiser moved the images apart ("Too many samples map
    outside moving image buffer"): the start the guidance chose, as (best run, kept, guidance record), with a
    warning. A run that could not improve on its start returns it, as a refused result does. None unguided or
    for any other failure (the caller raises it)."""
    failure = engine_runs.failure
    if run.prepared is None or not plan.runs or failure is None or not lost_overlap(str(failure)):
        return None
    name, start = plan.runs[0]
    metric = mutual_information(run.fixed, run.moving, start, run.fixed_mask)
    inverse = start.inverse() if start.is_linear else None
    spec = engine_spec(run.settings.engine)
    output = EngineOutput(start, inverse, "", spec.version(), spec.threads(run.settings.threads))
    best = (None, metric, name, start, output)
    guided, _ = guided_record(run.prepared, start, start, plan.guided_candidates)
    reason = (f"the {run.settings.engine} {run.recipe.name} run moved the images apart ({error_reason(failure)}): "
              f"kept the start; {refusal_hint(run)}")  # fmt: skip
    run.warnings.append(reason)
    return best, _judged_by_guidance(run, plan, Kept(start, inverse, metric, "start", reason), guided), guided


def start_if_scale_drifted(run: RegistrationRun, plan: RunPlan, kept: Kept, best: tuple) -> Kept:
    """Unguided, a scaled result whose size left the start search's far behind while the images confirm that start
    (:mod:`.rules.scale_drift`): the start, with the reason among the warnings; else ``kept``, warned when it is
    of one scale and drifted as far. Not when the search kept the images' size (a slab's: no size searched)."""
    name, start = best[2], best[3]
    if run.prepared is not None or not run.recipe.scales or kept.kept != "result" or name != "any-pose":
        return kept
    if plan.starts.search is None or plan.starts.search.scale is None:
        return kept
    reason = scale_drift_reason(run.fixed, run.moving, start, kept.transform, run.fixed_mask)
    run.lap("scale_drift_check_s")
    if reason is None:
        run.warnings += [warning] if (warning := size_drift_warning(start, kept.transform)) else []
        return kept
    run.warnings.append(reason)
    metric = mutual_information(run.fixed, run.moving, start, run.fixed_mask)
    return Kept(start, start.inverse(), metric, "start", reason)


def probe_if_slab(run: RegistrationRun, kept: Kept) -> Kept:
    """Unguided and unmasked, with no initial transform nor limit on its turn, a linear result of a preset that keeps
    the size, for a thin fixed slab (:mod:`.rules.slab_probe`): a probed pose that agrees better, warned; else
    ``kept``, warned when a pose apart agrees about as well."""
    thickness = thin_side_mm(run.fixed, run.moving)  # the fixed image a slab inside the moving one
    masked = run.fixed_mask is not None or run.moving_mask is not None  # a view mask too: its start is the headers'
    if run.prepared is not None or thickness is None or masked or run.recipe.scales or not kept.transform.is_linear:
        return kept
    settings = run.settings  # a user's start, or turns limited, say where to look: the probe turns up to 20 degrees
    if settings.initial_transform is not None or settings.max_rotation_deg < FULL_ROTATION_DEG:
        return kept
    probe = probe_slab(run.fixed, run.moving, kept.transform, settings.seed)
    run.lap("slab_probe_s")
    returned, warning = slab_probe_words(probe, kept.metric_after, thickness) if probe else (False, None)
    run.warnings += [warning] if warning else []
    if not returned:
        return kept
    return Kept(probe.transform, probe.transform.inverse(), probe.metric, "pose a tilt search found", warning)


def warn_if_weak(run: RegistrationRun, kept: Kept, metric_before: float, plan: RunPlan, start: str) -> None:
    """Unguided, a warning when the result looks no better than the images' starting pose (see
    :mod:`.rules.weak_result`), judged more strictly when it ran from (``start``) a search its sample seeds left
    unsure; and one when it changes the anatomy's shape (:mod:`.rules.shape_change`)."""
    if run.prepared is not None:
        return
    center = anatomy_center(run.fixed, run.fixed_mask)
    searched = plan.starts.search if start == "any-pose" and kept.kept in ("result", "start") else None
    margin = searched.seed_margin if searched is not None else None
    weak = weak_result_warning(
        run.fixed, run.moving, kept.transform, kept.metric_after, metric_before, center, run.recipe.scales, margin
    )
    run.warnings += [warning for warning in (weak, shape_change_warning(kept.transform, run.fixed)) if warning]
    run.lap("weak_check_s")


def warn_if_wrong_size(run: RegistrationRun, kept: Kept) -> None:
    """Unguided, a warning when a result of a preset that keeps the size fits better at another size (see
    :mod:`.rules.size_check`), or stretched along one axis (:mod:`.rules.axis_spacing`): a spacing is likely wrong;
    or when a result of one scale fits better stretched along one axis (:mod:`.rules.uneven_size`): the tissue shrank
    unevenly; or when a scaled result's size is not the one the fixed image's tissue prefers
    (:mod:`.rules.inside_size`). Not for an ultrasound inside an MR
    (:mod:`.rules.view_mask`): its intensities confirm no size, and the check took 7 of a run's 8.7 s."""
    if run.prepared is not None or from_view(run.settings):
        return
    if run.recipe.scales:  # similarity: one scale for tissue that may have shrunk unevenly
        warning = uneven_size_warning(run.fixed, run.moving, kept.transform, run.fixed_mask, run.moving_mask)
        # Not on a start returned, nor beside a warning that already doubts the result or its size.
        doubted = any(said.startswith((SIZE_DRIFTED, SCALE_DRIFT, WEAK_RESULT)) for said in run.warnings)
        if warning is None and kept.kept == "result" and not doubted:
            warning = inside_size_warning(run.fixed, run.moving, kept.transform, run.fixed_mask)
    else:  # a size the preset keeps: the whole image's, or one axis's (a spacing stated wrong along it)
        warning = size_warning(run.fixed, run.moving, kept.transform, run.recipe.name, run.fixed_mask, run.moving_mask)
        if warning is None:
            warning = axis_spacing_warning(run.fixed, run.moving, kept.transform, run.fixed_mask, run.moving_mask)
    run.warnings += [warning] if warning else []
    run.lap("size_check_s")


def warn_if_far(result, fixed: sitk.Image, moving: sitk.Image, settings, guided: bool) -> None:
    """Unguided, a warning added to ``result`` (a :class:`.register.RegistrationResult` in the images' own mm) when
    it lies far from the initial transform the user gave (:mod:`.rules.far_from_start`): only when the engine
    started from that transform as given (start "initial" or "none", not a search or centring on top of it) and
    the result is not that start returned. When the images do not confirm the result either, the start is
    returned instead (:func:`start_if_unconfirmed`)."""
    made = result.provenance
    start, words, limit, mask = settings.initial_transform, "the initial transform", FAR_MOVE_MM, settings.fixed_mask
    if start is None and made.start == "header" and made.small_view:
        # An ultrasound inside an MR kept from the headers' pose, a navigation system's (rules/view_mask.py), and
        # sampled in its fan (or the user's mask): a helper's intraoperative ultrasound 15 mm off had ended 30 mm
        # off with no word; a phantom fan 4.8 mm off, with the user's fan mask, 19.6 mm.
        start, words, limit = Transform.identity(), "the headers' pose", FAR_FROM_HEADERS_MM
        mask = field_of_view(fixed, fixed) if made.fixed_mask == VIEW_MASK_SOURCE else mask
    if guided or start is None or made.start not in ("initial", "none", "header") or made.kept == "start":
        return
    moved = moved_from_start_mm(fixed, start, result.transform, mask)
    far = far_warning(moved, words, limit)
    if far and settings.initial_transform is not None and start.is_linear:
        far += _inverted_start_words(fixed, start, result.transform, mask, moved)
    result.warnings += [far] if far else []
    if far:
        start_if_unconfirmed(result, fixed, moving, (start, words), mask, moved)


# A result this much nearer the initial transform's inverse than the transform itself: the start was given the
# other way round (moving -> fixed), and the engine found the pose anyway (a reviewer's walkthrough: 0.06 mm off, with
# a warning that said only that the intensities may have pulled the result away).
INVERTED_SHARE = 0.2


def _inverted_start_words(fixed: sitk.Image, start: Transform, result: Transform, mask: sitk.Image | None,
                          moved: float) -> str:  # fmt: skip
    """Words to add to the far-from-start warning when ``result`` lies near the inverse of the user's linear
    ``start`` (within INVERTED_SHARE of how far it ``moved`` from it, mm); else ""."""
    near = moved_from_start_mm(fixed, start.inverse(), result, mask)
    if near > INVERTED_SHARE * moved:
        return ""
    return (f". It lies {near:.1f} mm from the initial transform's inverse: the initial transform was probably given "
            "the other way round (moving to fixed points); give the fixed -> moving one (its inverse) next time")


def start_if_unconfirmed(result, fixed: sitk.Image, moving: sitk.Image, start: tuple[Transform, str],
                         fixed_mask: sitk.Image | None, moved: float) -> None:  # fmt: skip
    """A result far from its linear start (the user's initial transform, or the headers' pose: ``start`` is the
    transform and its name) that the images do not confirm (the weak-result warning) is replaced by that start, and
    the two warnings by one that says so: nothing supports the move (``moved``: mm,
    :func:`.rules.far_from_start.moved_from_start_mm`). Unguided MR -> TRUS-like pairs started at the truth's best
    rigid fit (2-7 mm) were left 7-75 mm off by elastix in 23 of 23 runs (guided_results.md, thirty-fifth session)."""
    start, words = start
    doubts = [w for w in result.warnings if w.startswith((WEAK_RESULT, FAR_FROM_START))]
    if not start.is_linear or len(doubts) < 2:
        return
    made = result.provenance
    reason = (f"{WEAK_RESULT} (its mutual information hardly beats poses 30 mm or 90 deg away), and it lay {moved:.0f} "
              f"mm from {words} it started from: kept {words} instead. The intensities do "
              "not say what corresponds (MR to ultrasound or histology?): check the start with landmarks it was not "
              "given (QA), and guide the registration with segmentations or landmarks")  # fmt: skip
    result.transform, result.inverse = start, start.inverse()
    result.metric_after = mutual_information(fixed, moving, start, fixed_mask)
    made.kept, made.kept_reason = "start", reason
    made.other_way_round = None  # the user's start is returned, not a result registered the other way round
    # on the result no longer returned
    stale = [w for w in result.warnings if w.startswith((SIZE_WARNING, OTHER_WAY, SLAB_POSE))]
    result.warnings[:] = [w for w in result.warnings if w not in doubts + stale] + [reason]


def provenance(run: RegistrationRun, plan: RunPlan, engine_runs: EngineRuns, best: tuple, kept: Kept,
               guided: dict | None) -> Provenance:  # fmt: skip
    """How the result was made: versions, settings, the start chosen and those tried, inputs and timings."""
    _, _, start_name, start, output = best
    settings, starts, fixed = run.settings, plan.starts, run.fixed
    sources = settings.sources or {}
    files = list(dict.fromkeys(plan.rigid_files + run.recipe.files))  # a guided run's rigid stages ran first
    return Provenance(
        engine=settings.engine,
        engine_version=output.version,
        preset=run.recipe.name,
        preset_files=files,
        preset_sha256=[file_sha256(path) for path in files],
        stages_skipped=list(run.recipe.skipped),
        rigid_stage=plan.rigid_stage,
        library_version=__version__,
        simpleitk_version=sitk.Version.VersionString(),
        python_version=platform.python_version(),
        seed=settings.seed,
        threads=output.threads,
        init=settings.init,
        max_rotation_deg=settings.max_rotation_deg,
        initial_transform=sources.get("initial_transform"),
        start=start_name,
        start_matrix_lps=np.round(start.matrix, 9).tolist() if start.is_linear else None,
        before_matrix_lps=starts.before.matrix.tolist() if starts.before.is_linear else None,
        starts_tried=engine_runs.tried,
        any_pose=starts.search.summary() if starts.search is not None else None,
        start_offset=start_offset(start, starts.before, fixed, settings.initial_transform is not None),
        fixed=describe_image(fixed, sources.get("fixed")),
        moving=describe_image(run.moving, sources.get("moving")),
        fixed_mask=sources.get("fixed_mask") if settings.fixed_mask is not None else None,
        fixed_sampling=plan.regions[start_name].describe() if start_name in plan.regions else None,
        moving_mask=sources.get("moving_mask") if settings.moving_mask is not None else None,
        timings_s=run.timings,
        kept=kept.kept,
        kept_reason=kept.kept_reason,
        guidance=guided,
        small_view=SMALL_VIEW if from_view(settings) else None,
    )


def describe_image(image: sitk.Image, source: str | None) -> dict:
    """What the provenance records of an input image: its file, size (voxels), spacing (mm), origin (LPS mm)
    and pixel type."""
    return {
        "source": source,
        "size": list(image.GetSize()),
        "spacing_mm": [round(s, 6) for s in image.GetSpacing()],
        "origin_lps_mm": [round(o, 4) for o in image.GetOrigin()],
        "pixel_type": image.GetPixelIDTypeAsString(),
    }


def start_offset(start: Transform, before: Transform, fixed: sitk.Image, initial_given: bool) -> dict | None:
    """How far the chosen start lies from the pose before any search: rotation (degrees, scale and
    shear left out), mm at the fixed image's centre, and, when it changes size, its isotropic scale
    relative to that pose (``scale``, 1 = same size)."""
    if not (start.is_linear and before.is_linear):
        return None
    angle, scale, shift = pose_change(start.matrix, before.matrix, physical_center(fixed))
    reference = "initial transform" if initial_given else "image centres"
    offset = {"from": reference, "rotation_deg": round(angle, 2), "shift_mm": round(shift, 2)}
    if abs(scale - 1.0) > 1e-6:
        offset["scale"] = round(scale, 4)
    return offset
