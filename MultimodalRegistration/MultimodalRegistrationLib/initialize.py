"""Where a registration starts: the user's initial transform and centre alignment."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .images import physical_center
from .metrics import shrink_to_spacing
from .transforms import Transform

INIT_METHODS = ("auto", "geometry", "moments", "none")


def foreground_center(image: sitk.Image) -> np.ndarray:
    """Centre (LPS mm) of the image's foreground, found by Otsu thresholding at ~4 mm."""
    small = sitk.Cast(shrink_to_spacing(image, 4.0), sitk.sitkFloat32)
    foreground = sitk.OtsuThreshold(small, 0, 1, 128)
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(foreground)
    if not statistics.HasLabel(1):
        return physical_center(image)
    return np.asarray(statistics.GetCentroid(1))


def initial_alignment(
    fixed: sitk.Image,
    moving: sitk.Image,
    initial_transform: Transform | None = None,
    method: str = "auto",
) -> Transform:
    """The fixed -> moving transform a registration starts from (LPS mm).

    ``auto`` keeps a given initial transform as it is and otherwise aligns the image centres;
    ``geometry`` aligns the centres of the image boxes, ``moments`` the centres of the foreground,
    and ``none`` starts from the initial transform (or identity). Centre alignment is applied on
    top of the initial transform, as a translation in fixed space.
    """
    if method not in INIT_METHODS:
        raise InputError(f"unknown initialisation '{method}': choose one of {', '.join(INIT_METHODS)}")
    start = initial_transform if initial_transform is not None else Transform.identity()
    if method == "none" or (method == "auto" and initial_transform is not None):
        return start
    if method == "moments":
        fixed_center, moving_center = foreground_center(fixed), foreground_center(moving)
    else:
        fixed_center, moving_center = physical_center(fixed), physical_center(moving)
    target = start.inverse().transform_points([moving_center])[0]
    shift = np.eye(4)
    shift[:3, 3] = target - fixed_center
    return start @ Transform.from_matrix(shift)
