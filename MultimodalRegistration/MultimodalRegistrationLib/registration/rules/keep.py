"""Never worse than the start: whether a registration's result is kept, and the earlier stage it falls back to
when it is not."""

from __future__ import annotations

import re

import numpy as np
import SimpleITK as sitk

from ...core.errors import EngineError
from ...core.folding import SAMPLING_SPACING_MM, folding
from ...core.metric import mutual_information
from ...core.rotations import MAX_SCALE, MIN_SCALE, isotropic_scale, rotation_angle_deg
from ...core.transforms import Transform, lps_ras_points
from ..guided.score import guidance_score, worse_than
from ..guided.start import AXES_MAX_DEG, FAR_Z, MAX_DEG, STEP_DEG, WIN_Z
from ..guided.start_score import REFEREE_REGION_MM, StartScorer, paired_z, surface_change_mm, wide_intensity_z
from .weak_result import linear_part

# "Never worse than the start": a result whose mutual information falls more than this (nats) below
# that of the start it ran from is not kept. The same value as QA's triage tolerance (qa/triage.py
# METRIC_TOLERANCE_NATS, not imported: registration does not depend on qa), which is about what a
# fraction of a millimetre off the truth costs (see core/metric.py).
KEEP_TOLERANCE_NATS = 0.005
# Grid (mm) on which a nonlinear result's Jacobian determinant is sampled for folding, besides each displacement
# field in it on its own cells (core/folding.py): QA's grid, so a result kept is not one QA's triage finds folding.
FOLDING_CHECK_SPACING_MM = SAMPLING_SPACING_MM
COLLAPSED = "collapsed or exploded"  # what the refusal of a collapsed result says


def check_linear_result(transform: Transform, preset_name: str, fixed: sitk.Image | None = None) -> None:
    """Refuse a mirrored or collapsed linear result: an engine can return one (ANTs Affine). Given the ``fixed``
    image, a nonlinear result is judged by its affine part over the fixed box (:func:`.weak_result.linear_part`):
    the affine stage inside a deformable preset can collapse as an affine preset can."""
    if transform.is_linear:
        matrix, what = transform.matrix, f"the {preset_name} result"
    elif fixed is not None:
        matrix, what = linear_part(transform, fixed).matrix, f"the {preset_name} result's affine part"
    else:
        return
    singular = np.linalg.svd(matrix[:3, :3], compute_uv=False)
    determinant = float(np.linalg.det(matrix[:3, :3]))
    if determinant <= 0 and singular.min() >= MIN_SCALE:  # a singular matrix (determinant -0.001) collapsed, not mirrored
        raise EngineError(
            f"{what} is mirrored (determinant {determinant:.3f})",
            hint="use the rigid preset, or prealign with landmarks so the engine starts closer",
        )
    if determinant <= 0 or singular.min() < MIN_SCALE or singular.max() > MAX_SCALE:
        hint = "use the rigid preset, mask the anatomy, or prealign with landmarks"
        if determinant > 0 and (singular.min() > 2.0 or singular.max() < 0.5):
            # Scaled as a whole: a helper's mouse stack saved at 1 mm for 0.02 mm had been told to use rigid.
            hint = (f"it scales the anatomy about {isotropic_scale(matrix[:3, :3]):.3g} times as a whole: "
                    "check the voxel spacing in both image headers (mmreg prep --spacing-fixed/--spacing-moving sets "
                    "it without resampling); if it is right, " + hint)  # fmt: skip
        raise EngineError(f"{what} {COLLAPSED} (scales {np.round(singular, 3).tolist()})", hint=hint)


def minimum_jacobian(transform: Transform, fixed: sitk.Image, spacing_mm: float = FOLDING_CHECK_SPACING_MM) -> float:
    """The smallest Jacobian determinant of ``transform`` (fixed -> moving) over the fixed image's box, sampled on a
    grid ``spacing_mm`` wide and on each displacement field's own cells; a value <= 0 means it folds space there."""
    return folding(transform, fixed, spacing_mm=spacing_mm).minimum


def _folds_as_its_start(transform: Transform, start: Transform | None, fixed: sitk.Image) -> bool:
    """Whether ``transform``'s only fields are its ``start``'s and that start, measured as the result is (its fields
    after a linear part: the cells the fixed box reaches), folds too: a linear stage changes no field, and a start
    inverted in place (Slicer's iterative inverse, folding near its rim) had made a good rigid result be refused for
    the start's own folds (a nodes sweep). One that moves the box onto a fold its start never reached is judged."""
    if not _start_fields_only(transform, start):
        return False
    return folding(start @ Transform.identity(), fixed, spacing_mm=FOLDING_CHECK_SPACING_MM).minimum <= 0


def _start_fields_only(transform: Transform, start: Transform | None) -> bool:
    """Whether every nonlinear part of ``transform`` is a displacement field of ``start``."""
    if start is None:
        return False
    ours = [sitk.GetArrayViewFromImage(sitk.DisplacementFieldTransform(part.sitk).GetDisplacementField())
            for part in start.components() if part.kind == "displacement"]  # fmt: skip
    for part in transform.components():
        if part.is_linear:
            continue
        if part.kind != "displacement":
            return False
        field = sitk.GetArrayViewFromImage(sitk.DisplacementFieldTransform(part.sitk).GetDisplacementField())
        if not any(field.shape == theirs.shape and np.array_equal(field, theirs) for theirs in ours):
            return False
    return True


def why_not_kept(
    transform: Transform, metric_after: float, metric_start: float, fixed: sitk.Image, guided: dict | None = None,
    start: Transform | None = None,
) -> str:
    """"" when a result is no worse than its start; else why it is, with the numbers.

    The rule holds for every result, linear or not: its mutual information may not fall more than
    KEEP_TOLERANCE_NATS below the start's, and a nonlinear one must not fold (Jacobian determinant > 0 by QA's
    check, core/folding.py, over the fixed image's box) unless it folds as its ``start`` does.
    A guided result (``guided``: its "worse" reason from :func:`.guided_score.worse_than` and whether
    the image term drove it) must also agree no less with the segments and landmarks; under
    ``--metric segments`` the intensities do not judge it.
    """
    if guided and guided["worse"]:
        return f"agrees less with the guidance than its start ({guided['worse']})"
    judged_by_metric = guided is None or guided["intensity"]
    if judged_by_metric and metric_after < metric_start - KEEP_TOLERANCE_NATS:
        return f"agrees less than its start (mutual information {metric_after:.3f} < {metric_start:.3f} nats)"
    if not transform.is_linear:
        found = folding(transform, fixed, spacing_mm=FOLDING_CHECK_SPACING_MM)
        if found.minimum <= 0 and not _folds_as_its_start(transform, start, fixed):
            where = ", ".join(f"{v:.0f}" for v in lps_ras_points(found.at_lps.reshape(1, 3))[0])
            return (
                f"folds space (Jacobian determinant down to {found.minimum:.3f} <= 0 at RAS {where} mm, on a "
                f"{FOLDING_CHECK_SPACING_MM:g} mm grid or within a displacement field's own cells)"
            )
    return ""


# A guided result refused for its guidance while the images agree this much better there (ratio and nats of mutual
# information) is worth a word: one wrong landmark pair returned its start 35 mm off, MI 0.277 against the engine's
# 0.729, without one (audit). On the TRUS-like pairs the refused results gain a few hundredths of a nat.
IMAGES_OUTVOTE_RATIO = 1.5
IMAGES_OUTVOTE_NATS = 0.2
OUTVOTED = "the images agree far better at the engine's result"  # how the warning starts


def images_outvote_guidance(metric_start: float, metric_after: float, guided: dict | None) -> str:
    """A warning when a guided result was refused for its guidance although the images agree far better at it
    (see IMAGES_OUTVOTE_RATIO); "" otherwise, and under ``--metric segments`` (the intensities were set aside)."""
    if not (guided and guided["worse"] and guided.get("intensity", True)):
        return ""
    if metric_after < IMAGES_OUTVOTE_RATIO * metric_start or metric_after - metric_start < IMAGES_OUTVOTE_NATS:
        return ""
    return (
        f"{OUTVOTED} than at what was returned (mutual information "
        f"{metric_after:.3f} against {metric_start:.3f} nats), which the guidance refused ({guided['worse']}): if a "
        "landmark or segmentation may be wrong, check it, or run without the guidance"
    )


def earlier_stage(output, fixed, moving, fixed_mask, metric_start, prepared, score_start, start=None) -> tuple | None:
    """The latest earlier stage of a multi-stage result (its affine before the B-spline, say) that is no
    worse than the start: (stage name, transform, mutual information), or None."""
    for name, transform in reversed(getattr(output, "stages", [])[:-1]):
        metric = mutual_information(fixed, moving, transform, fixed_mask)
        judge = None
        if prepared is not None:
            voxel_mm = max(prepared.fixed_masks[0].GetSpacing()) if prepared.fixed_masks else 0.0
            worse = worse_than(guidance_score(prepared, transform), score_start, voxel_mm)
            judge = {"worse": worse, "intensity": prepared.guidance.metric == "intensity"}
        if not why_not_kept(transform, metric, metric_start, fixed, judge, start):
            return name, transform, metric
    return None


# A linear guided result replaces its start only when better by KEEP_Z SDs of their paired bootstrap difference,
# the surface distance and the mutual information inside the segments (start_score.REGION_MM; a 10 mm ring until
# the 33rd session, so the thresholds were set on that) together, and neither worse by VETO_Z SDs
# (guided/start_score.paired_z). The scores are the start's, but the rule is stricter than the one by which the
# start beat the prior (guided/start.py: surfaces at SURFACE_WEIGHT, PROPOSAL_Z): the engine has just optimised
# these surfaces, so their full weight and 2 SD stand.
KEEP_Z = 2.0
VETO_Z = 1.0
# The surfaces veto only a change larger than this share of the fixed image's coarsest voxel: thousands of surface
# points make a bootstrap SD of hundredths of a mm, below what two segmentations voxelised on different grids can
# tell. A CT/MR head whose MR box cut a third of the brain: the engines' 0.3-0.4 mm result lay 0.13 mm farther
# from the surfaces (at 2-3 mm voxels, -10 SD) than a start 3.1 mm off, and the start was kept.
SURFACE_VETO_VOXELS = 0.1
# The intensities inside the segments veto no result whose surfaces came closer by this many SDs and more than
# OVERRULE_VOXELS of the fixed image's coarsest voxel: inside a thin, even segment (a spinal cord, 5 mm across)
# their mutual information is noise. On the real SCT T2 / T1w pair, its header turned 10 degrees, the engine's
# result (Dice 0.92, surfaces 0.42 mm) was vetoed for the segment-centroid start (Dice 0.59, 1.57 mm) by the
# cord's inside (-1.3 SD) while its surfaces were +5.6 SD better (a helper's sweep, thirty-eighth session).
OVERRULE_Z = 2 * KEEP_Z  # the intensities inside then veto only a fall beyond OVERRULE_Z / 2 SD
OVERRULE_VOXELS = 1.0
# A result that moves the fixed segments' surface points less than this (RMS, mm; at least two of the fixed
# image's voxels) and turns less than half the start's lattice step (POLISH_DEG) only polishes its start: it
# needs no evidence beyond the noise, only neither score worse. A turn about the organ's centre moves its
# surface little (12 degrees moved a 40 mm gland's surface 2.1 mm RMS) yet carries the anatomy inside away.
SMALL_MOVE_MM = 2.0
POLISH_DEG = STEP_DEG / 2
# A result that moves more than a polish also needs the start's referee (the intensities within
# REFEREE_REGION_MM of the segments) to prefer it, by KEEP_Z as its own scores must: the engine optimised
# intensities in an overlapping region. On 198 guided rigid runs of both engines on hard TRUS-like pairs (seeds
# 100-123, 200-223, 900-923; guided_results.md, eleventh session) six results that turned 5-49 degrees from their
# start were kept; five ended 0.7-4.3 mm further from the truth than the start. Their 25 mm z: -2.4 to +1.8 SD.
REFEREE_KEEP_Z = KEEP_Z


FROM_PRIOR = "degrees from the prior (the initial transform's rotation, else the headers')"
# How the warning begins (a batch's triage looks for it) for a guided result refused for its turn from the prior
# though its segments agree clearly better: the headers' orientation may be what is wrong.
FAR_TURN_REFUSED = "a guided result that turned far from the headers' orientation was not kept"
# A near-symmetric organ turned over ties within a few hundredths (issue 22: 0.81-0.86); more is worth a word, not a
# keep (hard pair 801 gained 0.12 turned 74 degrees, and was 12.1 mm off).
FAR_TURN_DICE_GAIN = 0.1


def far_turn_warning(kept_reason: str, engine_dice: float | None, kept_dice: float | None) -> str | None:
    """A warning when the engine's guided result was refused for turning more than AXES_MAX_DEG from the prior
    (``kept_reason``) while its segments' mean Dice beats what is returned by FAR_TURN_DICE_GAIN; else None.
    A helper's real spinal cords, the moving header turned 90 degrees: elastix undid the turn, the rule kept the
    start 5.6 mm off (Dice 0.70), and the batch called the case ok."""
    turned = re.search(rf"turned (\d+) {re.escape(FROM_PRIOR)}", kept_reason)
    if turned is None or engine_dice is None or kept_dice is None or engine_dice < kept_dice + FAR_TURN_DICE_GAIN:
        return None
    return (f"{FAR_TURN_REFUSED} ({turned.group(1)} degrees; the initial transform's, when one is given), though its "
            f"segments agree better (mean Dice {engine_dice:.2f} against {kept_dice:.2f} for what is returned): a "
            f"guided result may turn at most {AXES_MAX_DEG:g} degrees, as a near-symmetric organ turned over can fit "
            "its surfaces and still be wrong. If the headers' orientation is wrong (a reslice, a wrong orientation "
            "tag), give an initial transform near the right pose (landmarks: FiducialPrealign or mmreg prealign); "
            "otherwise check the result (Registration QA)")  # fmt: skip


def worse_beyond_noise(prepared, fixed: sitk.Image, moving: sitk.Image, start: Transform, result: Transform,
                       seed: int, prior: np.ndarray | None = None, refereed: bool = True) -> str:  # fmt: skip
    """Why a linear guided ``result`` is not better than its linear ``start`` beyond the noise ("" when it
    is), judged by the start's scores: field-of-view-aware surface distance and mutual information inside
    the segments (their ring when the inside is too small), each in SDs of its own block-bootstrap noise (at
    full weight, unlike the start's choice).
    A rigid result can match deformed surfaces better while the anatomy inside them slides away: one that
    moves them more than a polish must be better beyond the noise, the intensities agreeing, those within
    REFEREE_REGION_MM too when ``refereed`` (the start's referee: a run from a guided start at or about the prior;
    not a piecewise segment's run, whose wider region holds other segments that move apart). Like a
    principal-axes start, a result may not turn more than AXES_MAX_DEG from ``prior`` (3x3: the rotation the
    guided start was searched about or placed at) unless its start already had (the landmarks' fit); None: no
    such limit."""
    if not (prepared.pairs and start.is_linear and result.is_linear):
        return ""
    from_prior = None if prior is None else rotation_angle_deg(result.matrix[:3, :3] @ prior.T)
    # Even a clearly better overlap does not pass: hard pair 801 turned 74 degrees with Dice 0.74 -> 0.86 and ended
    # 12.1 mm off (test_guided_start). A far turn refused though its segments agree better is warned instead.
    if from_prior is not None and from_prior > AXES_MAX_DEG >= rotation_angle_deg(start.matrix[:3, :3] @ prior.T):
        return (f"turned {from_prior:.0f} {FROM_PRIOR}, beyond the {AXES_MAX_DEG:g} degrees a start from the "
                "segments may turn: a near-symmetric organ turned that far can fit its surfaces better and still be "
                "wrong")  # fmt: skip
    scorer = StartScorer.of(prepared, fixed, moving, seed)
    z_surface, z_mi, z_together = paired_z(scorer, start.matrix, result.matrix)
    points = np.concatenate(scorer.points)
    moved = float(np.sqrt(np.mean(np.sum((result.transform_points(points) - start.transform_points(points)) ** 2, 1))))
    mi_text = "" if z_mi is None else f", mutual information {scorer.intensity_where} {z_mi:+.1f} SD"
    scores = f"together {z_together:+.1f} SD: surface distance {z_surface:+.1f} SD{mi_text}"
    def change_mm() -> float:  # evaluated only where a z asks for it (the two z conditions exclude each other)
        return surface_change_mm(scorer, start.matrix, result.matrix)

    surfaces_worse = z_surface < -VETO_Z and change_mm() > SURFACE_VETO_VOXELS * max(fixed.GetSpacing())
    surfaces_win = (z_surface > OVERRULE_Z and (z_mi is None or z_mi > -OVERRULE_Z / 2)  # a steep fall still vetoes
                    and change_mm() < -OVERRULE_VOXELS * max(fixed.GetSpacing()))  # fmt: skip
    if surfaces_worse or (z_mi is not None and z_mi < -VETO_Z and not surfaces_win):
        return f"one score is worse by more than {VETO_Z:g} SD ({scores})"
    small = max(SMALL_MOVE_MM, 2.0 * max(fixed.GetSpacing()))
    turned = rotation_angle_deg(result.matrix[:3, :3] @ start.matrix[:3, :3].T)
    if turned > MAX_DEG and not (z_together > FAR_Z and z_surface > WIN_Z):
        return (f"turned {turned:.0f} degrees from its start, beyond the start's own search ({MAX_DEG:g}), and is "
                f"not better by {FAR_Z:g} SD together and {WIN_Z:g} SD on the surfaces, as a start that far must "
                f"be ({scores})")  # fmt: skip
    if moved < small and turned < POLISH_DEG:
        return ""
    if z_together < KEEP_Z:
        return (f"moved the segments {moved:.1f} mm (RMS) and turned {turned:.1f} degrees, but is better by less "
                f"than {KEEP_Z:g} SD ({scores})")  # fmt: skip
    wide = wide_intensity_z(scorer, start.matrix, result.matrix) if refereed and z_mi is not None else None
    if wide is not None and wide < REFEREE_KEEP_Z:
        return (f"moved the segments {moved:.1f} mm (RMS) and turned {turned:.1f} degrees, better by {z_together:.1f} "
                f"SD near the segments, but the intensities within {REFEREE_REGION_MM:g} mm do not confirm it "
                f"({wide:+.1f} SD < {REFEREE_KEEP_Z:g}; {scores})")  # fmt: skip
    return ""
