"""A rigid result between two images, one of which states a wrong spacing along one axis (slice thickness given for
the slice step, a gap left out): no rotation and shift fits, and the engine ends somewhere in between.

From the result, the moving image is stretched along each of its own axes by AXIS_STRETCHES and searched again as
:func:`.uneven_size.best_stretch` does; a stretch that fits clearly better, and that the images confirm, is warned
with the spacing it implies. The search runs only when the two images' tissue, laid over each other by the result,
differs in shape along a moving axis by more than GATE_RATIO (:func:`shapes_differ`): it costs 2-3 s.

Measured (a reviewer's walkthrough, 2026-12-02: the MNI T1 against a T2-like rendering of it, turned and shifted,
its spacing stated 2 or 3 times too large along z, or 4/3 times along x or z): rigid ended 7.5-26 mm off with exit 0
and no warning, its result 2.7-16 times its decoys' information (the probably-wrong check passes it). This search
found the stated factor on all four (2, 3, 1.33, 1.33) and nothing on right rigid results (that pair, the CT/MR
phantom, the Visible Human CT slab against its MR, the SCT cord pair). Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.extents import extents_along
from ...core.transforms import Transform
from ..pose.coarse import CoarseImage
from ..pose.mirror import axis_name
from .size_check import search_spacing_mm
from .uneven_size import best_stretch

AXIS_STRETCHES = (1 / 3, 0.5, 0.75, 4 / 3, 2.0, 3.0)  # moving sizes along one axis against the other two
GATE_RATIO = 1.15
AXIS_SPACING_WARNING = "a rigid result cannot fit: the moving image matches best stretched"  # how the warning starts


def shapes_differ(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
) -> bool:  # fmt: skip
    """Whether the fixed tissue, mapped by ``transform``, and the moving tissue differ in extent along a moving image
    axis, against the other two, by more than GATE_RATIO (extents from each tissue's covariance, mm)."""
    spacing = search_spacing_mm(fixed)
    fixed_points = CoarseImage.of(fixed, spacing, fixed_mask).points
    moving_points = CoarseImage.of(moving, spacing, moving_mask).points
    linear = np.asarray(transform.matrix, float)[:3, :3]
    directions = np.asarray(moving.GetDirection()).reshape(3, 3)  # columns: the moving image's axes (LPS)
    mapped = extents_along(linear @ np.cov(fixed_points.T) @ linear.T, directions)
    own = extents_along(np.cov(moving_points.T), directions)
    ratios = np.log(np.clip(own, 1e-6, None) / np.clip(mapped, 1e-6, None))
    return bool(np.abs(ratios - ratios.mean()).max() > np.log(GATE_RATIO))


def axis_spacing_warning(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
) -> str | None:  # fmt: skip
    """The warning on a rigid ``transform`` that fits clearly better with the moving image stretched along one of its
    axes (a spacing stated wrong), or None (see the module notes)."""
    if not transform.is_linear or not shapes_differ(fixed, moving, transform, fixed_mask, moving_mask):
        return None
    found = best_stretch(fixed, moving, transform, fixed_mask, moving_mask, AXIS_STRETCHES)
    if found is None:
        return None
    stated = moving.GetSpacing()[found.axis]
    return (
        f"{AXIS_SPACING_WARNING} {found.factor:.2f} times along its {axis_name(moving, found.axis)} axis (image axis "
        f"{found.axis}) against the other two (a search from the result: score {found.before:.2f} -> "
        f"{found.after:.2f}), so the result is likely off: a spacing is probably wrong. If it is the moving image's "
        f"along axis {found.axis}, it is about {stated / found.factor:.3g} mm (the header says {stated:g}); or the "
        "fixed image's along the matching axis. Check both headers and give the right spacing in mm (--spacing-moving "
        "/ --spacing-fixed; mmreg prep sets it without resampling)"
    )
