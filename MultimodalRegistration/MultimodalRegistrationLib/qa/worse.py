"""A transform the landmarks or segments say made things worse, or that was given the wrong way round.

QA's mutual-information check (:func:`.assess.agreement_fell`) misses both where the intensities carry little: on
MR -> ultrasound all poses score 0.03-0.05 nats, and a user's inverse given by mistake (TRE 24.7 -> 48.1 mm, Dice
0.21 -> 0) was reported without a word. The landmarks and segments a user gives QA say it plainly. The inverse is
tested without inverting anything: a transform given the wrong way round maps the *moving* landmarks (and
segments) onto the fixed ones. Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.transforms import Transform, lps_ras_points
from .landmarks import LandmarkErrors
from .overlap import SegmentationOverlap

# The landmarks are worse after than before when their median error rose by more than this (mm; 2/3 of an
# ultrasound's 1.5 mm voxel), and the segments when their mean Dice fell by more than this.
WORSE_MM = 1.0
WORSE_DICE = 0.05
# Below this mean Dice after the transform, the wrong-way check runs even when the Dice did not fall: small structures
# apart before and after (0 -> 0) had been given the inverse without a word (a helper's sweep; read the other way, 1.0).
NO_OVERLAP_DICE = 0.1
# The transform reads as given the wrong way round when its inverse direction fits this much better (ratio) than
# the transform as given, and better than before.
WRONG_WAY_RATIO = 2.0

WRONG_WAY = "the transform seems to be given the wrong way round"  # how the warning begins
SEGMENTS_WORSE = "the segments overlap less after the transform than before"  # how that warning begins


def _judged_rows(landmarks: LandmarkErrors) -> list:
    """The target points' rows, else (no targets) the fit points'."""
    return [row for row in landmarks.rows if row.role == "target"] or landmarks.rows


def _median_error(landmarks: LandmarkErrors) -> tuple[float, float] | None:
    """(before, after) median error (mm) of :func:`_judged_rows`; None when the pose before was fitted to them
    (their error before is a fit residual: landmark_errors says so)."""
    rows = _judged_rows(landmarks)
    if not rows or landmarks.before_fitted:
        return None
    return (
        float(np.median([row.error_before_mm for row in rows])),
        float(np.median([row.error_after_mm for row in rows])),
    )


def _wrong_way_error(landmarks: LandmarkErrors, transform: Transform) -> float:
    """Median |T(moving) - fixed| (mm) over :func:`_judged_rows`: small when ``transform`` maps moving to fixed."""
    rows = _judged_rows(landmarks)
    moving = lps_ras_points(np.array([row.moving_ras for row in rows]))
    fixed = lps_ras_points(np.array([row.fixed_ras for row in rows]))
    return float(np.median(np.linalg.norm(transform.transform_points(moving) - fixed, axis=1)))


def _mean_dice(overlap: SegmentationOverlap) -> tuple[float, float] | None:
    """(before, after) mean Dice over the segments both images hold (a segment warped out of view counts 0)."""
    pairs = [(before.dice, after.dice) for before, after in zip(overlap.before, overlap.after)
             if before.fixed_volume_ml > 0 and max(before.moving_volume_ml, after.moving_volume_ml) > 0]  # fmt: skip
    if not pairs:
        return None
    return float(np.mean([pair[0] for pair in pairs])), float(np.mean([pair[1] for pair in pairs]))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 0.0


def _mean_label_dice(first: np.ndarray, second: np.ndarray) -> float:
    """Mean Dice over the label values both arrays hold (0 is background), as :func:`_mean_dice` averages the
    segments; the foregrounds' Dice when they share no value."""
    shared = sorted((set(np.unique(first)) & set(np.unique(second))) - {0})
    if not shared:
        return _dice(first > 0, second > 0)
    return float(np.mean([_dice(first == value, second == value) for value in shared]))


def _wrong_way_dice(fixed_labels: sitk.Image, moving_labels: sitk.Image, transform: Transform) -> tuple[float, float]:
    """Mean Dice per label with the fixed labels carried into moving space by ``transform`` read as moving -> fixed,
    and, for comparison, as given (fixed -> moving). Per label, as the table and the Dice before are: the
    foregrounds' Dice (0.60) had been quoted against a mean per label (0.42; a helper's QA check)."""
    moving = sitk.GetArrayFromImage(moving_labels)
    fixed_on_moving = sitk.Resample(fixed_labels, moving_labels, transform.sitk, sitk.sitkNearestNeighbor, 0)
    wrong_way = _mean_label_dice(sitk.GetArrayFromImage(fixed_on_moving), moving)
    moving_on_fixed = sitk.Resample(moving_labels, fixed_labels, transform.sitk, sitk.sitkNearestNeighbor, 0)
    return wrong_way, _mean_label_dice(sitk.GetArrayFromImage(moving_on_fixed), sitk.GetArrayFromImage(fixed_labels))


def worse_or_wrong_way(
    transform: Transform,
    landmarks: LandmarkErrors | None,
    overlap: SegmentationOverlap | None,
    fixed_labels: sitk.Image | None = None,
    moving_labels: sitk.Image | None = None,
) -> list[str]:
    """Warnings when the landmarks' median error rose by more than WORSE_MM or the segments' mean Dice fell by more
    than WORSE_DICE from before to after; named as the wrong way round when the transform read as moving -> fixed
    fits WRONG_WAY_RATIO times better than as given (landmarks), or reaches a Dice that much higher or leaves that
    much less unmatched (1 - Dice; segments: a whole brain's inverse read 0.71 as given and 0.96 the other way,
    never twice)."""
    said = []
    if landmarks is not None and (errors := _median_error(landmarks)) is not None:
        before, after = errors
        wrong_way = _wrong_way_error(landmarks, transform)
        if wrong_way * WRONG_WAY_RATIO < after and wrong_way < before:
            return [_wrong_way(f"the landmarks' median error is {after:.1f} mm as given and {wrong_way:.1f} mm read "
                               f"the other way (before: {before:.1f} mm)")]  # fmt: skip
        if after > before + WORSE_MM:
            said.append(f"the landmarks are farther apart after the transform than before (median {before:.1f} -> "
                        f"{after:.1f} mm): the registration made them worse, or the transform is applied twice or "
                        "to swapped images; check the result before using it")  # fmt: skip
    if overlap is not None and fixed_labels is not None and moving_labels is not None:
        dice = _mean_dice(overlap)
        before, after = dice if dice is not None else (0.0, 0.0)
        # Small structures apart before and after (Dice 0 -> 0) never 'fell': read the other way they may meet.
        if dice is not None and (after < before - WORSE_DICE or after < NO_OVERLAP_DICE):
            wrong_way, as_given = _wrong_way_dice(fixed_labels, moving_labels, transform)
            if wrong_way > before and (wrong_way > WRONG_WAY_RATIO * as_given
                                       or WRONG_WAY_RATIO * (1.0 - wrong_way) < 1.0 - as_given):
                return [_wrong_way(f"the segments' Dice is {as_given:.2f} as given and {wrong_way:.2f} read the "
                                   f"other way (before: {before:.2f})")]  # fmt: skip
        if dice is not None and after < before - WORSE_DICE:
            said.append(f"{SEGMENTS_WORSE} (mean Dice {before:.2f} -> "
                        f"{after:.2f}): the registration made them worse, or the transform is applied twice or to "
                        "swapped images; check the result before using it")  # fmt: skip
    return said


def _wrong_way(evidence: str) -> str:
    return (
        f"{WRONG_WAY}: {evidence}. QA takes the transform that maps fixed points to moving points (mmreg "
        "register's --output-transform; in Slicer the result node as the registration made it, not inverted); "
        "give that one, not the --output-inverse file; or, if the fixed and moving images (and their points "
        "and segments) are swapped here, give them the other way"
    )
