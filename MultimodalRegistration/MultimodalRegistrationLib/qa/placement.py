"""Inputs QA can measure nothing on, said in plain words: images the transform does not bring together, and
segments that lie outside their own image (LPS mm).

Both used to pass silently: a moving image 1000 mm away printed "MI - -> -" and exit 0, and a labelmap saved 500 mm
from its image read Dice 0.000 before and after without a word (a helper's sweep)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.images import inside_fraction
from ..registration.guided.views import mask_points
from .images import ImageAgreement

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
