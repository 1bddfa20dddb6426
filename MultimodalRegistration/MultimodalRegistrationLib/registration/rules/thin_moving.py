"""Advice for a run that lost its overlap because the moving image is a thin slab inside a much larger fixed one:
most fixed samples fall off the slab whatever the pose. Register the other way round, the slab as the fixed image,
and take the inverse. A helper's Visible Human pair: MR fixed, the 8-slice CT slab moving, failed every start with
"Too many samples map outside moving image buffer" (189 / 4096); CT -> MR registers in 2.5 s. Sizes in mm."""

from __future__ import annotations

import SimpleITK as sitk

from ...core.images import physical_extent_mm

THIN_SHARE = 0.25  # the slab's thinnest side against the fixed image's smallest extent


OTHER_WAY = "registered the other way round"  # how the warning of a result registered so starts (..other_way)
WAYS_DISAGREE = "the two ways round disagree"  # how the warning starts when they do (a batch's triage looks for it)
# Two results further apart than this (mm, median over the slab's footprint) cannot both be right; unless the kept
# one's images agree CLEAR_WIN times better, the warning says so. A helper's sweep (CT slabs from MNI, elastix and
# ANTs): six wrong results kept scored 1.05-1.24 times the other way's mutual information, right ones 1.34-2.5.
DISAGREE_MM = 5.0
CLEAR_WIN = 1.5


def thin_moving(fixed: sitk.Image, moving: sitk.Image) -> str | None:
    """Why most fixed samples fall off the moving image at any pose, when ``moving``'s thinnest side is under
    THIN_SHARE of ``fixed``'s smallest extent; else None."""
    thin = float(physical_extent_mm(moving).min())
    across = float(physical_extent_mm(fixed).min())
    if thin >= THIN_SHARE * across:
        return None
    return (f"the moving image is a slab {thin:.0f} mm thin inside a fixed image {across:.0f} mm across, so most "
            "fixed samples fall off it")


def thin_moving_hint(fixed: sitk.Image, moving: sitk.Image) -> str | None:
    """The advice for a run that lost its samples (:func:`thin_moving`), else None."""
    why = thin_moving(fixed, moving)
    return why and (f"{why}: register the other way round (the slab as --fixed, the other image as --moving) and "
                    "write --output-inverse for this direction")  # fmt: skip
