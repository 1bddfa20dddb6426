"""Whether a mask's values are an intensity image's: a mask is its non-zero voxels, so a CT or a probability map with
a small non-zero floor (1e-6) given as a mask sets (nearly) every voxel and masks nothing, without a word."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import InputError

# Slicer's colour tables hold 255 labels (labels.MAX_LABELS, not imported: labels imports images, through views).
MAX_LABELS = 255
# An intensity image's exact zeros are scattered voxels (0 HU in a CT's soft tissue), well under this share; a mask's
# background is a region. A mask on the image's own grid covering more than 99% would mask nearly nothing anyway.
MAX_UNSET_SHARE = 0.01
SAMPLE_VOXELS = 2_000_000  # an intensity image shows hundreds of values in any sample this large


def intensity_mask_error(mask: sitk.Image, binary: sitk.Image, role: str = "mask") -> InputError | None:
    """The refusal of a ``mask`` that sets all but under 1% of its voxels (``binary``: its ``mask != 0``, on its own
    grid) with values no labelmap holds (fractional, or more than 255 of them); None for any other mask. An all-ones
    mask and a labelmap labelling every voxel (a few whole values) are kept: they cover the whole image, as asked."""
    voxels = mask.GetNumberOfPixels()
    unset = voxels - int(np.count_nonzero(sitk.GetArrayViewFromImage(binary)))
    if unset >= MAX_UNSET_SHARE * voxels:
        return None
    values = sitk.GetArrayViewFromImage(mask).reshape(-1)
    step = max(1, values.size // SAMPLE_VOXELS)
    distinct = np.unique(values[::step])
    distinct = distinct[distinct != 0]
    fractional = not np.array_equal(distinct, np.round(distinct))
    if not fractional and len(distinct) <= MAX_LABELS:
        return None
    how_many = f"{len(distinct)}{' or more' if step > 1 else ''} distinct values, smallest {float(values.min()):g}"
    sets = "every voxel" if unset == 0 else f"all but {unset} of its {voxels} voxels"
    return InputError(f"{role} sets {sets} ({how_many}): it looks like an intensity image or a probability map: "
                      "give a labelmap, or threshold it (e.g. > 0.5)")  # fmt: skip


def _bare(origin, spacing, direction) -> bool:
    return (np.allclose(origin[:3], 0) and np.allclose(spacing[:3], 1)
            and np.allclose(np.asarray(direction[:9]), np.eye(3).ravel()))  # fmt: skip


def check_mask_geometry(mask: sitk.Image, size, spacing, origin, direction, role: str = "mask") -> None:
    """Refuse a mask of its image's size (``size`` ... ``direction``: the image's grid as stored) written without a
    geometry (origin 0, spacing 1 mm, no direction, as numpy's arrays are saved): placed by that geometry, it had kept
    4% of the region meant and covered the other side, exit 0 (a helper's prep sweep)."""
    if tuple(mask.GetSize()) != tuple(int(n) for n in size[:3]) or _bare(origin, spacing, direction):
        return
    if _bare(mask.GetOrigin(), mask.GetSpacing(), mask.GetDirection()):
        raise InputError(f"{role} has its image's size ({' x '.join(map(str, mask.GetSize()))}) but no geometry "
                         "(origin 0, spacing 1 mm, no direction), as an array saved on its own has: it would be placed "
                         "elsewhere; save it with the image's geometry (SimpleITK: mask.CopyInformation(image))")
