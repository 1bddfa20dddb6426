"""Mutual information of a pose with each sample's share of it, so that its noise can be bootstrapped.

Fixed samples (LPS mm) are drawn once from a region of the fixed grid; a pose (4x4, fixed -> moving) maps them
into the moving image. The joint histogram has ``BINS`` x ``BINS`` bins with linear binning of the moving
value; a sample's pointwise MI is log p(f, m) / (p(f) p(m)) at its bins, and their mean is the MI (nats).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.images import index_to_physical_matrix
from .surfaces import Volume, apply, patches

BINS = 32
# About every voxel of a gland-sized region (a 40 mm gland and 10 mm around it at 1.5 mm, the start's region until
# the 33rd session; now the gland's inside); 6000 samples left
# the candidates' mutual information noisy enough to pick a wrong rotation (hard TRUS cohort, 96 pairs:
# median target error of the start 4.1-4.9 mm with 6000, 3.9-4.5 mm with 50000, in about the same time).
SAMPLES = 50000


class PointwiseMI:
    """The mutual information (nats) of fixed samples in ``region`` and the moving image, per sample. Not
    ``informative`` with BINS samples or fewer (none: a region outside the fixed image's data), nor built further."""

    def __init__(self, fixed: sitk.Image, moving: sitk.Image, region: sitk.Image, seed: int, count: int = SAMPLES):
        rng = np.random.default_rng(seed)
        voxels = np.argwhere(sitk.GetArrayViewFromImage(region) != 0)
        voxels = voxels[rng.choice(len(voxels), min(count, len(voxels)), replace=False)]
        matrix = index_to_physical_matrix(fixed)
        self.points = voxels[:, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]
        self.informative = len(self.points) > BINS
        if not self.informative:
            return
        values = sitk.GetArrayViewFromImage(fixed)[tuple(voxels.T)].astype(float)
        self.fixed_bin = np.round(self._binned(values, *np.percentile(values, [0.5, 99.5]))).astype(int)
        self.moving = Volume(sitk.Cast(moving, sitk.sitkFloat32))
        self.moving_range = np.percentile(sitk.GetArrayViewFromImage(moving), [0.5, 99.5])
        self.patch = patches(self.points)
        self.informative = len(self.points) > BINS and np.ptp(values) > 0 and np.ptp(self.moving_range) > 0

    @staticmethod
    def _binned(values: np.ndarray, low: float, high: float) -> np.ndarray:
        return np.clip((values - low) / max(high - low, 1e-6) * (BINS - 1), 0, BINS - 1)

    def pointwise(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pointwise MI of the samples mapped inside the moving image, which samples those are)."""
        values = self.moving(apply(pose, self.points))
        seen = ~np.isnan(values)
        m = self._binned(values[seen], *self.moving_range)
        f = self.fixed_bin[seen]
        low = np.minimum(np.floor(m).astype(int), BINS - 2)
        frac = m - low
        joint = np.zeros((BINS, BINS))
        np.add.at(joint, (f, low), 1 - frac)
        np.add.at(joint, (f, low + 1), frac)
        joint /= max(joint.sum(), 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log(joint / np.outer(joint.sum(axis=1), joint.sum(axis=0)))
        ratio = np.where(np.isfinite(ratio), ratio, 0.0)
        return (1 - frac) * ratio[f, low] + frac * ratio[f, low + 1], seen
