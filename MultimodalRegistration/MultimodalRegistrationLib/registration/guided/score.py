"""How well a pose agrees with the guidance, measurable without ground truth: per-segment Dice and
mean surface distance (mm), and the distance (mm) between each mapped fixed landmark and its moving one.

A guided result is kept only if none of these got worse than at its start by more than its tolerance.
The tolerances are about one voxel's worth: a rigid result cannot follow a deformed organ exactly,
and trading a fraction of a voxel of surface for closer landmarks is not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ...core.labels import surface_distances
from ...core.rotations import orthogonal_fit_rms
from ...core.transforms import Transform
from ...core.views import limited_to_view
from .guidance import PreparedGuidance
from .views import SegmentViews

# A result may lose this much and still count as no worse than its start. Dice only catches gross
# losses (0.05 is about 1 mm of shift on a 35 mm organ); surfaces and landmarks are judged in mm,
# to the larger of MIN_TOLERANCE_MM and the fixed image's coarsest voxel.
DICE_TOLERANCE = 0.05
MIN_TOLERANCE_MM = 0.5


@dataclass
class GuidanceScore:
    """Agreement of one pose (fixed -> moving, LPS) with the guidance: per segment and per landmark."""

    dice: dict[str, float] = field(default_factory=dict)
    surface_mm: dict[str, float | None] = field(default_factory=dict)  # mean symmetric surface distance
    points_mm: list[float] = field(default_factory=list)

    @property
    def mean_dice(self) -> float | None:
        return float(np.mean(list(self.dice.values()))) if self.dice else None

    @property
    def mean_surface_mm(self) -> float | None:
        known = [value for value in self.surface_mm.values() if value is not None]
        return float(np.mean(known)) if known else None

    @property
    def points_rms_mm(self) -> float | None:
        return float(np.sqrt(np.mean(np.square(self.points_mm)))) if self.points_mm else None

    def to_dict(self) -> dict:
        def rounded(value):
            return None if value is None else round(float(value), 4)

        return {
            "dice": {name: rounded(value) for name, value in self.dice.items()},
            "surface_mm": {name: rounded(value) for name, value in self.surface_mm.items()},
            "points_mm": [rounded(value) for value in self.points_mm],
            "mean_dice": rounded(self.mean_dice),
            "mean_surface_mm": rounded(self.mean_surface_mm),
            "points_rms_mm": rounded(self.points_rms_mm),
        }


def guidance_score(prepared: PreparedGuidance, transform: Transform) -> GuidanceScore:
    """Score ``transform`` (fixed -> moving, LPS) against the prepared guidance. A segment a field of view cuts
    is compared only where both images see it (:class:`.views.SegmentViews`)."""
    score = GuidanceScore()
    views = SegmentViews.of(prepared) if prepared.pairs else None
    for index, (pair, fixed_mask, moving_mask) in enumerate(zip(prepared.pairs, prepared.fixed_masks,
                                                                prepared.moving_masks)):  # fmt: skip
        warped = sitk.Resample(moving_mask, fixed_mask, transform.sitk, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        fixed_array = sitk.GetArrayViewFromImage(fixed_mask) != 0
        warped_array = sitk.GetArrayViewFromImage(warped) != 0
        fixed_array, warped_array, view = limited_to_view(fixed_array, warped_array,
                                                          views.view(index, transform, fixed_mask))  # fmt: skip
        total = int(fixed_array.sum()) + int(warped_array.sum())
        score.dice[pair.name] = 2.0 * int(np.count_nonzero(fixed_array & warped_array)) / total if total else 0.0
        score.surface_mm[pair.name] = (
            surface_distances(fixed_array, warped_array, fixed_mask, view)[0] if warped_array.any() else None
        )
    terms = prepared.engine_terms
    if terms.fixed_points_lps is not None:
        mapped = transform.transform_points(terms.fixed_points_lps)
        score.points_mm = np.linalg.norm(mapped - terms.moving_points_lps, axis=1).tolist()
    return score


def worse_than(after: GuidanceScore, before: GuidanceScore, voxel_mm: float = 0.0) -> str:
    """Why ``after`` agrees less with the guidance than ``before`` ("" when it does not), with the numbers.

    ``voxel_mm`` (the fixed image's coarsest spacing) widens the mm tolerances to one voxel.
    """
    tolerance = max(MIN_TOLERANCE_MM, voxel_mm)
    reasons = []
    if after.mean_dice is not None and after.mean_dice < before.mean_dice - DICE_TOLERANCE:
        reasons.append(f"segment Dice {after.mean_dice:.3f} < {before.mean_dice:.3f}")
    if before.mean_surface_mm is not None and (
        after.mean_surface_mm is None or after.mean_surface_mm > before.mean_surface_mm + tolerance
    ):
        shown = "none" if after.mean_surface_mm is None else f"{after.mean_surface_mm:.2f} mm"
        reasons.append(f"segment surface distance {shown} > {before.mean_surface_mm:.2f} mm")
    # Beside segments, fewer than MIN_LANDMARKS landmarks do not veto: one clicked landmark 0.6 mm farther (within
    # its click noise) returned the centroid alignment, Dice 0.89 -> 0.78 and 1.09 -> 1.99 mm (a helper's sweep).
    # Nor do landmarks that both poses miss by more than LANDMARKS_TRUSTED_MM: in the wrong frame, or one 773 mm out
    # of its image, 23.71 against 23.17 mm RMS had returned the centroid alignment (3.48 -> 5.04 mm; a helper's sweep).
    near = after.points_rms_mm is not None and min(after.points_rms_mm, before.points_rms_mm) <= LANDMARKS_TRUSTED_MM
    counted = not after.dice or (len(after.points_mm) >= MIN_LANDMARKS and near)
    if counted and after.points_rms_mm is not None and after.points_rms_mm > before.points_rms_mm + tolerance:
        reasons.append(f"landmark distance {after.points_rms_mm:.2f} mm > {before.points_rms_mm:.2f} mm (RMS)")
    return "; ".join(reasons)


# Landmarks overrule the segments only when they agree with one rigid motion within this (RMS, mm, their own
# least-squares rigid fit): the clinical limit for MR -> ultrasound targeting. On 72 hard TRUS-like pairs (4-5
# clicks, 1-2 mm noise, probe push and warp) that fit leaves 0.5-4.4 mm; paired with the wrong labels (each moved
# one on, or two swapped) 3 of 144 sets fit within 5 mm (medians 11.7 and 10.6 mm), yet every such fit is far
# closer to its landmarks than the centroid alignment is (guided_results.md, fourteenth session). Fewer than
# MIN_LANDMARKS points cannot show that they disagree: 3 fix a rigid pose almost exactly whatever their labels.
LANDMARKS_TRUSTED_MM = 5.0
MIN_LANDMARKS = 4


def landmark_fit_rms_mm(prepared: PreparedGuidance, scale: bool = False) -> float | None:
    """RMS residual (mm) of the landmarks' own least-squares fit, rigid or with one scale (``scale``: the preset
    can scale); None with fewer than MIN_LANDMARKS."""
    terms = prepared.engine_terms
    if terms.fixed_points_lps is None or len(terms.fixed_points_lps) < MIN_LANDMARKS:
        return None
    return orthogonal_fit_rms(terms.fixed_points_lps, terms.moving_points_lps, scale=scale)


def landmarks_outweigh_surfaces(after: GuidanceScore, before: GuidanceScore, fit_rms_mm: float | None) -> bool:
    """Whether ``after`` is closer to the landmarks than ``before`` (RMS, mm) by more than its segment surfaces lie
    further apart (mean, mm), and by at least MIN_TOLERANCE_MM: both in mm, so the two kinds of guidance trade
    one for one. Two segmentations drawn apart can prefer an overlap that the landmarks say is millimetres off.
    Only landmarks that agree with a rigid (or, for a preset that scales, a scaled) motion (``fit_rms_mm``,
    :func:`landmark_fit_rms_mm`) within
    LANDMARKS_TRUSTED_MM count, and only while ``after`` fits them that well and keeps every segment in view."""
    if fit_rms_mm is None or fit_rms_mm > LANDMARKS_TRUSTED_MM:
        return False
    if after.points_rms_mm is None or before.points_rms_mm is None or after.points_rms_mm > LANDMARKS_TRUSTED_MM:
        return False
    if any(after.surface_mm.get(name) is None for name, value in before.surface_mm.items() if value is not None):
        return False  # a segment that left the image: no trade makes up for it
    loss = max(0.0, (after.mean_surface_mm or 0.0) - (before.mean_surface_mm or 0.0))
    return before.points_rms_mm - after.points_rms_mm > max(loss, MIN_TOLERANCE_MM)


# Under this Dice for every guiding segment, a guided result has not brought them together: a swap the grids cannot
# show (segmentations saved cropped, on images that share one lattice) had ended 42-52 mm off, silently, at Dice
# 0.10-0.32 (a helper's sweep), where right results keep the gland at 0.8 or more.
SEGMENTS_APART_DICE = 0.35


SEGMENTS_APART = "the guiding segments overlap little after the guided registration"  # (a batch's triage looks)


def segments_apart_warning(dice: dict[str, float | None]) -> str | None:
    """A warning when every guiding segment's Dice (``dice``, by name) after a guided run is under
    SEGMENTS_APART_DICE; None otherwise (or without segments)."""
    known = {name: value for name, value in (dice or {}).items() if value is not None}
    if not known or max(known.values()) >= SEGMENTS_APART_DICE:
        return None
    said = ", ".join(f"'{name}' {value:.2f}" for name, value in known.items())
    return (f"{SEGMENTS_APART} (Dice {said}): the result is probably "
            "wrong; check that each segmentation was drawn on its own image and given the right way round "
            "(--fixed-segmentation on the fixed image), and that each pair marks the same structure")  # fmt: skip

