"""A hint for a failed or doubted run whose one image's tissue is drawn out along its slice axis: the usual cause is a
slice spacing written too large (3 or 10 mm for 1 mm), which no pose can fit and no warning named.

Each image's tissue (Otsu foreground at about 4 mm, or a SHAPE_CELLS-th of a smaller image's longest side: at 4 mm a
mouse brain is 2-3 cells across, and its right 0.02 x 0.02 x 0.05 mm stack was hinted, a reviewer) is measured along
the image's own axes, between the 1st and 99th percentiles of its voxels; its elongation is its longest extent over
its middle one. The hint is given when one
image's elongation is ELONGATION_RATIO times the other's and its longest axis is its coarsest one, at least
COARSE_RATIO times its finest spacing: a stated slice step that stretches the tissue.

Measured (a helper's sweep of wrong headers, forty-fourth session, and this project's generators): a light-sheet brain
with its z spacing x3 and x10, and with x and z swapped (rigid, similarity and affine runs 86-239 mm off, warned, or
elastix's "Too many samples map outside moving image buffer"), against a head MR: elongations 2.41, 8.0 and 2.28
against the head's 1.17. Whole brains 1.18-1.24, half and 30% hemisphere stacks up to 1.99 (isotropic voxels, so
never hinted), hard TRUS-like pairs 1.0-1.1, an intraoperative ultrasound 1.15, the SCT spinal cord 1.0 and 1.3,
the Visible Human CT slab 1.35 and MR 1.3. Sizes in mm.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.errors import EngineError
from ...core.images import physical_extent_mm
from ...core.metric import shrink_to_spacing
from ...engines.run import lost_overlap
from ..pose.centres import foreground_mask
from ..pose.mirror import axis_name
from .shape_change import SHAPE_CHANGE
from .thin_moving import WAYS_DISAGREE
from .weak_result import WEAK_RESULT

SHAPE_SPACING_MM = 4.0
SHAPE_CELLS = 40  # at least this many cells along the image's longest side
ELONGATION_RATIO = 1.6  # one tissue this many times longer for its width than the other
COARSE_RATIO = 1.5  # the stretched axis's spacing over the image's finest
PERCENTILES = (1.0, 99.0)  # of the tissue voxels along each axis: specks of noise do not lengthen it
DOUBTS = (WEAK_RESULT, WAYS_DISAGREE, SHAPE_CHANGE)  # the warnings of a result that the hint follows


def tissue_extents_mm(image: sitk.Image) -> np.ndarray | None:
    """The tissue's extent (mm) along each of ``image``'s own axes (see the module notes); None without tissue."""
    spacing = min(SHAPE_SPACING_MM, float(physical_extent_mm(image).max()) / SHAPE_CELLS)
    coarse = shrink_to_spacing(image, spacing)  # before any copy: the full image is not converted
    if coarse.GetNumberOfComponentsPerPixel() > 1:  # a colour image: its tissue where any channel is bright
        coarse = sitk.VectorMagnitude(coarse)
    coarse = sitk.Cast(coarse, sitk.sitkFloat32)
    inside = np.nonzero(sitk.GetArrayFromImage(foreground_mask(coarse)))[::-1]  # x, y, z index arrays
    if inside[0].size == 0:
        return None
    low, high = np.percentile(np.stack(inside), PERCENTILES, axis=1)
    return (high - low + 1) * np.asarray(coarse.GetSpacing())


def elongation(extents: np.ndarray) -> float:
    """The longest extent over the middle one."""
    ordered = np.sort(extents)
    return float(ordered[-1] / max(ordered[-2], 1e-9))


def stretched_slice_hint(fixed: sitk.Image, moving: sitk.Image) -> str | None:
    """The hint when one image's tissue is drawn out along its coarsest axis (see the module notes), else None."""
    extents = {"fixed": tissue_extents_mm(fixed), "moving": tissue_extents_mm(moving)}
    if any(value is None for value in extents.values()):
        return None
    shapes = {role: elongation(value) for role, value in extents.items()}
    for role, other, image in (("fixed", "moving", fixed), ("moving", "fixed", moving)):
        spacing = np.asarray(image.GetSpacing()[:3], float)
        axis = int(np.argmax(extents[role]))
        if shapes[role] < ELONGATION_RATIO * shapes[other] or spacing[axis] < max(
            COARSE_RATIO * spacing.min(), spacing.max()
        ):
            continue
        sides = " x ".join(f"{side:.0f}" for side in extents[role])
        return (
            f"the {role} tissue measures {sides} mm along its image axes, {shapes[role]:.1f} times longer than wide "
            f"against the {other} tissue's {shapes[other]:.1f}, and is longest along its coarsest axis (axis {axis}, "
            f"{axis_name(image, axis)}, {spacing[axis]:g} mm against {spacing.min():g} mm): if that spacing is "
            f"wrong in the header (a slice step written too large), set the right one with --spacing-{role} "
            "sx,sy,sz (mmreg register or prep) and run again; a field of view that really is longer (a whole body "
            "against a head) looks the same"
        )
    return None


def hint_if_doubted(warnings: list[str], fixed: sitk.Image, moving: sitk.Image) -> None:
    """Add the hint (:func:`stretched_slice_hint`) to a result's ``warnings`` when one of them doubts the result."""
    if any(warning.startswith(DOUBTS) for warning in warnings):
        hint = stretched_slice_hint(fixed, moving)
        warnings += [hint] if hint else []


def hint_if_lost(error: EngineError, fixed: sitk.Image, moving: sitk.Image) -> None:
    """Add the hint to ``error``'s advice when the engine lost the images' overlap."""
    if lost_overlap(str(error)):
        hint = stretched_slice_hint(fixed, moving)
        error.hint = "; or ".join(part for part in (error.hint, hint) if part)
