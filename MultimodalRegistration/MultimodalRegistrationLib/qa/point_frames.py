"""Landmarks given in the other frame: LPS coordinates read as RAS (or the reverse) inside the image.

A list whose points are all outside their image is refused (landmarks/bounds.py), but LPS read as RAS only
negates x and y, and near the image centre the points stay inside: a helper's QA of an exact phantom result
read TRE 107.9 mm, exit 0, without a word. Read with x and y negated, such a list fits the transform; that is
the test. Points are world RAS mm; transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np

from ..core.transforms import Transform, lps_ras_points
from .landmarks import LandmarkErrors

# The other frame is named when it fits the transform this many times better than the frame given, and by
# more than OTHER_FRAME_GAIN_MM.
OTHER_FRAME_RATIO = 3.0
OTHER_FRAME_GAIN_MM = 5.0
OTHER_FRAME = "the landmarks seem to be in the other coordinate system"  # how the warning begins


def _negated(points_ras: np.ndarray) -> np.ndarray:
    return points_ras * np.array([-1.0, -1.0, 1.0])


def other_frame_warning(landmarks: LandmarkErrors | None, transform: Transform) -> str | None:
    """A warning when the fixed list, the moving list or both, read with x and y negated, fit ``transform`` (the
    fixed points carried to moving space, median mm) OTHER_FRAME_RATIO times better than as given."""
    if landmarks is None or not landmarks.rows:
        return None
    fixed = np.array([row.fixed_ras for row in landmarks.rows])
    moving = np.array([row.moving_ras for row in landmarks.rows])

    def misfit(fixed_ras: np.ndarray, moving_ras: np.ndarray) -> float:
        mapped = transform.transform_points(lps_ras_points(fixed_ras))
        return float(np.median(np.linalg.norm(mapped - lps_ras_points(moving_ras), axis=1)))

    given = misfit(fixed, moving)
    readings = {"moving": misfit(fixed, _negated(moving)), "fixed": misfit(_negated(fixed), moving),
                "fixed and moving": misfit(_negated(fixed), _negated(moving))}  # fmt: skip
    which, best = min(readings.items(), key=lambda item: item[1])
    if best * OTHER_FRAME_RATIO > given or given - best < OTHER_FRAME_GAIN_MM:
        return None
    lists = "list is" if which != "fixed and moving" else "lists are"
    return (
        f"{OTHER_FRAME}: the {which} {lists} {best:.1f} mm from the transform with x and y negated (LPS read as "
        f"RAS, or RAS as LPS), against {given:.1f} mm as given: check the file's coordinate system (a .mrk.json's "
        "coordinateSystem, an .fcsv's CoordinateSystem line, a .csv's column names) and give the points in it"
    )
