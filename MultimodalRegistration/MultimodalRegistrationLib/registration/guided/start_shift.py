"""Where along the segmented organ's long axis the guided start lies, from the intensities (LPS mm, fixed -> moving).

Two segmentations drawn apart end at different places at the apex and the base (their extents differ by
several mm), so neither the centroids nor the surfaces place the organ along its long axis; the intensities
near it can. Shifts of the moving side along the moving segments' first principal axis, within
``MAX_SHIFT_MM`` at ``STEP_MM``, are scored by the mutual information alone; the mean shift of the bootstrap
winners is taken only when it beats no shift by ``SHIFT_Z`` SDs of the paired bootstrap difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..summary import StartCandidate
from .start_score import Judge, StartScorer

MAX_SHIFT_MM = 8.0
STEP_MM = 1.0
SHIFT_Z = 0.0


@dataclass
class Shift:
    """The shifted pose (4x4), its record, and whether it replaces the unshifted one."""

    pose: np.ndarray
    candidate: StartCandidate
    chosen: bool


def long_axis_shift(scorer: StartScorer, pose: np.ndarray, axis: np.ndarray, base: StartCandidate) -> Shift | None:
    """The best shift of ``pose`` (the candidate ``base``) along ``axis`` (unit, LPS: the moving segments' long
    axis) by the intensities; None without them."""
    if scorer.intensity is None:
        return None
    offsets = np.arange(-MAX_SHIFT_MM, MAX_SHIFT_MM + 1e-9, STEP_MM)
    offsets = offsets[np.argsort(np.abs(offsets), kind="stable")]  # no shift first

    def shifted(offset: float) -> np.ndarray:
        moved = pose.copy()
        moved[:3, 3] += offset * axis
        return moved

    poses = [shifted(offset) for offset in offsets]
    judge = Judge(scorer, surface_weight=0.0)
    surface, mi, patch = scorer.evaluate(poses)
    rs, rm = scorer.replicates(surface, mi, patch)
    if rm is None:
        return None
    judge.calibrate(rs, rm)
    winners = np.argmax(judge.combined(rs, rm), axis=1)
    offset = float(offsets[winners].mean())
    best = shifted(offset)
    gain = judge.gains(pose, [best])[0]
    chosen = abs(offset) >= STEP_MM / 2 and gain["z"] >= SHIFT_Z
    candidate = StartCandidate(
        f"{base.name}, shifted {offset:+.1f} mm along the segments' long axis", base.rotation_from_prior_deg,
        round(gain["surface_mm"], 3), None if gain["mi"] is None else round(gain["mi"], 5), round(gain["z"], 2),
        round(gain["confidence"], 3),
        f"shifted {offset:+.1f} mm: mutual information {gain['z_mi']:+.1f} SD against no shift (needs "
        f"{SHIFT_Z:g}); the segments' ends do not place the organ along its long axis",
    )  # fmt: skip
    return Shift(best, candidate, chosen)
