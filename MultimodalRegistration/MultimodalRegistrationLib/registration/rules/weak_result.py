"""A result the images do not confirm: its mutual information is hardly above that of poses far from it.

An engine that starts at the wrong size or far off ends in a local optimum and still "improves"
the metric a little (issue 23: 0.044 -> 0.055, where the right answer scores 0.57). The metric
before says nothing about what the pair can reach; what the result scores against poses clearly
wrong does: the result moved by DECOY_SHIFT_MM along each fixed axis and turned by 90 degrees
about each (about the fixed foreground's centre). A right result stands well above them; a
wrong one barely.

Measured on the cleared-brain cases (Testing/Python/micro_data.py: shrink 0.6-0.7, 22-34 degrees,
whole and 65% stacks, with and without a brain mask; 69 results of elastix, ANTs, Greedy and the
scale-aware prototype): the 19 results within 2 mm scored 2.9 to 3.5 times their decoys' median, one
2.1 mm off 2.6; two results 9-10 mm off scored 2.0-2.1 and are not caught by MIN_CONTRAST = 2.0;
all the others (25 mm or more off) scored below 1.8.

Where the fixed image has no data it reads 0: an ultrasound outside its fan, a skull-stripped brain outside the
brain. Matched against dark moving background, that exterior raised a wrong result's MI above its decoys'. So for
an image whose darkest value is 0 the MI is read inside its field of view only (:func:`..core.views.field_of_view`).
On hard MR -> TRUS-like pairs (seeds 100-111, echo shares 0 and 1; guided_results.md, thirty-fifth session) the
63 unguided results 20-80 mm off scored up to 4.1 over the whole fixed image (39 not warned) and up to 1.5 in its
fan (all warned); the cleared-brain cases above have no zero exterior and score as before. TRUS-like results
within 5 mm score 0.7-2.6 there: the check cannot confirm an unguided MR -> TRUS result, and warns on most.
The mutual information here is corrected for its small-sample bias (:func:`..core.metric.bias_corrected_information`):
decoys that push part of a small image out of view have fewer samples, and the plain estimate inflated them. On
the real spinal-cord pair (SCT T1w/T2w) the right results scored 1.7 and 1.9 and were warned; corrected 2.1 and 2.5,
while poses 10-20 mm off stay at 0.9-1.3. Re-measured on TRUS-like seeds 100-105 at echo shares 0 and 1: the 11
unguided results 28-80 mm off score 0.3-1.7 corrected (0.5-1.5 before), all warned (the one 7 mm off: 2.9,
2.2 before, not warned); the truth's rigid fits 0.9-2.6. A phantom (a million samples) does not change.
Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.images import index_to_physical_matrix, physical_extent_mm
from ...core.metric import METRIC_SPACING_MM, bias_corrected_information, shrink_to_spacing
from ...core.rotations import affine_fit, axis_angle_matrices
from ...core.transforms import Transform
from ...core.views import field_of_view

DECOY_SHIFT_MM = 30.0
# A result below this many times its decoys' median mutual information gets the warning.
MIN_CONTRAST = 2.0
# A scaled start whose sample seeds found distinct starts within UNSURE_MARGIN of each other's score must be confirmed
# more clearly. A helper's trace (forty-fifth session, 31 elastix similarity runs on 30-50% light-sheet stacks): a
# 30% hemisphere slice 85 mm off scored 2.02 with seeds 1.16 apart, unwarned; the three other wrong ones 1.75-1.90
# (seeds 1.02-1.22 apart); right results 2.62 and up (seeds 1.33-2.21 apart where they disagreed). A raised bar for
# every scaled result would have warned the real spinal-cord pair's right similarity result (2.16; header start).
UNSURE_MARGIN = 1.3
MIN_CONTRAST_UNSURE = 2.3
LINEAR_PART_SPACING_MM = 8.0  # the grid a deformable result's affine part is fitted on
WEAK_RESULT = "the result is probably wrong"  # how the warning begins (a batch's triage looks for it)


def decoy_poses(matrix: np.ndarray, center: np.ndarray, shift_mm: float = DECOY_SHIFT_MM) -> list[np.ndarray]:
    """``matrix`` (4x4, fixed -> moving) after fixed-space moves: +-``shift_mm`` along each axis and a
    90-degree turn about each axis through ``center`` (LPS mm); 9 poses."""
    poses = []
    for axis in range(3):
        for sign in (1.0, -1.0):
            move = np.eye(4)
            move[axis, 3] = sign * shift_mm
            poses.append(matrix @ move)
        vector = np.zeros(3)
        vector[axis] = np.pi / 2
        turn = np.eye(4)
        turn[:3, :3] = axis_angle_matrices(vector[None])[0]
        turn[:3, 3] = center - turn[:3, :3] @ center
        poses.append(matrix @ turn)
    return poses


def data_region(fixed: sitk.Image) -> sitk.Image | None:
    """The fixed field of view (UInt8 0/1, on the metric's METRIC_SPACING_MM grid, where the MI reads it) when the
    image's darkest value is 0, which reads as no data (a fan's exterior); else None, all of it (a CT's air at
    -1000 is data, and the field of view would leave it out). On the full grid a 1 mm head took 5 s, at 2 mm 0.5."""
    if float(sitk.GetArrayViewFromImage(fixed).min()) != 0.0:
        return None
    coarse = shrink_to_spacing(fixed, METRIC_SPACING_MM)
    return field_of_view(coarse, coarse)


def tissue_region(fixed: sitk.Image, fixed_mask: sitk.Image | None) -> sitk.Image | None:
    """Where two results' information is compared: the fixed mask, else :func:`data_region`."""
    return fixed_mask if fixed_mask is not None else data_region(fixed)


def contrast_with_decoys(
    fixed: sitk.Image, moving: sitk.Image, result: Transform, center: np.ndarray, region: sitk.Image | None
) -> tuple[float, float]:
    """(``result``'s bias-corrected mutual information, the median of its decoys'), over ``region`` of the fixed
    image (None: all of it; :func:`data_region`)."""
    value = bias_corrected_information(fixed, moving, result, region)
    decoys = [
        bias_corrected_information(fixed, moving, Transform.from_matrix(pose), region)
        for pose in decoy_poses(result.matrix, np.asarray(center, float))
    ]
    return value, float(np.median(decoys))


def linear_part(result: Transform, fixed: sitk.Image, spacing_mm: float = LINEAR_PART_SPACING_MM) -> Transform:
    """The affine map (fixed -> moving, LPS mm) closest, in least squares, to ``result`` over the fixed image's
    voxels on a ``spacing_mm`` grid. A brain MR -> intraoperative ultrasound run (a helper's simulation, 2026-11-30)
    whose B-spline stage followed a rigid stage 70 mm off had not been warned: only linear results were checked.
    At least three grid points span each axis: a fixed slab thinner than the grid left one point across it, and the
    fit an arbitrary scale there (a reviewer: an identity field on a 4 mm slab read as scale 0 along it)."""
    grid = shrink_to_spacing(fixed, min(spacing_mm, float(physical_extent_mm(fixed).min()) / 3))
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in grid.GetSize()], indexing="ij"), -1)
    to_lps = index_to_physical_matrix(grid)
    points = index.reshape(-1, 3) @ to_lps[:3, :3].T + to_lps[:3, 3]
    return Transform.from_matrix(affine_fit(points, result.transform_points(points)))


def linear_or_part(result: Transform, fixed: sitk.Image) -> tuple[Transform, str]:
    """``result`` and "its" when linear; else its :func:`linear_part`, which a wrong pose shares, and "its affine
    part's" (how warnings name it)."""
    return (result, "its") if result.is_linear else (linear_part(result, fixed), "its affine part's")


def _nats(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"  # QA: none before when the images lay apart


def contrast_needed(seed_margin: float | None) -> float:
    """The contrast a result needs: MIN_CONTRAST, or MIN_CONTRAST_UNSURE after a scaled start search whose seeds found
    distinct starts within UNSURE_MARGIN (``seed_margin``, :class:`..pose.anypose.AnyPoseResult`)."""
    return MIN_CONTRAST_UNSURE if seed_margin is not None and seed_margin < UNSURE_MARGIN else MIN_CONTRAST


def weak_result_warning(
    fixed: sitk.Image, moving: sitk.Image, result: Transform, metric_after: float | None, metric_before: float | None,
    center: np.ndarray, scaled: bool = False, seed_margin: float | None = None,
) -> str | None:  # fmt: skip
    """A warning in plain words when ``result`` (a deformable one: its :func:`linear_part`) scores below
    MIN_CONTRAST times the median mutual information of its decoys (:func:`decoy_poses`), else None. Both are
    measured on the whole fixed image, mask or not (within a mask, decoys that push the mask out of a partial
    stack score next to nothing, and a wrong result looked confirmed: 0.085 against 0.57), or on its
    field of view when it reads 0 where it has no data (:func:`data_region`).
    ``metric_after`` and ``metric_before`` (the run's own numbers) are quoted in the warning; ``scaled``: the
    result came from a preset that scales, so the advice does not suggest one; ``seed_margin``: its start search's
    (:func:`contrast_needed`)."""
    result, whose = linear_or_part(result, fixed)
    value, typical = contrast_with_decoys(fixed, moving, result, center, data_region(fixed))
    needed = contrast_needed(seed_margin)
    if value <= 0.0 or typical <= 0.0 or value >= needed * typical:
        return None
    unsure = "" if needed == MIN_CONTRAST else (
        f", and its start search found distinct starts whose scores differ by only {seed_margin - 1:.0%}")
    return (
        f"{WEAK_RESULT}: {whose} mutual information ({_nats(metric_before)} before, {_nats(metric_after)} after) "
        f"is only {value / typical:.1f} times that of poses {DECOY_SHIFT_MM:.0f} mm or 90 deg away from it, where a "
        f"right alignment usually scores {MIN_CONTRAST:.0f} to 3 times more{unsure}. The images do not confirm this "
        # --n4: a helper's spinal-cord pair under a 0.5-1.5 bias field ended 40 mm off (warned); --n4 moving: 1.67 mm.
        f"alignment: check it, then try {SCALED_ADVICE if scaled else RIGID_ADVICE}, bias correction (--n4) for an "
        "MR whose brightness drifts across it, a mask of the same anatomy on both images, or landmarks or "
        "segmentations to guide it"
    )


# A helper's CT-MR sweep: a skull-base CT slab, warned, was told to try similarity first, which ended 102-115 mm off;
# a slab or a cut field of view needs a start near the answer.
RIGID_ADVICE = ("an initial transform near the answer (mmreg prealign, or a manual one) when one image covers only "
                "part of the other (a slab, a cut field of view), --preset similarity or affine for tissue that changed "
                "size")
# A helper's cleared-tissue sweep: five similarity runs that had failed were told to try similarity.
# The reviewer: a spinal-cord pair of one subject under similarity started at scale 2.86, warned; rigid was right.
SCALED_ADVICE = ("--preset rigid if the anatomy did not change size (two scans of one subject), an initial transform "
                 "near the answer (mmreg prealign, or a manual one) for a partial or cut stack")
