"""When two starts are one: an engine run from either ends at the same result, so it runs once.
Transforms map fixed to moving points (LPS mm)."""

from __future__ import annotations

import numpy as np

from ...core.rotations import pose_difference
from ...core.transforms import Transform

# Two starts closer than this lead the engine to the same result: run it once.
SAME_START_DEG, SAME_START_MM = 10.0, 10.0


def same_start(a: Transform, b: Transform, center: np.ndarray, shift_mm: float = SAME_START_MM) -> bool:
    """Whether two linear starts differ by less than SAME_START_DEG and ``shift_mm`` (at ``center``)."""
    angle, shift = pose_difference(a.matrix, b.matrix, np.asarray(center, float))
    return angle < SAME_START_DEG and shift < shift_mm
