"""Landmarks a guided result misses though they fit one rigid motion: given the wrong way round, or from other
images (a warning after the run; the segments may have carried the result regardless).

A helper's ultrasound-like pair with the two landmark lists swapped: the summary said "landmarks 25.8 -> 25.4 mm
RMS (a rigid fit of the landmarks themselves leaves 1.2)" and warned of nothing, while the same result, read the
other way (moving -> fixed), fit them within a few mm. Points in LPS mm; the result maps fixed to moving.
"""

from __future__ import annotations

import numpy as np

from ...core.transforms import Transform
from .guidance import PreparedGuidance
from .score import LANDMARKS_TRUSTED_MM, landmark_fit_rms_mm

SWAPPED_LISTS = "the fixed and moving landmark lists look swapped"  # said once, by whichever check sees it first
MISS_FACTOR = 3.0  # the result misses the landmarks this many times their own fit's residual ...
MISS_MM = 5.0  # ... and by more than this (RMS, mm)


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
