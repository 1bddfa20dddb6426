"""Advice for a run that lost its overlap because the moving image is a thin slab inside a much larger fixed one:
most fixed samples fall off the slab whatever the pose. Register the other way round, the slab as the fixed image,
and take the inverse. A helper's Visible Human pair: MR fixed, the 8-slice CT slab moving, failed every start with
"Too many samples map outside moving image buffer" (189 / 4096); CT -> MR registers in 2.5 s. Sizes in mm."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.images import physical_extent_mm

THIN_SHARE = 0.25  # the slab's thinnest side against the fixed image's smallest extent
# The moving image's box against the fixed image's: an intraoperative ultrasound of the brain as the moving image
# inside a head MR fills 1.5% of its box (a helper's simulation, ius_data.py), and had been refused as "images do not
# overlap" (the runs need 2% of the fixed image inside the moving one) even at the true pose.
SMALL_SHARE = 0.1


OTHER_WAY = "registered the other way round"  # how the warning of a result registered so starts (..other_way)
WAYS_DISAGREE = "the two ways round disagree"  # how the warning starts when they do (a batch's triage looks for it)
# Two results further apart than this (mm, median over the slab's footprint) cannot both be right; unless the kept
# one's images agree CLEAR_WIN times better, the warning says so. A helper's sweep (CT slabs from MNI, elastix and
# ANTs): six wrong results kept scored 1.05-1.24 times the other way's mutual information, right ones 1.34-2.5.
DISAGREE_MM = 5.0
CLEAR_WIN = 1.5


def thin_side_mm(image: sitk.Image, other: sitk.Image) -> float | None:
    """``image``'s thinnest side (mm) when it is under THIN_SHARE of ``other``'s smallest extent (a slab inside it),
    else None."""
    thin = float(physical_extent_mm(image).min())
    return thin if thin < THIN_SHARE * float(physical_extent_mm(other).min()) else None


def thin_moving(fixed: sitk.Image, moving: sitk.Image) -> str | None:
    """Why most fixed samples fall off the moving image at any pose, when ``moving`` is a slab inside ``fixed``
    (:func:`thin_side_mm`); else None."""
    thin = thin_side_mm(moving, fixed)
    if thin is None:
        return None
    across = float(physical_extent_mm(fixed).min())
    return (f"the moving image is a slab {thin:.0f} mm thin inside a fixed image {across:.0f} mm across, so most "
            "fixed samples fall off it")


def small_moving(fixed: sitk.Image, moving: sitk.Image) -> str | None:
    """Why most fixed samples fall off the moving image at any pose, when its box holds under SMALL_SHARE of the
    fixed image's box volume; else None."""
    share = float(np.prod(physical_extent_mm(moving)) / np.prod(physical_extent_mm(fixed)))
    if share >= SMALL_SHARE:
        return None
    sides = " x ".join(f"{side:.0f}" for side in physical_extent_mm(moving))
    return (f"the moving image ({sides} mm) fills {share:.1%} of the fixed image's box, so most fixed samples fall off "
            "it")


def moving_falls_short(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None = None) -> str | None:
    """Why the moving image is too thin (:func:`thin_moving`) or, with no ``fixed_mask`` to sample, too small
    (:func:`small_moving`) for the fixed image's samples, else None."""
    return thin_moving(fixed, moving) or (small_moving(fixed, moving) if fixed_mask is None else None)


def thin_moving_hint(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None = None) -> str | None:
    """The advice for a run that lost its samples (:func:`moving_falls_short`), else None."""
    why = moving_falls_short(fixed, moving, fixed_mask)
    return why and (f"{why}: register the other way round (it as --fixed, the other image as --moving) and "
                    "write --output-inverse for this direction")  # fmt: skip
