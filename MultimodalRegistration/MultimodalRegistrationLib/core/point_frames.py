"""Paired landmarks in the other frame: LPS coordinates read as RAS (or the reverse) negate x and y, and near the
image centre the points stay inside their image. Read back with x and y negated, such lists fit a right transform;
that is the test. Points in LPS mm (negating x and y is the same in either frame); transforms map fixed to moving
points."""

from __future__ import annotations

import numpy as np

from .transforms import Transform

# The other frame is named when it fits the transform this many times better than the frame given, and by
# more than OTHER_FRAME_GAIN_MM.
OTHER_FRAME_RATIO = 3.0
OTHER_FRAME_GAIN_MM = 5.0
NEGATED = np.array([-1.0, -1.0, 1.0])
FRAME_FIX = ("check the file's coordinate system (a .mrk.json's coordinateSystem, an .fcsv's CoordinateSystem line, "
             "a .csv's column names) and give the points in it")


def other_frame_fit(fixed: np.ndarray, moving: np.ndarray, transform: Transform) -> tuple[str, float, float] | None:
    """Which list ("fixed", "moving" or "fixed and moving"), read with x and y negated, fits ``transform`` (the
    fixed points carried to moving space, median mm) OTHER_FRAME_RATIO times better than as given, with that
    misfit and the misfit as given (mm); None when none does."""
    fixed, moving = np.asarray(fixed, float), np.asarray(moving, float)

    def misfit(fixed_points: np.ndarray, moving_points: np.ndarray) -> float:
        return float(np.median(np.linalg.norm(transform.transform_points(fixed_points) - moving_points, axis=1)))

    given = misfit(fixed, moving)
    readings = {"moving": misfit(fixed, moving * NEGATED), "fixed": misfit(fixed * NEGATED, moving),
                "fixed and moving": misfit(fixed * NEGATED, moving * NEGATED)}  # fmt: skip
    which, best = min(readings.items(), key=lambda item: item[1])
    if best * OTHER_FRAME_RATIO > given or given - best < OTHER_FRAME_GAIN_MM:
        return None
    return which, best, given
