"""Landmarks a guided result misses though they fit one rigid motion: given the wrong way round, or from other
images (a warning after the run; the segments may have carried the result regardless); and swapped lists that
only the images show, when the landmarks guide alone (:func:`swapped_by_images`). Swapped lists are said once.

A helper's ultrasound-like pair with the two landmark lists swapped: the summary said "landmarks 25.8 -> 25.4 mm
RMS (a rigid fit of the landmarks themselves leaves 1.2)" and warned of nothing, while the same result, read the
other way (moving -> fixed), fit them within a few mm. Points in LPS mm; the result maps fixed to moving.
"""

from __future__ import annotations

import numpy as np

from ...core.metric import mutual_information, overlap_fraction
from ...core.transforms import Transform
from ..rules.keep import IMAGES_OUTVOTE_NATS, IMAGES_OUTVOTE_RATIO
from .guidance import PreparedGuidance
from .score import LANDMARKS_TRUSTED_MM, landmark_fit_rms_mm

SWAPPED_LISTS = "the fixed and moving landmark lists look swapped"  # said once, by whichever check sees it first
MISS_FACTOR = 3.0  # the result misses the landmarks this many times their own fit's residual ...
MISS_MM = 5.0  # ... and by more than this (RMS, mm)
# Mutual information is compared only over overlaps at least this share of each other; a returned pose that maps under
# SWAP_OVERLAP_RATIO of the fixed image the inverse of its start maps is itself the sign of swapped lists.
COMPARABLE_OVERLAP = 0.5
SWAP_OVERLAP_RATIO = 0.2


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))


def landmarks_missed_warning(prepared: PreparedGuidance | None, result: Transform) -> str | None:
    """A warning when ``result`` misses landmarks that agree with one rigid motion (:func:`.score.landmark_fit_rms_mm`
    within LANDMARKS_TRUSTED_MM) by MISS_FACTOR times that fit and MISS_MM; says so when the result read moving ->
    fixed fits them (the lists swapped). None otherwise, or without four landmarks."""
    fit = landmark_fit_rms_mm(prepared) if prepared is not None else None
    if fit is None or fit > LANDMARKS_TRUSTED_MM:
        return None
    terms = prepared.engine_terms
    fixed, moving = np.asarray(terms.fixed_points_lps, float), np.asarray(terms.moving_points_lps, float)
    missed = _rms(result.transform_points(fixed), moving)
    if missed <= max(MISS_FACTOR * fit, MISS_MM):
        return None
    said = (f"the result misses the landmarks by {missed:.1f} mm RMS, though they fit one rigid motion within "
            f"{fit:.1f} mm")  # fmt: skip
    if result.is_linear:
        backward = _rms(result.inverse().transform_points(fixed), moving)
        if backward <= max(MISS_FACTOR * fit, MISS_MM) and backward < missed / 2:
            return (f"{said}; read the other way (moving -> fixed) it fits them within {backward:.1f} mm: "
                    f"{SWAPPED_LISTS}; give each list with its own image")
    return f"{said}: check that each list was placed on its own image, and that the two mark the same features"


def swapped_by_images(
    fixed, moving, start: Transform, fixed_mask, metric_returned: float, intensity: bool = True,
    returned: Transform | None = None,
) -> str:  # fmt: skip
    """A warning naming swapped landmark lists when, at the inverse of a landmark-guided run's (linear) start, the
    images agree far better (IMAGES_OUTVOTE_RATIO and _NATS) than at what the run returns (``returned``), over an
    overlap at least COMPARABLE_OVERLAP of the returned one's; or when the returned pose maps under SWAP_OVERLAP_RATIO
    as much of the fixed image into the moving one as that inverse does; else "". Swapped lists fit one rigid motion
    exactly, its inverse, so nothing in the landmarks shows it (a helper's CT/MR pair: exit 0, MI 0.267 before and
    0.095 at the fit it returned). Mutual information over a sliver is inflated: a real spinal cord's right result
    (17,000 samples, 0.156 nats) was called swapped against its inverse over 262 samples (0.924), and with the lists
    truly swapped the run returned a pose 68 mm off over 1% of the fixed image (0.924 against 0.157), unwarned."""
    if not (start.is_linear and intensity):  # --metric segments set the intensities aside
        return ""
    inverse = start.inverse()
    if returned is not None and returned.is_linear:
        at_inverse, at_returned = overlap_fraction(fixed, moving, inverse), overlap_fraction(fixed, moving, returned)
        if at_returned < SWAP_OVERLAP_RATIO * at_inverse:
            return (f"what was returned maps {at_returned:.0%} of the fixed image into the moving image, the inverse "
                    f"of the start {at_inverse:.0%}: {SWAPPED_LISTS}; give each list with its own image")  # fmt: skip
        if at_inverse < COMPARABLE_OVERLAP * at_returned:
            return ""
    backward = mutual_information(fixed, moving, inverse, fixed_mask)
    if backward < IMAGES_OUTVOTE_RATIO * metric_returned or backward - metric_returned < IMAGES_OUTVOTE_NATS:
        return ""
    return (f"the images agree far better at the inverse of the start than at what was returned (mutual information "
            f"{backward:.3f} against {metric_returned:.3f} nats): {SWAPPED_LISTS}; give each list with its own image")


def landmark_doubts(
    prepared: PreparedGuidance | None, result: Transform, fixed, moving, start: Transform, fixed_mask,
    metric_returned: float,
) -> list[str]:  # fmt: skip
    """A landmark-guided run's doubts about its landmarks, swapped lists said once: :func:`swapped_by_images` (the
    images at the inverse of the start), then :func:`landmarks_missed_warning` unless it names the same swap."""
    if prepared is None or not prepared.guidance.has_points:
        return []
    swapped = swapped_by_images(fixed, moving, start, fixed_mask, metric_returned,
                                prepared.guidance.metric == "intensity", result)  # fmt: skip
    missed = landmarks_missed_warning(prepared, result)
    if missed and swapped and SWAPPED_LISTS in missed:
        missed = None
    return [warning for warning in (swapped, missed) if warning]
