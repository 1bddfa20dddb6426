"""Registration masks: automatic foreground, labelmap, exclusion (metal) masks and their combinations.

Every mask is a uint8 image (0/1) on its image's grid. The automatic foreground mask keeps the
largest connected piece above the threshold and then only adds voxels (hole filling, closing): it
does not cut into that piece, but separate pieces (two sections on a slide, two legs) are dropped.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.images import MIN_MASK_COVERAGE, mask_coverage, validate_mask
from .options import MODALITIES

CT_BODY_HU = -500.0  # between air (-1000) and fat (-100): the body's outline on CT
CT_STORAGE_OFFSET = 1024.0  # CT stored without its rescale intercept: air reads about 0 instead of -1000
CLOSING_MM = 3.0
# ... at most this fraction of the image's widest extent: 3 mm would fill a 1 mm specimen's every concavity
# (and cost a 600-voxel pad at 0.01 mm voxels); an image 60 mm wide or more keeps the full 3 mm.
CLOSING_EXTENT_FRACTION = 0.05
# Above this many voxels the mask is computed on a block-averaged copy (about 2 mm voxels are plenty for a mask).
MAX_MASK_VOXELS = 24_000_000


SAMPLE_COUNT = 200_000


def sample_stride(voxels: int, count: int = SAMPLE_COUNT) -> int:
    """Every how many voxels (in file order) the intensity sample takes one."""
    return max(1, int(voxels) // count)


def voxel_sample(image, count: int = SAMPLE_COUNT) -> np.ndarray:
    """A strided sample of the image's voxels; an array is taken as that sample already."""
    if isinstance(image, np.ndarray):
        return image
    array = sitk.GetArrayViewFromImage(image)
    return array.ravel()[:: sample_stride(array.size, count)]


def ct_share(image) -> float:
    """The share of the voxels at or below -500 (air on CT in HU)."""
    return float(np.mean(voxel_sample(image) <= CT_BODY_HU))


def looks_like_ct(image) -> bool:
    """True when the intensities look like Hounsfield units: a sizeable share of voxels at air (<= -500).

    CT stored as HU + 1024 (no negative values) is not guessed: its histogram can be matched by an ordinary
    12-bit MR (the Visible Human MRI scaled by 3.3-3.6 passed a histogram test for it, which then skipped N4 and
    excluded bright fat as metal). Give it as CT (--modality-fixed/--modality-moving ct): its offset is then read
    off its values (:func:`hounsfield_offset`). ``image``: the image or a sample of its values (an array)."""
    sample = voxel_sample(image)
    return bool(ct_share(sample) > 0.02 and sample.max() > 0 and not _padded_non_negative(sample))


def _padded_non_negative(sample: np.ndarray) -> bool:
    """An MR resampled or padded with a CT-like fill value (-1000, -1024): every voxel at or below -500 holds that
    one value and none above it is negative. A CT's air is noisy, and its fat and noise reach below 0 HU, even
    where the scanner clipped the air to one value."""
    low = sample[sample <= CT_BODY_HU]
    high = sample[sample > CT_BODY_HU]
    return bool(low.size and high.size and low.min() == low.max() and high.min() >= 0)


def hounsfield_offset(image) -> float:
    """What to add to the stored values to get HU: 0, or -1024 for CT stored without its intercept.

    Judge it on the whole image (or a sample of it): a crop inside the body, or block averaging, removes the
    negative values a CT in HU has, and its HU would then be read as HU + 1024."""
    sample = voxel_sample(image)
    if sample.min() >= 0 and np.percentile(sample, 99) > 900:
        return -CT_STORAGE_OFFSET
    return 0.0


def resolve_modality(image, modality: str) -> str:
    """'ct' or 'mr' (anything that is not CT gets the automatic threshold)."""
    if modality not in MODALITIES:
        raise InputError(f"unknown modality '{modality}': choose one of {', '.join(MODALITIES)}")
    if modality == "auto":
        return "ct" if looks_like_ct(image) else "mr"
    return modality


def mr_threshold(image: sitk.Image) -> float:
    """Automatic foreground threshold: 10% of the way up the robust (2nd to 98th percentile) range.

    The same rule as FSL BET's: just above the background noise, far below any tissue with signal,
    so dark tissue at the outline is kept; dark tissue inside is filled in afterwards.
    """
    array = sitk.GetArrayViewFromImage(image)
    sample = array.ravel()[:: max(1, array.size // 500_000)].astype(np.float64)
    low, high = np.percentile(sample, [2, 98])
    return float(low + 0.1 * (high - low))


def dilate(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Voxels within ``radius_mm`` (Euclidean, mm) of the mask: exact for any radius, linear time."""
    if radius_mm <= 0:
        return mask
    distance = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=True, squaredDistance=False, useImageSpacing=True)
    return sitk.Cast(distance >= -radius_mm, sitk.sitkUInt8)


def close(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Morphological closing with a ball of ``radius_mm``: fills notches and dents, never removes a voxel."""
    if radius_mm <= 0:
        return mask
    # Pad so that the erosion does not eat into a mask that touches the image border.
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in mask.GetSpacing()]
    padded = sitk.ConstantPad(mask, pad, pad, 0)
    closed = 1 - dilate(1 - dilate(padded, radius_mm), radius_mm)
    closed = sitk.Crop(sitk.Cast(closed, sitk.sitkUInt8), pad, pad)
    return sitk.Cast(closed | mask, sitk.sitkUInt8)


def largest_component(mask: sitk.Image) -> sitk.Image:
    components = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True)
    return sitk.Cast(components == 1, sitk.sitkUInt8)


def fill_holes(mask: sitk.Image) -> sitk.Image:
    """Fill cavities in 3D, then in every slice along each axis.

    The slice-wise pass fills dark regions (sinuses, CSF, bone on MR) that a field of view cutting
    through the anatomy leaves open to the image border in 3D.
    """
    filled = sitk.GetArrayFromImage(sitk.BinaryFillhole(mask, fullyConnected=False, foregroundValue=1))
    for axis in range(3):
        # All slices at once: interleaved with walls of ones, no cavity connects across slices,
        # so a 3D fill is the slice-by-slice fill.
        slices = np.moveaxis(filled, axis, 0)
        walled = np.ones((2 * slices.shape[0] + 1,) + slices.shape[1:], np.uint8)
        walled[1::2] = slices
        walled = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(walled), False, 1))
        filled = np.ascontiguousarray(np.moveaxis(walled[1::2], 0, axis))
    result = sitk.GetImageFromArray(filled.astype(np.uint8))
    result.CopyInformation(mask)
    return result


def closing_radius_mm(size, spacing) -> float:
    """The automatic mask's closing radius (mm) for an image of ``size`` voxels at ``spacing`` mm: ``CLOSING_MM``,
    at most ``CLOSING_EXTENT_FRACTION`` of the widest extent. Give the input's, not a crop's: how smooth the
    anatomy's outline is does not change with how much of it is kept."""
    extent = np.asarray(size, float) * np.asarray(spacing, float)
    return float(min(CLOSING_MM, CLOSING_EXTENT_FRACTION * extent.max()))


def foreground_mask(
    image: sitk.Image,
    modality: str = "auto",
    threshold: float | None = None,
    closing_mm: float | None = None,
    offset: float | None = None,
    guessed: bool = False,
) -> tuple[sitk.Image, dict]:
    """The anatomy's mask: threshold, keep the largest component, fill holes, close (smooth).

    CT is thresholded at -500 HU (stored values without the -1024 intercept are recognised), other
    images at :func:`mr_threshold`; ``threshold`` (in stored units) overrides both. ``offset``: the CT's
    HU offset (:func:`hounsfield_offset`) judged on the whole image, when ``image`` is a crop or a
    downsampled copy; ``guessed``: ``modality`` was guessed (the error then says how to give it).
    ``closing_mm``: default :func:`closing_radius_mm`. Returns the uint8 mask on the image's grid and a
    record of how it was made.
    """
    kind = resolve_modality(image, modality)
    guessed = guessed or modality == "auto"
    closing_mm = closing_radius_mm(image.GetSize(), image.GetSpacing()) if closing_mm is None else float(closing_mm)
    if threshold is None:
        if kind == "ct":
            offset = hounsfield_offset(image) if offset is None else float(offset)
            threshold = CT_BODY_HU - offset
            how = f"CT above {CT_BODY_HU:g} HU" + (" (values stored as HU + 1024)" if offset else "")
        else:
            threshold = mr_threshold(image)
            how = "above 10% of the robust intensity range (2nd-98th percentile)"
    else:
        how = "above the given threshold"
    work = image
    if np.prod(image.GetSize(), dtype=float) > MAX_MASK_VOXELS:
        factor = int(np.ceil((np.prod(image.GetSize(), dtype=float) / MAX_MASK_VOXELS) ** (1 / 3)))
        work = sitk.BinShrink(image, [factor] * 3)
    binary = sitk.Cast(sitk.Cast(work, sitk.sitkFloat32) > float(threshold), sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(binary).any():
        not_ct = " (if it is not CT, give its modality as mr)" if kind == "ct" and guessed else ""
        raise InputError(
            f"no voxel is above the automatic mask's threshold {threshold:g} ({how}): the image is empty or "
            f"constant{not_ct}; give a mask file instead of 'auto'"
        )
    mask = close(fill_holes(largest_component(binary)), closing_mm)
    mask = fill_holes(mask)
    if work is not image:
        # One coarse voxel more, so that the blocky upsampled outline never falls inside the anatomy.
        mask = dilate(mask, max(work.GetSpacing()))
        mask = sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    record = {"kind": "automatic", "modality": kind, "threshold": round(float(threshold), 3), "rule": how,
              "closing_mm": round(closing_mm, 6), "coverage": round(mask_coverage(mask), 4)}  # fmt: skip
    return mask, record


def mask_from_labelmap(
    labelmap: sitk.Image, image: sitk.Image, labels: list[int] | None = None, role: str = "mask"
) -> sitk.Image:
    """A uint8 mask on ``image``'s grid from a labelmap: all nonzero labels, or only ``labels``. ``role`` names it in
    errors ("fixed mask (m.nrrd)")."""
    if labels:
        array = sitk.GetArrayViewFromImage(labelmap)
        selected = sitk.GetImageFromArray(np.isin(array, labels).astype(np.uint8))
        selected.CopyInformation(labelmap)
        labelmap = selected
    return validate_mask(labelmap, image, role)


def exclusion_mask(
    image: sitk.Image, above: float, margin_mm: float = 3.0, hounsfield: bool = True, offset: float | None = None
) -> sitk.Image:
    """Voxels above ``above`` (HU for CT, e.g. 2500 for metal), dilated by ``margin_mm`` (streak artefacts).
    ``offset``: the CT's HU offset judged on the whole image (default: judged on ``image``)."""
    if offset is None:
        offset = hounsfield_offset(image) if hounsfield else 0.0
    bright = sitk.Cast(sitk.Cast(image, sitk.sitkFloat32) > float(above - offset), sitk.sitkUInt8)
    return dilate(bright, margin_mm)


def combine(include: list[sitk.Image], exclude: list[sitk.Image] = ()) -> sitk.Image:
    """Voxels in every ``include`` mask and in no ``exclude`` mask (all on one grid)."""
    if not include:
        raise InputError("combining masks needs at least one mask to include")
    result = include[0] != 0
    for mask in include[1:]:
        result = result & (mask != 0)
    for mask in exclude:
        result = result & (mask == 0)
    return sitk.Cast(result, sitk.sitkUInt8)


def coverage_warning(mask: sitk.Image, role: str, cropped_to_common: bool = False) -> str | None:
    """A warning when the mask covers under 10% of its image: cropping serves the sampler better (to a region of
    interest around it, when the image was already cropped to the common region)."""
    coverage = mask_coverage(mask)
    if coverage >= MIN_MASK_COVERAGE:
        return None
    how = "a region of interest around the mask (--roi)" if cropped_to_common else (
        "mmreg prep --crop-common, or a region of interest")
    return (f"{role} covers {coverage:.0%} of its image: crop the image to the region instead ({how}), so the "
            "metric's samples fall on the anatomy")


def covers_grid(labelmap: sitk.Image, grid) -> bool:
    """Whether a set voxel of ``labelmap`` lies inside the input's grid (size, spacing, origin, direction as stored)."""
    size, spacing, origin, direction = grid
    reference = sitk.Image([int(n) for n in size[:3]], sitk.sitkUInt8)
    reference.SetSpacing(spacing[:3])
    reference.SetOrigin(origin[:3])
    reference.SetDirection(direction[:9])
    resampled = sitk.Resample(sitk.Cast(labelmap != 0, sitk.sitkUInt8), reference, sitk.Transform(),
                              sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)  # fmt: skip
    return bool(sitk.GetArrayViewFromImage(resampled).any())
