"""Whether the images confirm a 2D result: its mutual information against that of decoy poses, as the 3D check does
(:mod:`.rules.weak_result`, same threshold and words).

Decoys: the result moved by a quarter of the fixed tissue's size (the square root of its area) along each axis,
and turned 90, 180 and 270 degrees about the tissue's centroid. Measured (Mattes, the working images): 31 right
results of a helper's 2D cases (whole, shrunk, torn, folded and half sections against a brain-only slice) 5.1-10.5
times their decoys' median, 2 right half sections against a whole-head slice 3.3; 4 wrong ones (25-87 mm off, exit
0, no warning before) 1.25-1.68.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .rules.weak_result import MIN_CONTRAST, WEAK_RESULT
from .two_d_start import foreground, information_or_none, pose_2d, tissue_shape

DECOY_SHARE = 0.25


def weak_warning_2d(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray,
                    fixed_mask: sitk.Image | None = None) -> str | None:  # fmt: skip
    """A warning when the result ``matrix`` (3x3, fixed -> moving mm) scores less than MIN_CONTRAST times the
    median of its decoys (see the module notes); else None, also when the decoys cannot be scored."""
    shape = tissue_shape(fixed, foreground(fixed, fixed_mask))
    shift, center = DECOY_SHARE * float(np.sqrt(shape.area)), shape.center
    offsets = shift * np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    moves = [pose_2d(0.0, 1.0, center, center + offset) for offset in offsets]
    moves += [pose_2d(degrees, 1.0, center, center) for degrees in (90.0, 180.0, 270.0)]
    value = information_or_none(fixed, moving, matrix)
    decoys = [score for move in moves if (score := information_or_none(fixed, moving, matrix @ move)) is not None]
    if value is None or len(decoys) < 3 or np.median(decoys) <= 0 or value >= MIN_CONTRAST * np.median(decoys):
        return None
    typical = float(np.median(decoys))
    return (
        f"{WEAK_RESULT}: its mutual information ({value:.3f}) is only {value / typical:.1f} times that of poses "
        f"{shift:.0f} mm or 90 degrees away from it, where a right 2D alignment scores 3 to 10 times more. The images "
        "do not confirm this alignment: check it on the checkerboard; a partial section (one hemisphere, a large "
        "fold) against a whole slice may need the slice cropped to the part the section holds, or landmarks"
    )
