"""What the images alone say of a linear transform QA is given without landmarks or segments: whether they confirm
it (its mutual information against poses 30 mm or 90 degrees away, :mod:`..registration.rules.weak_result`) and
whether another size fits far better (a wrong spacing, :mod:`..registration.rules.size_check`, or one wrong along
one axis, :mod:`..registration.rules.axis_spacing`; for a transform that scales as a whole, whether a stretch along
one axis does, :mod:`..registration.rules.uneven_size`, or whether the fixed image's tissue prefers another size,
:mod:`..registration.rules.inside_size`), and, when no size is doubted, whether a pose some degrees or mm away agrees
far better (:mod:`..registration.rules.nearby_pose`, QA's own). The registration runs the first two checks on its
own unguided results; QA had only reported that the mutual information rose, which it does
for a result 20-50 mm off too (a helper's sweep of wrong headers: no QA warning on any of them). LPS mm."""

from __future__ import annotations

import SimpleITK as sitk

from ..core.rotations import isotropic_scale
from ..core.transforms import Transform
from ..registration.rules.axis_spacing import axis_spacing_warning
from ..registration.rules.inside_size import inside_size_warning
from ..registration.rules.masks import anatomy_center
from ..registration.rules.nearby_pose import nearby_pose_warning
from ..registration.rules.size_check import size_warning
from ..registration.rules.uneven_size import is_one_scale, uneven_size_warning
from ..registration.rules.weak_result import weak_result_warning

SCALED_BEYOND = 0.01  # a transform whose one scale differs from 1 by more came from a preset that scales


def image_doubts(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None,
    metric_before: float | None, metric_after: float | None,
) -> list[str]:  # fmt: skip
    """The warnings (none to three) on a linear ``transform`` (fixed -> moving) that the images do not confirm;
    the mutual information before and after (nats; None: too little overlap to measure) is quoted in the first.
    Images that lay apart before the transform (headers in two frames) are judged too."""
    if not transform.is_linear or metric_after is None:  # nothing overlaps after it: another warning says so
        return []
    center = anatomy_center(fixed, fixed_mask)
    scale = isotropic_scale(transform.matrix[:3, :3])
    scaled = not (is_one_scale(transform) and abs(scale - 1.0) <= SCALED_BEYOND)
    weak = weak_result_warning(fixed, moving, transform, metric_after, metric_before, center, scaled)
    if not scaled:
        size = size_warning(fixed, moving, transform, None, fixed_mask)
        size = size or axis_spacing_warning(fixed, moving, transform, fixed_mask)  # a spacing wrong along one axis
    else:  # a similarity result: its stability restarts agree on a wrong one-scale fit too (a helper's sweep)
        size = uneven_size_warning(fixed, moving, transform, fixed_mask)
        size = size or (None if weak else inside_size_warning(fixed, moving, transform, fixed_mask))
    # A pose some degrees or mm off that the images would correct (a transform 20 degrees off had passed unwarned; a
    # helper's QA check); not where a size is doubted already, whose pose is off for that reason.
    nearby = None if size else nearby_pose_warning(fixed, moving, transform, fixed_mask)
    return [warning for warning in (weak, size, nearby) if warning]
