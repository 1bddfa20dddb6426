"""Centre alignment: the image boxes' centres (geometry) or their foregrounds' centres (moments).

Every transform maps fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.errors import InputError
from ...core.images import physical_center
from ...core.metric import shrink_to_spacing
from ...core.transforms import Transform

CENTRE_METHODS = ("geometry", "moments", "none")


def foreground_mask(image: sitk.Image) -> sitk.Image:
    """The image's foreground (uint8 0/1 on its grid): voxels above an Otsu threshold."""
    return sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1, 128)


def foreground_center(image: sitk.Image) -> np.ndarray:
    """Centre (LPS mm) of the image's foreground, found by Otsu thresholding at ~4 mm."""
    foreground = foreground_mask(shrink_to_spacing(image, 4.0))
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(foreground)
    if not statistics.HasLabel(1):
        return physical_center(image)
    return np.asarray(statistics.GetCentroid(1))


def centre_alignment(
    fixed: sitk.Image, moving: sitk.Image, initial_transform: Transform | None, method: str
) -> Transform:
    """``initial_transform`` (default identity) with the centres aligned on top, as a translation in fixed space.

    ``geometry``: the image boxes' centres; ``moments``: the foregrounds' centres; ``none``: no shift.
    """
    if method not in CENTRE_METHODS:
        raise InputError(f"unknown centre alignment '{method}': choose one of {', '.join(CENTRE_METHODS)}")
    start = initial_transform if initial_transform is not None else Transform.identity()
    if method == "none":
        return start
    if method == "moments":
        fixed_center, moving_center = foreground_center(fixed), foreground_center(moving)
    else:
        fixed_center, moving_center = physical_center(fixed), physical_center(moving)
    target = start.inverse().transform_points([moving_center])[0]
    shift = np.eye(4)
    shift[:3, 3] = target - fixed_center
    return start @ Transform.from_matrix(shift)

