"""Landmarks given in the other frame: LPS coordinates read as RAS (or the reverse) inside the image.

A list whose points are all outside their image is refused (landmarks/bounds.py), but LPS read as RAS only
negates x and y, and near the image centre the points stay inside: a helper's QA of an exact phantom result
read TRE 107.9 mm, exit 0, without a word. Read with x and y negated, such a list fits the transform; that is
the test. Points are world RAS mm; transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np

from ..core.point_frames import FRAME_FIX, other_frame_fit
from ..core.transforms import Transform, lps_ras_points
from .landmarks import LandmarkErrors

OTHER_FRAME = "the landmarks seem to be in the other coordinate system"  # how the warning begins


def other_frame_warning(landmarks: LandmarkErrors | None, transform: Transform) -> str | None:
    """A warning when the fixed list, the moving list or both, read with x and y negated, fit ``transform`` (the
    fixed points carried to moving space, median mm) clearly better than as given (:func:`..core.point_frames.
    other_frame_fit`)."""
    if landmarks is None or not landmarks.rows:
        return None
    fixed = lps_ras_points(np.array([row.fixed_ras for row in landmarks.rows]))
    moving = lps_ras_points(np.array([row.moving_ras for row in landmarks.rows]))
    found = other_frame_fit(fixed, moving, transform)
    if found is None:
        return None
    which, best, given = found
    lists = "list is" if which != "fixed and moving" else "lists are"
    return (
        f"{OTHER_FRAME}: the {which} {lists} {best:.1f} mm from the transform with x and y negated (LPS read as "
        f"RAS, or RAS as LPS), against {given:.1f} mm as given: {FRAME_FIX}"
    )
