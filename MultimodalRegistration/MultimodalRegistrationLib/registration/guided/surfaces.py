"""A segment's surface as points and a distance map, for scoring poses by how far surfaces lie apart (LPS mm).

Where an image's field of view cuts a segment (an ultrasound fan, the image box), the segment stops because
the image does, not because the organ does: surface points within ``FOV_MARGIN_MM`` of the edge of the data
are left out. Residuals are correlated along a surface, so their noise is measured by a block bootstrap
that draws whole ``PATCH_MM`` patches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import map_coordinates

from ...core.images import index_to_physical_matrix
from ...core.views import FOV_MARGIN_MM

PATCH_MM = 10.0  # bootstrap block: about the correlation length of segmentation boundary errors
CLAMP_MM = 20.0  # a residual counts at most this much, so that a few far points cannot dominate


class Volume:
    """A scalar image interpolated linearly at LPS points (mm); ``outside`` beyond its grid."""

    def __init__(self, image: sitk.Image, outside: float = np.nan):
        self.array = sitk.GetArrayFromImage(image).astype(np.float32)
        self.to_index = np.linalg.inv(index_to_physical_matrix(image))
        self.outside = outside

    def __call__(self, points: np.ndarray) -> np.ndarray:
        index = points @ self.to_index[:3, :3].T + self.to_index[:3, 3]
        return map_coordinates(self.array, index[:, ::-1].T, order=1, mode="constant", cval=self.outside)


def apply(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) through a 4x4 pose."""
    return points @ pose[:3, :3].T + pose[:3, 3]


def patches(points: np.ndarray, size_mm: float = PATCH_MM) -> np.ndarray:
    """A patch id per point: the ``size_mm`` cube (on a fixed lattice) it falls in."""
    cells = np.floor(points / size_mm).astype(np.int64)
    _, ids = np.unique(cells, axis=0, return_inverse=True)
    return ids.ravel()


@dataclass
class Surface:
    """The kept surface points of one segment (LPS mm) and its signed distance map (mm, positive outside)."""

    points: np.ndarray
    distance: Volume
    cut_fraction: float  # share of the surface the field of view cut

    @classmethod
    def of(cls, mask: sitk.Image, edge: sitk.Image) -> Surface:
        """``edge``: the :func:`..core.views.edge_distance` of the field of view of the mask's image."""
        mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
        # GetArrayFromImage copies: a view of a temporary image would read freed memory (seen: starts that
        # differed between runs of the same pair)
        contour = sitk.GetArrayFromImage(sitk.BinaryContour(mask, fullyConnected=False)) != 0
        near_edge = sitk.GetArrayViewFromImage(edge) < FOV_MARGIN_MM
        keep = contour & ~near_edge
        if not keep.any():  # the whole segment lies on the edge: keep its surface rather than nothing
            keep = contour
        matrix = index_to_physical_matrix(mask)
        points = np.argwhere(keep)[:, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]
        distance = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
        return cls(points, Volume(distance), float(1.0 - keep.sum() / max(int(contour.sum()), 1)))

    def residuals(self, points: np.ndarray) -> np.ndarray:
        """|distance| (mm) of points to this surface, clamped at CLAMP_MM (CLAMP_MM outside the grid)."""
        value = np.abs(self.distance(points))
        return np.where(np.isnan(value), CLAMP_MM, np.minimum(value, CLAMP_MM))


def block_bootstrap(values: np.ndarray, patch: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Bootstrap replicates (count, P) of the means of P residual rows (P, N) that share N points and their
    patches: whole patches are drawn with replacement, so correlated neighbours move together."""
    unique, inverse = np.unique(patch, return_inverse=True)
    sums = np.stack([np.bincount(inverse, weights=row, minlength=len(unique)) for row in values], axis=1)
    counts = np.bincount(inverse, minlength=len(unique)).astype(float)
    draws = rng.integers(0, len(unique), (count, len(unique)))
    weights = np.stack([np.bincount(row, minlength=len(unique)) for row in draws]).astype(float)
    return (weights @ sums) / np.maximum(weights @ counts, 1e-12)[:, None]
