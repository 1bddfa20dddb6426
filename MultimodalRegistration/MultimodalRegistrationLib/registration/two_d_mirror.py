"""A slide laid face down (its image the mirror of the anatomy) is not searched, but it is warned about.

The start search (:mod:`.two_d_start`) is run again on the moving image with its columns reversed; when its best
mutual information beats the stored image's by MIRROR_RATIO, the run warns. Measured (a helper's sweep, thirty-fifth
session; the coarse search's MI, mirrored over stored): a section cut asymmetrically and laid face down 2.08 (its
registration ended 73 mm off, silently), the same section the right way up 0.48; 24 near-symmetric head sections
(rigid, shrunk and sheared, turned 0-200 degrees), stored and mirrored, 0.94-1.06: a near-symmetric section cannot
tell, and is left alone.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .two_d_start import Start2D, search_start_2d

MIRROR_RATIO = 1.5


def mirrored(image: sitk.Image) -> sitk.Image:
    """``image`` with its columns reversed, on the same grid."""
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayViewFromImage(image)[:, ::-1]))
    flipped.CopyInformation(image)
    return flipped


def mirror_warning(fixed: sitk.Image, moving: sitk.Image, start: Start2D, scales: bool,
                   fixed_mask: sitk.Image | None = None, moving_mask: sitk.Image | None = None) -> str | None:  # fmt: skip
    """A warning when the mirrored moving image fits the start search MIRROR_RATIO times better than ``start``
    (the stored image's best), else None. One-channel images, as the search takes them."""
    flipped_mask = mirrored(moving_mask) if moving_mask is not None else None
    mirror = search_start_2d(fixed, mirrored(moving), scales, fixed_mask, flipped_mask)
    if start.mutual_information <= 0 or mirror.mutual_information < MIRROR_RATIO * start.mutual_information:
        return None
    return (
        f"the moving slide looks mirrored (laid face down): its mirror image matches the fixed image "
        f"{mirror.mutual_information / start.mutual_information:.1f} times better (mutual information "
        f"{mirror.mutual_information:.2f} against {start.mutual_information:.2f}), and the registration does not "
        "search mirrors: flip the slide image left-right and register again"
    )
