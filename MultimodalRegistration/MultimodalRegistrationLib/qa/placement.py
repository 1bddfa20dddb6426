"""Inputs QA can measure nothing on, said in plain words: images the transform does not bring together, and
segments that lie outside their own image (LPS mm).

Both used to pass silently: a moving image 1000 mm away printed "MI - -> -" and exit 0, and a labelmap saved 500 mm
from its image read Dice 0.000 before and after without a word (a helper's sweep)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.images import inside_fraction
from ..core.metric import overlap_fraction
from ..core.transforms import Transform
from ..registration.guided.views import mask_points
from .images import ImageAgreement
from .worse import WRONG_WAY, WRONG_WAY_RATIO

SAMPLED_VOXELS = 2000  # of a labelmap's segments, enough to say whether any lies inside the image


def no_overlap_warning(after: ImageAgreement) -> list[str]:
    """A warning when the transform brings too little of the fixed image into the moving one for its mutual
    information (under the metric's 100 samples: a reviewer's 0.03% overlap printed "MI - -> -" without one)."""
    if after.mutual_information is not None:
        return []
    if after.overlap_fraction >= 0.5:  # it does overlap: too few voxels to measure on, not too little overlap
        return [(f"the fixed image (or its mask) holds too few voxels on the measuring grid ({after.voxels} at "
                 f"{after.grid_text}) for the images to be compared: check its spacing (a unit mix-up, "
                 "micrometres as mm?) or give a larger mask")]  # fmt: skip
    return [(f"hardly any of the fixed image (or its mask) maps inside the moving image under this transform (overlap "
             f"{after.overlap_fraction:.2%}), so the "
            "images cannot be compared: check that the transform belongs to these two images and is given fixed "
            "-> moving, or register them first (they may lie apart in physical space: --init geometry, or "
            "landmarks)")]  # fmt: skip


SLIVER = 0.1  # of the fixed image: mutual information over less is inflated, no judge of a pose


def sliver_warning(fixed: sitk.Image, moving: sitk.Image, transform: Transform, after: ImageAgreement) -> list[str]:
    """A warning when a linear ``transform`` maps under SLIVER of the fixed image (or its mask) into the moving image
    while, read moving -> fixed, it maps WRONG_WAY_RATIO times more and at least a fifth: the wrong way round. Over a
    sliver mutual information is inflated (a helper's real spinal cords: swapped landmark lists' result 68 mm off read
    0.924 nats over 1.2%, against 0.16 right, and QA said nothing). A slab against a whole head covers little either
    way, and is not named."""
    if after.mutual_information is None or after.overlap_fraction >= SLIVER or not transform.is_linear:
        return []
    other_way = overlap_fraction(fixed, moving, transform.inverse())
    if other_way < max(WRONG_WAY_RATIO * overlap_fraction(fixed, moving, transform), 0.2):
        return []
    return [f"{WRONG_WAY}: only {after.overlap_fraction:.1%} of the fixed image maps into the moving image, so its "
            f"mutual information ({after.mutual_information:.3f} nats) rests on a sliver; read the other way (moving "
            f"-> fixed) {other_way:.0%} does. QA takes the transform that maps fixed points to moving points"]  # fmt: skip


def labels_outside_warning(labels: sitk.Image, image: sitk.Image, role: str) -> list[str]:
    """A warning when none of ``labels``' segment voxels lies inside ``image``'s box (``role``: fixed, moving)."""
    if labels.GetNumberOfComponentsPerPixel() > 1:  # layered segments: one component a layer
        flat = sitk.GetImageFromArray(sitk.GetArrayViewFromImage(labels).any(axis=-1).astype(np.uint8))
        flat.CopyInformation(labels)
        labels = flat
    points = mask_points(labels, SAMPLED_VOXELS)  # none: no segment, nothing to say
    if len(points) == 0 or inside_fraction(points, image) > 0.0:
        return []
    return [(f"the {role} segments lie outside the {role} image (none of their voxels falls inside its box), so their "
            "overlap reads 0: the labelmap was saved with another image's geometry or in another space; export it "
            f"again on the {role} image")]  # fmt: skip
