"""A nonlinear start for elastix: the moving image resampled through it, the start applied after the stages.

Handed to elastix as an external initial transform, a nonlinear start (a thin-plate landmark fit, a
deformable result) made its rigid stage stall: from 20 degrees off with a 3 mm bulge, 2 of 4 seeds
ended 8-11 mm from the truth. Registering the fixed image to the moving image resampled through the
start, then applying the start after the stages (as ANTs does with its initial moving transform),
ended 0.6 mm off with every seed (test_engines.py).

A moving mask goes the same way, but elastix gets it as part of the fixed mask: as a moving mask on the
resampled image it stalled the stages again (6 of 7 seeds 6.9-10.4 mm off; 0.57-0.60 mm as a fixed mask).

The resampled image has the fixed image's grid and size: moving detail finer than the fixed spacing is
not seen by the stages (no anti-aliasing is applied), and a large fixed grid makes a large image.
Guided runs keep the external initial transform: their moving channels and points are not resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from ..core.transforms import Transform, resample


@dataclass(frozen=True)
class WarpedStart:
    """``moving`` resampled through ``start`` (fixed -> moving, LPS mm) onto the fixed grid, as float; where the
    start leads outside the moving image, the moving image's minimum (its background). ``fixed_mask``: the fixed
    mask and the moving mask seen through the start, together (None if neither was given)."""

    start: Transform
    moving: sitk.Image
    fixed_mask: sitk.Image | None

    def after(self, transform: Transform) -> Transform:
        """The fixed -> moving transform of a result ``transform`` found against the resampled image."""
        return Transform.chain([self.start, transform])


def warp_through(
    start: Transform, fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None,
) -> WarpedStart:  # fmt: skip
    """The moving image seen through ``start`` on ``fixed``'s grid, and the masks to register it with.

    No mask is made for the region the start leaves outside the moving image: with one, the stages stalled
    again (4 seeds from the case above: 3.9-9.0 mm).
    """
    warped = resample(sitk.Cast(moving, sitk.sitkFloat32), fixed, start)  # float: no truncation of integer pixels
    if moving_mask is not None:
        seen = resample(sitk.Cast(moving_mask > 0, sitk.sitkUInt8), fixed, start, sitk.sitkNearestNeighbor, 0.0)
        fixed_mask = seen if fixed_mask is None else sitk.And(sitk.Cast(fixed_mask > 0, sitk.sitkUInt8), seen)
    return WarpedStart(start=start, moving=warped, fixed_mask=fixed_mask)
