"""Whether a pose near a linear transform agrees far better than the transform itself: a result some degrees or
millimetres off (another tool's, a stalled run's, a transform from the wrong case) that the images would correct.

From the transform, rotation and shift are refined on coarse images by the pattern search and scoring rule of the
size check (:func:`.size_check.search_frame`: mutual information where both images hold tissue; the transform's
own shape and size kept). The transform is warned when the refined pose lies MIN_MOVE_DEG or MIN_MOVE_MM away,
scores clearly better (the size check's MIN_GAIN and MIN_GAIN_SHARE) and the images confirm it over the whole
fixed image (:func:`.size_check.images_confirm`).

Measured (a helper's QA check, 2026-12-02: the MNI T1 at 3 mm against a T2-like image under a known rigid motion):
the truth turned 20 degrees gave mutual information 0.30 -> 0.41 (0.86 at the truth), no warning, 19.8 mm at its
landmarks; this search scores it 0.078 and finds 1.263 at 20.0 degrees back (the truth scores 1.303), in 0.3 s; 15
mm off: 0.037 -> 1.264. On right results (elastix and ANTs, rigid, similarity and affine, of the CT/MR phantom and
two MNI pairs turned 20 and 60 degrees) the search moved at most 1.6 degrees and 0.7 mm and gained at most 0.012
(1.6%). It also named the real SCT T1w/T2 pair's ANTs rigid result (0.099 -> 0.154, 7 degrees and 15 mm away),
which the registration called probably wrong. Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.rotations import pose_difference
from ...core.transforms import Transform
from ..pose.local_search import local_search
from .size_check import MIN_GAIN, MIN_GAIN_SHARE, SEARCH_START_MM, images_confirm, search_frame

MIN_MOVE_DEG = 2.0
MIN_MOVE_MM = 2.0  # where the fixed tissue's centre goes
NEARBY_POSE_WARNING = "a pose near the transform agrees far better"  # how the warning starts


def nearby_pose_warning(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None = None
) -> str | None:
    """The warning on a linear ``transform`` (fixed -> moving) when a pose near it agrees far better (see the module
    notes), naming how far; None otherwise."""
    if not transform.is_linear:
        return None
    size = abs(float(np.linalg.det(np.asarray(transform.matrix, float)[:3, :3]))) ** (1.0 / 3.0)
    frame = search_frame(fixed, moving, transform, fixed_mask, None, (0.999 * size, 1.001 * size))
    if frame is None:
        return None
    before = float(frame.score(frame.start[None])[0])
    poses, values = local_search(frame.score, frame.start[None], frame.center, frame.radius, SEARCH_START_MM, 0.5)
    after, pose = float(values[0]), poses[0]
    angle, shift = pose_difference(pose, frame.start, frame.center)
    if after - before < max(MIN_GAIN, MIN_GAIN_SHARE * abs(before)) or (angle < MIN_MOVE_DEG and shift < MIN_MOVE_MM):
        return None
    if not images_confirm(fixed, moving, transform, pose, frame.center):
        return None
    return (
        f"{NEARBY_POSE_WARNING}: one {angle:.0f} degrees and {shift:.0f} mm away (a search from the transform: score "
        f"{before:.2f} -> {after:.2f}), so the transform is likely off by about that much. Register "
        "again from it (mmreg register --initial-transform, or Slicer's Initial transform), or check that it belongs "
        "to these two images"
    )
