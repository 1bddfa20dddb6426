"""Whether a scaled result (similarity, affine, deformable) took its size from an outline that the fixed image's
tissue does not confirm: a skull-stripped MR against a CT whose brain shows with its rim of CSF, say. The engines'
metric over the whole image rewards growing the moving brain into that rim, and every check that compares the
result with its start by that metric stays silent.

The result's linear part (the result when linear) is rescaled isotropically about where it sends the fixed anatomy's
centre, by FACTORS and then +-REFINE about the best, and each is scored by its bias-corrected mutual information
over the fixed image where it holds data (or its mask; :func:`.weak_result.data_region`). The result is warned when
the best size lies MIN_OFF or more from its own, inside the range, and scores MIN_GAIN times the linear part at its
own size and MIN_RISE nats more. Where the sizes MIN_OFF either side score no more than its own, the rest is not
read. A fixed image without a zero background (a CT's air at -1000) reads all of it, which rewards the outline as
the engines do: not checked.

Measured (a helper, forty-seventh session; the skull-stripped MNI T1 fixed against a pseudo-CT with CSF, skull and
scalp rings, moved 5-12 degrees and 6-10 mm at scale 1.0 and 0.9): 5 wrong results (ANTs and elastix deformable,
ANTs similarity; 1.9-3.1 mm mean off, none warned) preferred 0.94-0.96 with gains of 2.1-4.0; 12 right ones (T2 and
PD-like contrasts, the phantom, a brain-only pseudo-CT, a non-monotone map) at most 1.135 with the size 0.02 off.
The same pair with the CT fixed (2.7-2.9 mm off) is missed: no zero background. A second helper's 31 right results
(cleared stacks at 0.65-0.8 with their brain mask, MNI T2 and PD contrasts at scale 0.9 and 1.1, the real SCT pair;
similarity, affine and deformable, both engines) preferred sizes within 0.01 of their own, gains at most 1.007;
9 more had no zero background and were not checked. 0.1-5 s a result. LPS mm, fixed -> moving."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.metric import bias_corrected_information
from ...core.transforms import Transform
from ..pose.scale_seed import scale_about
from .masks import anatomy_center
from .weak_result import linear_or_part, tissue_region

FACTORS = np.round(np.arange(0.88, 1.1201, 0.02), 2)  # moving sizes against the result's
REFINE = 0.01
MIN_OFF = 0.02  # the best size this far from the result's, or more
MIN_GAIN = 1.5  # and its information this many times the linear part's at its own size
MIN_RISE = 0.05  # nats, and this much more: unrelated images rose 0.00 -> 0.01 (a reviewer)
INSIDE_SIZE_WARNING = "the fixed image's tissue matches best at"  # how the warning starts


def inside_size_warning(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None = None
) -> str | None:
    """The warning on a scaled ``transform`` whose size the fixed image's tissue does not confirm, or None (see the
    module notes)."""
    region = tissue_region(fixed, fixed_mask)
    whole = bias_corrected_information(fixed, moving, transform, region) if region is not None else 0.0
    if whole <= 0.0:
        return None
    linear = linear_or_part(transform, fixed)[0]
    moving_center = linear.transform_points(anatomy_center(fixed, fixed_mask)[None])[0]

    def score(factor: float) -> float:
        if factor == 1.0 and transform.is_linear:
            return whole  # the result itself, already read
        resized = Transform.from_matrix(scale_about(factor, moving_center)) @ linear
        return bias_corrected_information(fixed, moving, resized, region)

    # Sizes of the linear part against the linear part itself: against a deformable result they would also count
    # what its warp adds or loses (a reviewer: a 10 mm bulge on the true size read as 0.98, 0.15 -> 0.54).
    scores = {factor: score(factor) for factor in (1.0, round(1.0 - MIN_OFF, 2), round(1.0 + MIN_OFF, 2))}
    own = scores[1.0]
    if own >= max(scores.values()):
        return None  # its own size a peak the sizes either side confirm: the rest of the range is not read
    scores.update({float(factor): score(float(factor)) for factor in FACTORS if float(factor) not in scores})
    coarse = max(scores, key=scores.get)
    if coarse in (FACTORS[0], FACTORS[-1]) or abs(coarse - 1.0) < MIN_OFF:
        return None  # a best size at the range's edge is no peak the tissue shows (unrelated images: 0.87-1.10)
    scores.update({round(factor, 2): score(round(factor, 2)) for factor in (coarse - REFINE, coarse + REFINE)})
    best = max(scores, key=scores.get)
    if abs(best - 1.0) < MIN_OFF or scores[best] < max(MIN_GAIN * own, own + MIN_RISE):
        return None
    return (
        f"{INSIDE_SIZE_WARNING} {best:.2f} times the result's size (the information over the fixed image's tissue "
        f"{own:.2f} -> {scores[best]:.2f}), so the result is likely off by a few mm: its size was fitted to an "
        "outline the tissue inside does not confirm (a skull-stripped MR against a CT's rim of fluid, say): for two "
        "scans of one subject use --preset rigid; else give masks that cover the same anatomy on both images"
    )
