"""Mutual information of many candidate poses at once, on coarse images, with numpy alone.

A global pose search scores thousands of rigid poses; calling an ITK metric per pose costs more
than the metric itself. Here every pose is one 4x4 matrix, and a batch of poses is scored with
a handful of vectorised numpy operations: fixed sample points are mapped into the moving image,
looked up (nearest voxel of a 2x finer copy), and binned into a joint histogram per pose.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import SimpleITK as sitk

from ...core.images import index_to_physical_matrix
from ...core.metric import pointwise_information

# Mutual information needs the joint histogram to be filled: more bins than this per axis and
# a few thousand samples leave most cells empty.
DEFAULT_BINS = 16


def rank_bins(values: np.ndarray, foreground: np.ndarray, bins: int) -> np.ndarray:
    """Map intensities to continuous bin coordinates 0..bins-1 by the ranks of the foreground values.

    The foreground spreads evenly over bins 1..bins-1, whatever the modality's scale; values
    darker than all of it (the background) fall between bins 0 and 1.
    """
    reference = values[foreground] if foreground.any() else values.ravel()
    levels = np.percentile(reference, np.linspace(0.0, 100.0, bins - 1))
    levels = np.concatenate([[min(values.min(), levels[0]) - 1e-6], levels])
    spread = float(levels[-1] - levels[0]) or 1.0
    levels = np.maximum.accumulate(levels + np.arange(bins) * 1e-9 * spread)
    return np.interp(values, levels, np.arange(bins, dtype=np.float64)).astype(np.float32)


class _FineLookup:
    """Values of a coarse image at arbitrary points: the nearest voxel of a twice finer copy
    (linearly interpolated once). One gather per point, off by at most a quarter of a coarse
    voxel: cheaper than trilinear interpolation in numpy, and smooth enough. Points outside
    the image get 0."""

    def __init__(self, image: sitk.Image):
        fine = sitk.Image([2 * s for s in image.GetSize()], sitk.sitkFloat32)
        fine.SetSpacing([s / 2 for s in image.GetSpacing()])
        fine.SetDirection(image.GetDirection())
        fine.SetOrigin(image.TransformContinuousIndexToPhysicalPoint([-0.25, -0.25, -0.25]))
        fine = sitk.Resample(image, fine, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        self.size = np.array(fine.GetSize(), np.uint32)
        self.values = np.append(sitk.GetArrayViewFromImage(fine).ravel(), np.float32(0.0))
        self.to_index = np.linalg.inv(index_to_physical_matrix(fine))

    def flat(self, index: np.ndarray) -> np.ndarray:
        """Positions in ``values`` of the voxels nearest to continuous fine-grid indices (..., 3, N) (x, y, z
        along the second-last axis); points outside the image get the last position (value 0)."""
        index = np.rint(index).astype(np.int32)
        unsigned = index.view(np.uint32)  # negative indices become huge: one comparison per axis
        inside = (unsigned[..., 0, :] < self.size[0]) & (unsigned[..., 1, :] < self.size[1])
        inside &= unsigned[..., 2, :] < self.size[2]
        flat = index[..., 0, :] + int(self.size[0]) * (index[..., 1, :] + int(self.size[1]) * index[..., 2, :])
        flat[~inside] = len(self.values) - 1
        return flat

    def __call__(self, index: np.ndarray) -> np.ndarray:
        """Values at continuous fine-grid indices (..., 3, N) (x, y, z along the second-last axis)."""
        return np.take(self.values, self.flat(index))  # take: about twice as fast as fancy indexing here


class CoarseGrid(Protocol):
    """What the scorer reads of a coarse image (:class:`.coarse.CoarseImage`): the image, its foreground
    and the user's mask on its grid (z, y, x booleans; None if not given)."""

    image: sitk.Image
    foreground: np.ndarray
    mask: np.ndarray | None


class PoseScorer:
    """Mutual information (nats) of fixed -> moving poses given as (K, 4, 4) LPS matrices, from a
    joint histogram of rank bins (each moving value split linearly between its two nearest bins).

    ``fixed`` and ``moving`` are coarse images (a few mm voxels, :class:`.coarse.CoarseImage`); their
    foreground masks (numpy, z-y-x) set the intensity bins. Samples are fixed voxels (inside ``fixed_region``
    if given), background included, so
    that the head's outline counts, each moved by a random fraction of a voxel: on a regular
    grid, poses that line the two grids up would score higher for that alone, which would
    favour a mirror image of a symmetric head over the truth. Moving samples outside the
    moving image (or outside the moving image's mask) count as background, so that poses pushing the
    anatomy out score low.
    """

    def __init__(
        self,
        fixed: CoarseGrid,
        moving: CoarseGrid,
        fixed_region: np.ndarray | None = None,
        samples: int = 3000,
        bins: int = DEFAULT_BINS,
        seed: int = 0,
    ):
        fixed_foreground, moving_foreground, moving_region = fixed.foreground, moving.foreground, moving.mask
        fixed, moving = fixed.image, moving.image
        self.bins = bins
        rng = np.random.default_rng(seed)
        fixed_bins = sitk.GetImageFromArray(rank_bins(sitk.GetArrayViewFromImage(fixed), fixed_foreground, bins))
        fixed_bins.CopyInformation(fixed)
        region = np.ones(fixed_foreground.shape, bool) if fixed_region is None else fixed_region
        index = np.argwhere(region)[:, ::-1].astype(float)  # x, y, z
        if len(index) > samples:
            index = index[rng.choice(len(index), samples, replace=False)]
        index += rng.uniform(-0.5, 0.5, index.shape)
        to_physical = index_to_physical_matrix(fixed)
        self.points = (index @ to_physical[:3, :3].T + to_physical[:3, 3]).astype(np.float32)
        fixed_lookup = _FineLookup(fixed_bins)
        fine_index = fixed_lookup.to_index[:3, :3] @ self.points.T + fixed_lookup.to_index[:3, 3:]
        self.fixed_bins = np.clip(np.rint(fixed_lookup(fine_index)), 0, bins - 1).astype(np.int32)

        moving_values = rank_bins(sitk.GetArrayViewFromImage(moving), moving_foreground, bins)
        if moving_region is not None:
            moving_values[~moving_region] = 0.0
        moving_bins = sitk.GetImageFromArray(moving_values)
        moving_bins.CopyInformation(moving)
        self.moving = _FineLookup(moving_bins)
        self.evaluations = 0

    def __call__(self, matrices: np.ndarray, chunk: int = 64) -> np.ndarray:
        matrices = np.asarray(matrices, float).reshape(-1, 4, 4)
        self.evaluations += len(matrices)
        if len(matrices) == 0:
            return np.zeros(0)
        return np.concatenate([self._score(matrices[i : i + chunk]) for i in range(0, len(matrices), chunk)])

    def _score(self, matrices: np.ndarray) -> np.ndarray:
        bins = self.bins
        to_index = (self.moving.to_index @ matrices).astype(np.float32)
        # (K, 3, N): each index axis contiguous, so that the bounds checks are cheap.
        moving = self.moving(np.matmul(to_index[:, :3, :3], self.points.T[None]) + to_index[:, :3, 3:])
        return pointwise_information(joint_histograms(self.fixed_bins, moving, bins) / self.fixed_bins.size)[1]


def joint_histograms(fixed_bins: np.ndarray, moving: np.ndarray, bins: int, valid: np.ndarray | None = None):
    """One joint histogram per pose (shape (K, bins, bins), counts): ``fixed_bins`` (N,) are the samples' fixed
    bins, ``moving`` (K, N) their moving values in bin units, each split linearly between its two nearest bins;
    ``valid`` (K, N) leaves samples out."""
    count = len(moving)
    low = np.minimum(moving.astype(np.int32), bins - 2)
    weight = moving - low
    keep = 1.0 - weight
    if valid is not None:
        weight, keep = weight * valid, keep * valid
    cell = ((np.arange(count, dtype=np.int32)[:, None] * bins + fixed_bins[None]) * bins + low).ravel()
    histogram = np.bincount(cell, keep.ravel(), count * bins * bins)
    histogram += np.bincount(cell + 1, weight.ravel(), count * bins * bins)
    return histogram.reshape(count, bins, bins)
