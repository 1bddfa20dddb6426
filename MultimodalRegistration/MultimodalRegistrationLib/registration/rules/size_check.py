"""Whether a result that keeps the size (rigid, translation) fits images whose sizes differ: the usual cause is a
wrong spacing in a header (a 0.9 mm scan stated as 1 mm), and a rigid fit of two sizes ends off without a word.

From the result, rotation, shift and isotropic scale are refined together (the scaled start search's pattern
search and scoring rule, :mod:`..pose.scale_search`: mutual information where both images hold tissue) on
coarse images: about a 40th of the fixed image's smallest side, within 1 and 4 mm, from the result and from
it resized to START_SIZES (from the result alone the search stopped short: 0.955 for a true 0.88). The result
is warned when that search prefers a size beyond SIZE_LIMIT either way, scores clearly better there (MIN_GAIN
nats and MIN_GAIN_SHARE of the result's score), and a second opinion agrees: over the whole fixed image (or its
field of view, as the weak-result check reads it) the sized pose's bias-corrected mutual information is at least
MIN_CONFIRM times the result's, at least MIN_CONTRAST times its decoys' (:mod:`.weak_result`), and that contrast
at least MIN_CONTRAST_GAIN times the result's own. On small images cut by their fields of view the search alone
misleads, and an ultrasound's intensities confirm no size (an unguided MR -> TRUS-like result 30 mm off had been
called a wrong spacing).

Measured (a helper's sweep of wrong headers, thirty-eighth session, 31 rigid results: the MNI T1 against a
T2-like image moved by a known rigid transform, the real SCT T1w/T2w pair and the Visible Human MR, their
headers corrupted): the results of a moving spacing scaled 0.8, 0.85, 0.9, 1.25 and 2 (7-53 mm off, silent
before) preferred 0.804, 0.855, 0.901, 1.251 and 1.996; their sized poses scored 3.8-98 times the result's
mutual information and 26-35 times their decoys' (the results 0.8-6.0); a real head scaled 0.9 (warned as
probably wrong) 0.897, 2.0 times, contrast 3.4 against the result's 1.6; the phantom pair (SMALL) at 0.85-1.15,
contrasts 2.6-2.7 against the results' 1.7-2.0 (1.3-1.6 times). The seven right results preferred
0.996-1.001 but the SCT pair's (1.65 mm): 1.503 (T1w fixed) and 2.468 (T2 fixed) by the search, whose sized poses
scored 0.71 and 1.18 times the result (a reviewer: 1.84 and up to 2.9 with a cord mask or half a field of view)
but 0.7-1.2 times their decoys against the result's 2.1-2.5. Results wrong for other reasons (flips, slabs,
offsets, a fixed spacing halved) had sized contrasts 0.6-1.3, at most 0.86 times their results': no size
warning. About 0.5-4 s a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ...core.errors import InputError
from ...core.plausible_spacing import check_spacing, sizes_apart_message
from ...core.rotations import isotropic_scale
from ...core.transforms import Transform
from ..pose.coarse import CoarseImage
from ..pose.local_search import local_search
from ..pose.overlap_scorer import MIN_TISSUE_COVERED, overlap_scorer
from ..pose.scale_search import search_scaled_pose
from ..pose.scale_seed import scale_about
from .weak_result import MIN_CONTRAST, contrast_with_decoys, data_region

SIZE_LIMIT = 1.08  # two scans of one body differ by a few percent at most (gradient non-linearity)
MIN_GAIN, MIN_GAIN_SHARE = 0.05, 0.2
MIN_CONFIRM = 1.3  # the sized pose's mutual information over the result's, on the whole fixed image
MIN_CONTRAST_GAIN = 1.1  # and its contrast with its decoys over the result's with its own
SIDE_VOXELS = 40  # coarse voxels along the fixed image's smallest side
SPACING_RANGE_MM = (1.0, 4.0)
SAMPLES = 15000
SEARCH_START_MM = 4.0  # the pattern search's first step (:func:`..pose.local_search.local_search`)
# The pattern search from the result alone stopped short (0.955 for a true 0.88): it also starts from these sizes.
START_SIZES = 2.0 ** (np.arange(-3, 4) / 6)  # 0.71-1.41
SIZE_WARNING = "the moving image matches best at"  # how the warning starts


def search_spacing_mm(fixed: sitk.Image) -> float:
    """The coarse voxel (mm): a SIDE_VOXELS-th of the fixed image's smallest side, within SPACING_RANGE_MM, and no
    finer than its own voxels."""
    side = min(n * s for n, s in zip(fixed.GetSize(), fixed.GetSpacing()))
    low, high = max(SPACING_RANGE_MM[0], min(fixed.GetSpacing())), SPACING_RANGE_MM[1]
    return float(np.clip(side / SIDE_VOXELS, low, max(low, high)))


@dataclass(frozen=True)
class SizeProbe:
    """What the scaled search from a result found: the moving size it prefers (per the result's), the result's
    score and the score there, and that pose (4x4, fixed -> moving, LPS mm)."""

    size: float
    before: float
    after: float
    pose: np.ndarray
    center: np.ndarray  # the fixed foreground's centre (LPS mm), about which sizes and decoys turn


@dataclass(frozen=True)
class SearchFrame:
    """What a search from a result scores with: the scoring rule on coarse images (see the module notes), the fixed
    foreground's centre and mean radius (LPS mm), the result (4x4) and where it takes that centre."""

    score: object
    center: np.ndarray
    radius: float
    start: np.ndarray
    moving_center: np.ndarray


def search_frame(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None, scale_range: tuple[float, float], largest_size: float = 1.0,
) -> SearchFrame | None:  # fmt: skip
    """The :class:`SearchFrame` of a linear ``transform``; poses outside ``scale_range`` (isotropic) score 0. None
    when no pose a search can reach from starts up to ``largest_size`` times the result's size scores at all."""
    spacing = search_spacing_mm(fixed)
    fixed_coarse = CoarseImage.of(fixed, spacing, fixed_mask)
    moving_coarse = CoarseImage.of(moving, spacing, moving_mask)
    region = fixed_coarse.dilated(2)
    center = fixed_coarse.points.mean(axis=0)
    radius = float(np.sqrt(((fixed_coarse.points - center) ** 2).sum(axis=1).mean()))
    start = np.asarray(transform.matrix, float)
    largest = abs(np.linalg.det(start[:3, :3])) * (largest_size * np.exp(SEARCH_START_MM / radius)) ** 3
    if _tissue_out_of_reach(fixed_coarse, region, moving_coarse, largest):
        return None
    score = overlap_scorer(fixed_coarse, moving_coarse, region, tissue_only=True, samples=SAMPLES, bins=24, seed=0,
                           scale_range=scale_range)  # fmt: skip
    return SearchFrame(score, center, radius, start, start[:3, :3] @ center + start[:3, 3])


def _tissue_out_of_reach(fixed: CoarseImage, region: np.ndarray, moving: CoarseImage, largest: float) -> bool:
    """Whether the fixed ``region``, mapped with at most ``largest`` times its volume, covers less than
    MIN_TISSUE_COVERED of the moving tissue, so that every pose scores 0 (a small fixed image such as an ultrasound
    fan against a whole head: its scorer's fine lookups of the head cost seconds for nothing). The tissue's
    volume is bounded below by its foreground (or mask) before closing and dilation."""
    region_mm3 = float(region.sum() * np.prod(fixed.image.GetSpacing()))
    tissue = moving.mask if moving.mask is not None else moving.foreground
    tissue_mm3 = float(tissue.sum() * np.prod(moving.image.GetSpacing()))
    return region_mm3 * largest < MIN_TISSUE_COVERED * tissue_mm3


def preferred_size(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
) -> SizeProbe | None:  # fmt: skip
    """The scaled search from ``transform`` (linear; see the module notes); None when no pose it reaches scores."""
    frame = search_frame(fixed, moving, transform, fixed_mask, moving_mask, (0.4, 2.5), float(START_SIZES.max()))
    if frame is None:
        return None
    score, center, radius, start = frame.score, frame.center, frame.radius, frame.start
    before = float(score(start[None])[0])
    starts = np.stack([scale_about(size, frame.moving_center) @ start for size in START_SIZES])
    poses, values = local_search(score, starts, center, radius, SEARCH_START_MM, 0.5, scale=True)
    best = int(np.argmax(values))
    size = isotropic_scale(poses[best][:3, :3]) / isotropic_scale(start[:3, :3])
    return SizeProbe(size, before, float(values[best]), poses[best], center)


def images_confirm(fixed: sitk.Image, moving: sitk.Image, result: Transform, pose: np.ndarray, center: np.ndarray) -> bool:
    """The second opinion on ``pose`` (4x4, fixed -> moving) against ``result``, over the whole fixed image (or its
    field of view): its bias-corrected mutual information at least MIN_CONFIRM times the result's, at least
    MIN_CONTRAST times its decoys' (turned about ``center``), and that contrast MIN_CONTRAST_GAIN times the
    result's own."""
    region = data_region(fixed)
    before, before_decoys = contrast_with_decoys(fixed, moving, result, center, region)
    after, after_decoys = contrast_with_decoys(fixed, moving, Transform.from_matrix(pose), center, region)
    if after <= 0.0 or after < MIN_CONFIRM * max(before, 0.0) or after < MIN_CONTRAST * after_decoys:
        return False
    return not (before > 0.0 and before_decoys > 0.0 and after / after_decoys < MIN_CONTRAST_GAIN * before / before_decoys)


def scaled_second_opinion(
    fixed: sitk.Image, moving: sitk.Image, result: Transform, center: np.ndarray, fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None,
) -> float | None:  # fmt: skip
    """The moving size (per ``result``'s) of the scaled start search's pose (every rotation and size,
    :func:`..pose.scale_search.search_scaled_pose`) when it lies beyond SIZE_LIMIT and :func:`images_confirm` it
    against ``result``; else None. From a rigid result turned the wrong way, the search from the result finds a size
    but not the rotation: a brain shrunk to 0.6 (83 mm off, unwarned) preferred 1.64 there, turned 177 degrees."""
    found = search_scaled_pose(fixed, moving, fixed_mask, moving_mask).transform.matrix
    size = isotropic_scale(found[:3, :3]) / isotropic_scale(np.asarray(result.matrix)[:3, :3])
    if 1 / SIZE_LIMIT <= size <= SIZE_LIMIT or not images_confirm(fixed, moving, result, found, center):
        return None
    return size


def size_warning(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, preset: str | None,
    fixed_mask: sitk.Image | None = None, moving_mask: sitk.Image | None = None,
) -> str | None:  # fmt: skip
    """The warning on a linear result of a ``preset`` that keeps the size (None: a transform QA is given), or None
    (see the module notes)."""
    if not transform.is_linear:
        return None
    probe = preferred_size(fixed, moving, transform, fixed_mask, moving_mask)
    if probe is None:
        return None
    size, before, after = probe.size, probe.before, probe.after
    gain = after - before
    if 1 / SIZE_LIMIT <= size <= SIZE_LIMIT or gain < max(MIN_GAIN, MIN_GAIN_SHARE * abs(before)):
        return None
    how = f"a search over sizes from the result: score {before:.2f} -> {after:.2f}"
    if not images_confirm(fixed, moving, transform, probe.pose, probe.center):
        size = scaled_second_opinion(fixed, moving, transform, probe.center, fixed_mask, moving_mask)
        if size is None:
            return None
        how = "a search over all poses and sizes, which the whole images confirm"
    kept = f"the size the {preset} preset keeps" if preset else "this transform's size"
    return (  # no spacings quoted: small anatomy is registered at a working scale (..working_scale)
        f"{SIZE_WARNING} {size:.2f} times {kept} ({how}), so the result is likely off: a spacing is probably wrong: "
        "check both headers' spacing, or set the right one with --spacing-fixed / --spacing-moving; if the spacing is "
        "right and the anatomy did shrink or swell (another subject, fixed or cleared tissue), use --preset similarity"
    )


def check_sizes_apart(fixed: sitk.Image, moving: sitk.Image, initial: Transform | None) -> None:
    """Refuse (InputError naming the fix) two images whose largest sides differ over MAX_EXTENT_RATIO times, unless
    an initial transform places them: a spacing in the wrong unit (:func:`.sizes_apart_message`)."""
    if initial is not None or not all(check_spacing(image).plausible for image in (fixed, moving)):
        return  # an implausible spacing has its own refusal, which suggests the right one (core.plausible_spacing)
    images = {"fixed": fixed, "moving": moving}
    message = sizes_apart_message({role: image.GetSize() for role, image in images.items()},
                                  {role: image.GetSpacing() for role, image in images.items()})  # fmt: skip
    if message:
        raise InputError(message)
