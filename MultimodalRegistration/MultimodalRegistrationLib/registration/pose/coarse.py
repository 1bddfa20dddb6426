"""An image shrunk to a few mm for the any-pose search: its foreground, the user's mask, the
foreground points, and where the field of view cuts the anatomy short."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ...core.extents import principal_extents
from ...core.metric import shrink_centred, shrink_to_spacing
from .centres import foreground_mask
from .scorer import PoseScorer

# A face of the image holding this fraction of the largest cross-section cuts the anatomy.
CUT_FRACTION = 0.2


@dataclass
class CoarseImage:
    """An image shrunk to a few mm: its foreground and the user's mask on that grid (z, y, x
    booleans; the mask None if not given) and the foreground points (LPS mm)."""

    image: sitk.Image
    foreground: np.ndarray
    mask: np.ndarray | None
    points: np.ndarray

    @classmethod
    def of(cls, image: sitk.Image, spacing_mm: float, mask: sitk.Image | None, centred: bool = False) -> CoarseImage:
        """``image`` at about ``spacing_mm`` voxels, its foreground within ``mask`` if given; ``centred``: on blocks
        centred on the image, whatever its storage order (:func:`.shrink_centred`)."""
        small = sitk.Cast((shrink_centred if centred else shrink_to_spacing)(image, spacing_mm), sitk.sitkFloat32)
        foreground = sitk.GetArrayFromImage(foreground_mask(small)).astype(bool)
        if mask is not None:
            mask = sitk.Resample(mask, small, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
            mask = sitk.GetArrayFromImage(mask) > 0
            foreground &= mask
        if foreground.sum() < 10:
            foreground = np.ones(foreground.shape, bool) if mask is None or mask.sum() < 10 else mask
        index = np.argwhere(foreground)[:, ::-1].astype(float)
        to_physical = np.asarray(small.GetDirection()).reshape(3, 3) * np.asarray(small.GetSpacing())
        return cls(small, foreground, mask, index @ to_physical.T + np.asarray(small.GetOrigin()))

    def scorer(self, moving: CoarseImage, fixed_region: np.ndarray | None, **options) -> PoseScorer:
        """A pose scorer with this as the fixed image, sampling ``fixed_region`` (all if None);
        the users' masks restrict the samples and the moving values."""
        region = fixed_region
        if self.mask is not None:
            region = self.mask if region is None else region & self.mask
        return PoseScorer(self, moving, fixed_region=region, **options)

    def dilated(self, voxels: int) -> np.ndarray:
        mask = sitk.GetImageFromArray(self.foreground.astype(np.uint8))
        return sitk.GetArrayFromImage(sitk.BinaryDilate(mask, [voxels] * 3)).astype(bool)

    def thickness(self) -> float:
        """The foreground's extent (mm) across its thinnest direction (a slab L thick: variance L^2 / 12)."""
        return float(principal_extents(np.cov(self.points.T))[1][-1])

    def cut_axes(self) -> list[int]:
        """Image axes (0, 1, 2) along which the field of view cuts the foreground short."""
        axes = []
        for axis in range(3):
            array_axis = 2 - axis
            other = tuple(a for a in range(3) if a != array_axis)
            section = self.foreground.sum(axis=other)
            if max(section[0], section[-1]) > CUT_FRACTION * section.max():
                axes.append(axis)
        return axes
