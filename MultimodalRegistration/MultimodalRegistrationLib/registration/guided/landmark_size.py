"""Landmarks that say the anatomy changed size, given to a run that keeps it (tissue shrunk in clearing,
a wrong voxel size). A rigid run, or a guided deformable one (it starts from its rigid stage and skips the
affine one), cannot follow them: on the cleared-brain case (shrunk 0.65) six landmarks left a rigid fit
18 mm RMS off, while one scale more fits them to their click noise. Points are LPS mm, fixed -> moving."""

from __future__ import annotations

import numpy as np

from ...core.rotations import orthogonal_fit, orthogonal_fit_rms

MIN_POINTS = 4
# Scale beyond this band, and a rigid fit worse than twice the scaled one plus this many mm. On 48 hard
# TRUS-like pairs (4-5 clicks, 1-2 mm noise, no size change) the scaled fit's scale ranged 0.78-1.14 and the
# rigid fit's RMS was at most 1.6 times the scaled fit's (1.4 mm more): none would warn.
SCALE_BAND = (0.85, 1.18)
MARGIN_MM = 2.0


def size_change_warning(fixed_points: np.ndarray, moving_points: np.ndarray, preset: str) -> str | None:
    """A warning when the landmarks fit a size change much better than a rigid motion; None otherwise."""
    fixed, moving = np.asarray(fixed_points, float), np.asarray(moving_points, float)
    if len(fixed) < MIN_POINTS:
        return None
    scaled = orthogonal_fit(fixed, moving, scale=True)
    scale = float(np.cbrt(np.linalg.det(scaled[:3, :3])))
    rigid_mm, scaled_mm = orthogonal_fit_rms(fixed, moving), orthogonal_fit_rms(fixed, moving, scale=True)
    if SCALE_BAND[0] <= scale <= SCALE_BAND[1] or rigid_mm <= 2 * scaled_mm + MARGIN_MM:
        return None
    return (f"the landmarks say the moving anatomy is {scale:.2f} times the size of the fixed (a fit with one scale "
            f"leaves {scaled_mm:.1f} mm RMS, a rigid one {rigid_mm:.1f} mm), and the '{preset}' preset keeps the size"
            " in its guided start and first stages: use --preset similarity or affine for tissue that changed size,"
            " or check the image spacing")  # fmt: skip
