"""Triage without ground truth: a verdict of ``ok``, ``check`` or ``failed`` per case, with the reasons.

Pure functions over the records a run already wrote; nothing here runs an engine or reads an image.

* :func:`triage_case` judges one case from its :class:`.RegistrationSummary`, its :class:`.QAReport`
  and, when the registration failed, the failure message. Each rule below adds a reason and a verdict;
  the worst verdict wins and the reasons accumulate.
* The cohort's rules, comparing the cases with each other, are in :mod:`.cohort_triage`.

Units: mutual information (MI) in nats, higher agrees better (the one MI of :mod:`..core.metric`, the
number the summary and the QA report hold); distances in mm; matrices map fixed to moving points, LPS.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..core.errors import InputError
from ..core.records import Record, build
from ..registration.guided.score import SEGMENTS_APART
from ..registration.guided.start import KEEPS_INITIAL_ROTATION, UNCERTAIN_START
from ..registration.rules.axis_spacing import AXIS_SPACING_WARNING
from ..registration.rules.far_from_start import FAR_FROM_START
from ..registration.rules.inside_size import INSIDE_SIZE_WARNING
from ..registration.rules.keep import FAR_TURN_REFUSED
from ..registration.rules.nearby_pose import NEARBY_POSE_WARNING
from ..registration.rules.scale_drift import SIZE_DRIFTED
from ..registration.rules.shape_change import SHAPE_CHANGE
from ..registration.rules.size_check import SIZE_WARNING
from ..registration.rules.slab_probe import SLAB_POSE
from ..registration.rules.thin_moving import WAYS_DISAGREE
from ..registration.rules.uneven_size import UNEVEN_WARNING
from ..registration.rules.weak_result import WEAK_RESULT
from ..registration.runs import failure_line
from ..registration.summary import RegistrationSummary
from .landmark_outliers import FAR_OFF
from .landmarks import FITTED_TO_TARGETS
from .report_types import QAReport
from .stability import NOT_MEASURED
from .worse import SEGMENTS_WORSE, WRONG_WAY

VERDICTS = ("ok", "check", "failed")  # best to worst: the worst of a case's rules wins

# --------------------------------------------------------------------------- thresholds
# A gain below this is "did not improve". MI is deterministic (no sampling noise), and half a millimetre
# off the truth already changes it by 0.012-0.024 nats (core/metric.py), so a smaller gain means the
# result is practically where it started (or the registration diverged).
METRIC_TOLERANCE_NATS = 0.005
# A run guided by segments is judged by them: between modalities as unlike as MR and ultrasound the MI hardly
# moves between the headers' pose and the right one (a generated MR -> TRUS pair: 0.053 -> 0.057 nats while the
# gland's Dice went 0.20 -> 0.83), so the guiding segments' mean Dice takes the metric's place. A gain below
# this is "did not improve".
DICE_TOLERANCE = 0.02
# The fraction of the fixed image (inside its mask) that maps into the moving image after registration.
# Below 5% almost every metric sample is missing: whatever the result is, it is not an alignment of the
# two images (the registration refuses to start below 2%). Below 20% most of the fixed image sees
# nothing of the moving one: wrong unless the moving image covers a small part of the fixed one by design.
OVERLAP_FAILED = 0.05
OVERLAP_CHECK = 0.20
# The registration lost more than half of the overlap the images had before it: the moving image was
# pushed out of the fixed field of view, which a correct result for images of the same anatomy rarely does.
FOV_LOSS_RATIO = 0.5
# The registration's own warnings that doubt its result (the images do not confirm it; it moved far from the
# user's start): the case is worth a look whatever the other rules say.
# A spacing found wrong (for the whole image or along one axis) too: the walkthrough's batch gave 'ok' to a rigid
# result 22 mm off whose moving image stated twice its slice spacing.
# A guided start whose rotation is uncertain, and a guided result turned far and refused though its segments agree
# better: a helper's real spinal cords (a moving header turned 90 degrees) ended 5.6 mm off, called ok.
RESULT_DOUBTS = (WEAK_RESULT, FAR_FROM_START, WAYS_DISAGREE, SLAB_POSE, SHAPE_CHANGE, SIZE_DRIFTED, UNEVEN_WARNING,
                 INSIDE_SIZE_WARNING, SIZE_WARNING, AXIS_SPACING_WARNING, UNCERTAIN_START, KEEPS_INITIAL_ROTATION,
                 FAR_TURN_REFUSED, SEGMENTS_APART)  # fmt: skip
# The QA's own warnings that its measures doubt the result: the transform read the other way fits better, some
# target landmarks lie far off the others, the segments got worse. A helper's QA sweep: two swapped
# landmarks 99 mm off, an inverse given by mistake and segments from Dice 1.00 to 0.36 had each been 'ok'. And a
# stability check asked for that no restart finished. And a pose nearby that the images prefer far over the one given
# (a transform 20 degrees off). Landmarks worse: the landmark rule's own. And a transform fitted to the target
# points it is judged on: their error is no accuracy.
QA_DOUBTS = (WRONG_WAY, FAR_OFF, SEGMENTS_WORSE, NOT_MEASURED, NEARBY_POSE_WARNING, FITTED_TO_TARGETS)
# Target landmarks (the user's own truth): a median TRE above this after registration, or worse than before it by
# more than TRE_WORSE_MM, is worth a look at any human scale (5 mm: the clinical limit of a targeted biopsy); two
# points files swapped or in another frame gave 86 mm with the verdict 'ok'.
TRE_CHECK_MM = 5.0
# When "before" is a landmark fit to the target points themselves, it is their least residual: only a result that
# leaves them much further off counts as worse (review: the rule was dropped altogether).
TRE_WORSE_FITTED_MM = 2.0
TRE_WORSE_MM = 0.5
# A linear result scaling any axis by less than this or more than that is a collapse or an explosion, not
# anatomy: the bounds keep.check_linear_result refuses, repeated here for results made elsewhere.
MIN_SCALE, MAX_SCALE = 0.2, 5.0


@dataclass
class Verdict(Record):
    """One case's triage: ``verdict`` is ``ok``, ``check`` (look at it) or ``failed`` (do not use it);
    ``reasons`` say why in plain words, naming what to look at; ``measures`` are the numbers the rules saw
    (MI in nats, overlap as a fraction of the fixed image, spread in mm)."""

    verdict: str = "ok"
    reasons: list[str] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise InputError(f"unknown verdict '{self.verdict}': use {', '.join(VERDICTS)}")

    def flagged(self, verdict: str, reason: str) -> Verdict:
        """A copy with ``reason`` added and the verdict raised to ``verdict`` (never lowered)."""
        worst = max(self.verdict, verdict, key=VERDICTS.index)
        return replace(self, verdict=worst, reasons=[*self.reasons, reason], measures=dict(self.measures))

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "measures": {name: round(value, 6) for name, value in self.measures.items()},
        }

    @classmethod
    def from_dict(cls, record: dict) -> Verdict:
        return build(cls, dict(record), "verdict key")


# --------------------------------------------------------------------------- one case
def _linear_matrix(summary: RegistrationSummary | None, report: QAReport | None) -> np.ndarray | None:
    """The result's 4x4 LPS matrix, or None for a nonlinear result (the QA report's, else the summary's)."""
    if report is not None:
        matrix = report.transform.matrix_lps
    else:
        matrix = summary.matrix_lps if summary is not None else None
    return None if matrix is None else np.asarray(matrix, float)


def _metric(summary: RegistrationSummary | None, report: QAReport | None) -> tuple[float, float] | None:
    """(MI before, MI after) in nats: the registration's own numbers, else the QA report's (None -> 0:
    no overlap carries no information, as in core.metric.mutual_information)."""
    if summary is not None:
        return float(summary.metric_before), float(summary.metric_after)
    if report is not None:
        before = report.images_before.mutual_information
        after = report.images_after.mutual_information
        return float(before or 0.0), float(after or 0.0)
    return None


def _no_gain(gain: float, tolerance: float) -> tuple[str, str] | None:
    """How a gain no larger than ``tolerance`` is told, and what the registration may have done: "got worse"
    ("diverged") below -``tolerance``, else "did not improve" ("stayed at its start"); None for a real gain."""
    if gain > tolerance:
        return None
    return ("got worse", "diverged") if gain < -tolerance else ("did not improve", "stayed at its start")


def _guiding_dice(summary: RegistrationSummary | None, report: QAReport | None) -> tuple[float, float] | None:
    """(mean Dice before, after) of the segments that guided the run, as the QA report measured them (all its
    labels when none has a guiding segment's name); None unless segments guided it and the report has them."""
    guidance = None if summary is None else summary.provenance.guidance
    if guidance is None or not guidance.segments or report is None or report.segmentation is None:
        return None
    names = {segment.name for segment in guidance.segments}
    rows = [(b, a) for b, a in zip(report.segmentation.before, report.segmentation.after) if a.name in names]
    rows = rows or list(zip(report.segmentation.before, report.segmentation.after))
    if not rows:
        return None
    return float(np.mean([b.dice for b, _ in rows])), float(np.mean([a.dice for _, a in rows]))


def _possible_overlap(summary: RegistrationSummary | None, matrix: np.ndarray | None) -> float:
    """The largest share of the fixed image the moving image can cover under a linear ``matrix`` (fixed ->
    moving): the moving box's volume brought to fixed space (over the determinant), over the fixed box's; 1
    when it cannot be told. A result that shrinks the tissue to its true size (a cleared stack stored at 1 mm)
    covers less of the fixed image than the pose before it, without leaving the field of view. 1 too with a
    fixed mask (the QA's overlap is then the mask's share, which the boxes do not bound)."""
    images = (summary.provenance.fixed, summary.provenance.moving) if summary is not None else (None, None)
    if matrix is None or None in images or summary.provenance.fixed_mask:
        return 1.0
    if any(len(image.size) != 3 or len(image.spacing_mm) != 3 for image in images):
        return 1.0
    volumes = [float(np.prod(np.asarray(image.size, float) * np.asarray(image.spacing_mm, float)))
               for image in images]  # fmt: skip
    determinant = abs(float(np.linalg.det(matrix[:3, :3])))
    if not all(volumes) or determinant <= 0:
        return 1.0
    return min(1.0, volumes[1] / determinant / volumes[0])


def triage_case(
    summary: RegistrationSummary | None, report: QAReport | None, failure: str | None = None, step: str = "registration"
) -> Verdict:
    """The verdict on one case from what its run recorded; rules that need a missing record are skipped.

    ``failed``: the case failed (``failure`` is its message, ``step`` what failed: the registration, or the input
    or quality check around it); a mirrored (determinant <= 0) or
    degenerate (an axis scaled outside [MIN_SCALE, MAX_SCALE]) linear result; images that hardly overlap
    after registration (under OVERLAP_FAILED of the fixed image, or of what the moving image's box can cover when
    the result kept its overlap; or too few voxels for any MI); a
    deformable result that folds (Jacobian determinant <= 0 anywhere).
    ``check``: the MI did not improve by METRIC_TOLERANCE_NATS (a run guided by segments: their mean Dice did not
    improve by DICE_TOLERANCE, whatever the MI); little overlap (under OVERLAP_CHECK);
    the moving image left the fixed field of view (the overlap fell below FOV_LOSS_RATIO of what it was
    before, or of what the result's size allows); the stability restarts disagree (the report's stability verdict
    is ``unstable``) or too few finished to tell (``inconclusive``); the registration warned that it doubts its
    result (RESULT_DOUBTS); the target landmarks' median error ends above TRE_CHECK_MM or got worse.
    """
    verdict = Verdict()
    if failure:
        verdict = verdict.flagged("failed", f"the {step} failed: {failure_line(str(failure))}")
    if summary is None and report is None:
        if not failure:
            verdict = verdict.flagged("failed", "no result was recorded: the registration did not finish")
        return verdict
    measures: dict[str, float] = {}

    matrix = _linear_matrix(summary, report)
    if matrix is not None:
        determinant = float(np.linalg.det(matrix[:3, :3]))
        scales = np.linalg.svd(matrix[:3, :3], compute_uv=False)
        measures.update(determinant=determinant, scale_min=float(scales.min()), scale_max=float(scales.max()))
        if determinant <= 0:
            verdict = verdict.flagged(
                "failed",
                f"mirrored result (determinant {determinant:.3f}): check the moving image's header "
                "(left-right) and the landmarks' order",
            )
        elif scales.min() < MIN_SCALE or scales.max() > MAX_SCALE:
            verdict = verdict.flagged(
                "failed",
                f"degenerate result: the transform scales by {scales.min():.2f} to {scales.max():.2f}: "
                "check the image spacing, or use the rigid preset",
            )

    metric, guided = _metric(summary, report), _guiding_dice(summary, report)
    if guided is not None:
        before, after = guided
        measures.update(guiding_dice_before=before, guiding_dice_after=after)
        if no_gain := _no_gain(after - before, DICE_TOLERANCE):
            how, why = no_gain
            verdict = verdict.flagged(
                "check",
                f"the guiding segments' overlap {how}: mean Dice {before:.2f} -> {after:.2f}: look at the segments "
                f"over the checkerboard; the registration may have {why}",
            )
    if metric is not None:
        before, after = metric
        gain = after - before
        measures.update(metric_before_nats=before, metric_after_nats=after, metric_gain_nats=gain)
        if guided is None and (no_gain := _no_gain(gain, METRIC_TOLERANCE_NATS)):
            how, why = no_gain
            verdict = verdict.flagged(
                "check",
                f"the metric {how}: mutual information {before:.3f} -> {after:.3f} nats: look at the "
                f"checkerboard; the registration may have {why}",
            )

    if report is not None:
        overlap_before = float(report.images_before.overlap_fraction)
        overlap_after = float(report.images_after.overlap_fraction)
        measures.update(overlap_before=overlap_before, overlap_after=overlap_after)
        no_information = report.images_after.mutual_information is None
        possible = _possible_overlap(summary, matrix)
        left = overlap_after < FOV_LOSS_RATIO * min(overlap_before, possible)
        was = f" ({overlap_before:.0%} before: the moving image left the fixed field of view)" if left else ""
        # Judged against what the moving image can cover, unless the result lost the overlap it had: a CT slab
        # registered to a whole-head MR covers 2% of it at the right pose (a helper's real heads: 'failed' one way
        # round, 'check' the other, for one pose); a small image pushed off the field of view is still failed.
        share = overlap_after / possible if possible > 0 and not left else overlap_after
        if possible < 1.0:
            was += f" (the moving image can cover at most {possible:.0%} of it)"
        if share < OVERLAP_FAILED or no_information:
            few = f" ({report.images_after.voxels} voxels, too few for any mutual information)"
            voxels = "" if share < OVERLAP_FAILED else few
            verdict = verdict.flagged(
                "failed",
                f"the images hardly overlap after registration: {overlap_after:.0%} of the fixed image maps "
                f"into the moving image{voxels}{was}: look at the checkerboard; prealign with landmarks",
            )
        elif share < OVERLAP_CHECK:
            why = was if left else ": expected only if the moving image covers a small part of it"
            verdict = verdict.flagged(
                "check",
                f"the images overlap little after registration: {overlap_after:.0%} of the fixed image maps "
                f"into the moving image{why}",
            )
        elif left:
            verdict = verdict.flagged(
                "check",
                f"the moving image left the fixed field of view: the overlap fell from {overlap_before:.0%} "
                f"to {overlap_after:.0%} of the fixed image: look at the checkerboard",
            )

        jacobian = report.jacobian
        if matrix is None:  # a linear result's determinant is judged above, as a mirror
            measures.update(jacobian_min=float(jacobian.minimum), folding_percent=float(jacobian.folding_percent))
            if jacobian.minimum <= 0 or jacobian.folding_percent > 0:
                where = ", ".join(f"{v:.0f}" for v in jacobian.minimum_at_ras)
                verdict = verdict.flagged(
                    "failed",
                    f"the deformable result folds: {jacobian.folding_percent:.3g}% of the fixed image has a "
                    f"Jacobian determinant <= 0 (minimum {jacobian.minimum:.2f} at RAS {where} mm): "
                    "use a stiffer preset",
                )

        verdict = _landmark_rule(report, verdict, measures)
        stability = report.stability
        if stability is not None:
            measures.update(stability_spread_p95_mm=float(stability.spread_p95_mm))
            if stability.unstable:
                verdict = verdict.flagged(
                    "check",
                    f"the stability restarts disagree by {stability.spread_p95_mm:.1f} mm (95th percentile, "
                    f"threshold {stability.threshold_mm:g} mm): the result may be a wrong optimum",
                )
            elif stability.verdict == "inconclusive":
                verdict = verdict.flagged(
                    "check",
                    f"stability inconclusive: only {stability.counted} restarts finished, too few to call the "
                    "result stable: see the case's warnings for why they failed",
                )
    for warning in summary.warnings if summary is not None else []:
        if warning.startswith(RESULT_DOUBTS):
            verdict = verdict.flagged("check", f"the registration warned: {warning}")
    for warning in report.warnings if report is not None else []:
        if warning.startswith(QA_DOUBTS) and not any(warning in reason for reason in verdict.reasons):
            verdict = verdict.flagged("check", f"the QA warned: {warning}")
    return replace(verdict, measures=measures)


def _landmark_rule(report: QAReport, verdict: Verdict, measures: dict) -> Verdict:
    """``check`` when the target landmarks' median error (TRE) ends above TRE_CHECK_MM or got worse."""
    landmarks = report.landmarks
    if landmarks is None or landmarks.tre_after is None:
        return verdict
    after = float(landmarks.tre_after.median_mm)
    before = None if landmarks.tre_before is None else float(landmarks.tre_before.median_mm)
    measures.update(tre_median_after_mm=after, **({} if before is None else {"tre_median_before_mm": before}))
    was = "" if before is None else f" ({before:.1f} mm before)"
    margin = TRE_WORSE_FITTED_MM if landmarks.before_fitted else TRE_WORSE_MM  # a fit's residual is no accuracy
    if before is not None and after > before + margin:
        return verdict.flagged("check", f"the target landmarks got worse: median TRE {after:.1f} mm{was}: check "
                               "the points files' pairing and frame, and the result")  # fmt: skip
    if after > TRE_CHECK_MM:
        return verdict.flagged("check", f"the target landmarks lie {after:.1f} mm apart after registration (median "
                               f"TRE{was}, over {TRE_CHECK_MM:g} mm): check the result and the points files")  # fmt: skip
    return verdict
