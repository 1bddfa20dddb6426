"""A nonlinear start for elastix: the moving image resampled through it, the start applied after the stages.

Handed to elastix as an external initial transform, a nonlinear start (a thin-plate landmark fit, a
deformable result) made its rigid stage stall: from 20 degrees off with a 3 mm bulge, 2 of 4 seeds
ended 8-11 mm from the truth. Registering the fixed image to the moving image resampled through the
start, then applying the start after the stages (as ANTs does with its initial moving transform),
ended 0.6 mm off with every seed (test_engines.py). The resampled image has the fixed image's grid:
moving detail finer than the fixed spacing is not seen by the stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from ..core.transforms import Transform, resample


@dataclass(frozen=True)
class WarpedStart:
    """``moving`` (and ``moving_mask``, if any) resampled through ``start`` (fixed -> moving, LPS mm) onto the
    fixed grid; where the start leads outside the moving image, the moving image's minimum (its background)."""

    start: Transform
    moving: sitk.Image
    moving_mask: sitk.Image | None

    def after(self, transform: Transform) -> Transform:
        """The fixed -> moving transform of a result ``transform`` found against the resampled image."""
        return Transform.chain([self.start, transform])


def warp_through(start: Transform, fixed: sitk.Image, moving: sitk.Image, moving_mask: sitk.Image | None) -> WarpedStart:
    """The moving image and its mask seen through ``start`` on ``fixed``'s grid.

    No mask is made for the region the start leaves outside the moving image: with one, the stages stalled
    again (4 seeds from the case above: 3.9-9.0 mm).
    """
    warped_mask = None
    if moving_mask is not None:
        warped_mask = resample(sitk.Cast(moving_mask > 0, sitk.sitkUInt8), fixed, start, sitk.sitkNearestNeighbor, 0.0)
    return WarpedStart(start=start, moving=resample(moving, fixed, start), moving_mask=warped_mask)
