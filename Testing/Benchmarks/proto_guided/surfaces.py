"""Scores of a pose from the segment surfaces and the intensities, with their noise (issue 22 prototypes).

* :class:`Surface`: a segment's surface points (LPS mm) and its signed distance map, interpolated anywhere.
  Surface points the image's field of view cut (within ``FOV_MARGIN_MM`` of the edge of the data) are
  left out: there the segment stops because the image does, not because the organ does.
* :func:`surface_residuals`: for a pose (fixed -> moving), the absolute distance of each fixed surface point,
  mapped, to the moving surface, and of each moving surface point, mapped back, to the fixed surface
  (symmetric), with the patch each point belongs to.
* :func:`block_bootstrap`: the noise of a mean (or of a paired difference of means) of residuals that are
  correlated along the surface: resample whole patches (``PATCH_MM`` cubes), not points.
* :class:`IntensityScore`: Mattes-like mutual information of fixed and moving intensities over a fixed
  region, from fixed samples, with each sample's influence (pointwise MI minus the mean, as the library's
  mirror check does) for the same bootstrap.

Prototype code; imports the library read-only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import map_coordinates

from MultimodalRegistrationLib.core.images import index_to_physical_matrix

FOV_MARGIN_MM = 3.0  # surface points closer than this to the edge of the data are the FOV's, not the organ's
PATCH_MM = 10.0  # bootstrap block: about the correlation length of segmentation boundary errors
BOOTSTRAP = 400


def fov_mask(image: sitk.Image) -> sitk.Image:
    """Where the image has data: voxels above 0, holes filled and one closing wide (UInt8 0/1).

    TRUS images are 0 outside the fan; an MR has data everywhere (the whole box)."""
    data = sitk.Cast(image > 0, sitk.sitkUInt8)
    data = sitk.BinaryMorphologicalClosing(data, [2, 2, 2])
    return sitk.Cast(sitk.BinaryFillhole(data), sitk.sitkUInt8)


def _edge_distance(fov: sitk.Image) -> sitk.Image:
    """Distance (mm) from inside the field of view to its edge, the image box's faces included."""
    padded = sitk.ConstantPad(fov, [1, 1, 1], [1, 1, 1], 0)
    distance = sitk.SignedMaurerDistanceMap(padded, insideIsPositive=True, squaredDistance=False, useImageSpacing=True)
    return sitk.Crop(distance, [1, 1, 1], [1, 1, 1])


class Volume:
    """A scalar image interpolated (linearly) at LPS points; ``outside`` beyond its grid."""

    def __init__(self, image: sitk.Image, outside: float = np.nan):
        self.array = sitk.GetArrayFromImage(image).astype(np.float32)
        self.to_index = np.linalg.inv(index_to_physical_matrix(image))
        self.outside = outside

    def __call__(self, points: np.ndarray) -> np.ndarray:
        index = points @ self.to_index[:3, :3].T + self.to_index[:3, 3]
        return map_coordinates(self.array, index[:, ::-1].T, order=1, mode="constant", cval=self.outside)


@dataclass
class Surface:
    points: np.ndarray  # (N, 3) LPS mm, the kept surface points
    distance: Volume  # signed distance (mm, positive outside) to the segment's surface, on its image's grid
    inside_fov: Volume  # distance (mm) to the FOV edge, positive inside; -inf outside the grid
    centroid: np.ndarray
    cut_fraction: float  # share of the surface the FOV cut

    @classmethod
    def of(cls, mask: sitk.Image, image: sitk.Image | None = None, step: int = 1) -> "Surface":
        mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
        fov = fov_mask(image) if image is not None else sitk.Cast(mask * 0 + 1, sitk.sitkUInt8)
        edge = _edge_distance(fov)
        contour = sitk.GetArrayViewFromImage(sitk.BinaryContour(mask, fullyConnected=False)) != 0
        near_edge = sitk.GetArrayViewFromImage(edge) < FOV_MARGIN_MM
        matrix = index_to_physical_matrix(mask)
        keep = contour & ~near_edge
        points = np.argwhere(keep)[::step, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]
        voxels = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)[:, ::-1]
        distance = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
        return cls(
            points=points,
            distance=Volume(distance),
            inside_fov=Volume(edge, outside=-np.inf),
            centroid=(voxels @ matrix[:3, :3].T + matrix[:3, 3]).mean(axis=0),
            cut_fraction=float(1.0 - keep.sum() / max(contour.sum(), 1)),
        )


def apply(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ pose[:3, :3].T + pose[:3, 3]


def patches(points: np.ndarray, size_mm: float = PATCH_MM) -> np.ndarray:
    """A patch id per point: the ``size_mm`` cube (on a fixed lattice) it falls in."""
    cells = np.floor(points / size_mm).astype(np.int64)
    _, ids = np.unique(cells, axis=0, return_inverse=True)
    return ids.ravel()


@dataclass
class Residuals:
    values: np.ndarray  # |distance| (mm) per surface point, both directions
    patch: np.ndarray  # patch id per value (fixed-side and moving-side patches numbered apart)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if len(self.values) else np.inf


def surface_residuals(pose: np.ndarray, fixed: Surface, moving: Surface, clamp_mm: float = 20.0) -> Residuals:
    """Symmetric surface residuals of ``pose`` (4x4, fixed -> moving). A point mapped where the other image
    has no data (outside its field of view) says nothing and is left out; one mapped outside the other grid
    counts ``clamp_mm``; every residual is clamped at ``clamp_mm``, so a few far points cannot dominate."""
    inverse = np.linalg.inv(pose)
    forward = apply(pose, fixed.points)
    backward = apply(inverse, moving.points)
    parts, ids = [], []
    for mapped, source, target, offset in ((forward, fixed, moving, 0), (backward, moving, fixed, 1 << 20)):
        seen = target.inside_fov(mapped) > 0.0
        value = np.abs(target.distance(mapped))
        value = np.where(np.isnan(value), clamp_mm, np.minimum(value, clamp_mm))
        parts.append(value[seen])
        ids.append(patches(source.points)[seen] + offset)
    return Residuals(np.concatenate(parts), np.concatenate(ids))


def block_bootstrap(values: list[np.ndarray], patch: np.ndarray, rng: np.random.Generator, count: int = BOOTSTRAP):
    """Bootstrap replicates (count, len(values)) of the means of several residual vectors that share the same
    points and patches: whole patches are drawn with replacement, so correlated neighbours move together."""
    unique, inverse = np.unique(patch, return_inverse=True)
    sums = np.stack([np.bincount(inverse, weights=v, minlength=len(unique)) for v in values], axis=1)
    counts = np.bincount(inverse, minlength=len(unique)).astype(float)
    draws = rng.integers(0, len(unique), (count, len(unique)))
    weights = np.stack([np.bincount(row, minlength=len(unique)) for row in draws]).astype(float)
    return (weights @ sums) / (weights @ counts)[:, None]


def paired_residuals(poses: list[np.ndarray], fixed: Surface, moving: Surface, clamp_mm: float = 20.0):
    """Residuals of several poses on the same points (points that any pose maps outside the other FOV are
    dropped for all), for paired comparisons: (values (P, N), patch (N,))."""
    inverse = [np.linalg.inv(p) for p in poses]
    rows, keep_all, ids = [], None, None
    for index, pose in enumerate(poses):
        parts, seen_parts, id_parts = [], [], []
        for points, source, target, to, offset in (
            (fixed.points, fixed, moving, pose, 0),
            (moving.points, moving, fixed, inverse[index], 1 << 20),
        ):
            mapped = apply(to, points)
            seen_parts.append(target.inside_fov(mapped) > 0.0)
            value = np.abs(target.distance(mapped))
            parts.append(np.where(np.isnan(value), clamp_mm, np.minimum(value, clamp_mm)))
            id_parts.append(patches(source.points) + offset)
        rows.append(np.concatenate(parts))
        seen = np.concatenate(seen_parts)
        keep_all = seen if keep_all is None else keep_all & seen
        ids = np.concatenate(id_parts)
    return np.stack(rows)[:, keep_all], ids[keep_all]


# intensities -------------------------------------------------------------------------------------------------
class IntensityScore:
    """Mutual information (nats) of the fixed intensities at fixed sample points and the moving intensities
    where a pose maps them, 32 x 32 joint histogram with linear (Parzen-like) binning of the moving value.
    Samples: ``count`` voxels of ``region`` (fixed grid) drawn with a fixed seed."""

    def __init__(self, fixed: sitk.Image, moving: sitk.Image, region: sitk.Image, count: int = 6000, bins: int = 32,
                 seed: int = 0):  # fmt: skip
        rng = np.random.default_rng(seed)
        voxels = np.argwhere(sitk.GetArrayViewFromImage(region) != 0)
        voxels = voxels[rng.choice(len(voxels), min(count, len(voxels)), replace=False)]
        matrix = index_to_physical_matrix(fixed)
        self.points = voxels[:, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]
        values = sitk.GetArrayViewFromImage(fixed)[tuple(voxels.T)].astype(float)
        self.bins = bins
        self.fixed_bin = self._binned(values, *np.percentile(values, [0.5, 99.5]))
        self.moving = Volume(sitk.Cast(moving, sitk.sitkFloat32))
        self.moving_range = np.percentile(sitk.GetArrayViewFromImage(moving), [0.5, 99.5])
        self.patch = patches(self.points)

    def _binned(self, values: np.ndarray, low: float, high: float) -> np.ndarray:
        return np.clip((values - low) / max(high - low, 1e-6) * (self.bins - 1), 0, self.bins - 1)

    def influences(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pointwise MI of each sample mapped inside the moving image, its mask over the samples)."""
        values = self.moving(apply(pose, self.points))
        seen = ~np.isnan(values)
        m = self._binned(values[seen], *self.moving_range)
        f = np.round(self.fixed_bin[seen]).astype(int)
        low = np.minimum(np.floor(m).astype(int), self.bins - 2)
        frac = m - low
        joint = np.zeros((self.bins, self.bins))
        np.add.at(joint, (f, low), 1 - frac)
        np.add.at(joint, (f, low + 1), frac)
        joint /= joint.sum()
        pf, pm = joint.sum(axis=1), joint.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            pmi = np.log(joint / np.outer(pf, pm))
        pmi = np.where(np.isfinite(pmi), pmi, 0.0)
        pointwise = (1 - frac) * pmi[f, low] + frac * pmi[f, low + 1]
        return pointwise, seen

    def __call__(self, pose: np.ndarray) -> float:
        pointwise, _ = self.influences(pose)
        return float(pointwise.mean()) if len(pointwise) else 0.0


def mask_voxels(mask: sitk.Image) -> np.ndarray:
    """LPS mm of a mask's voxels."""
    matrix = index_to_physical_matrix(mask)
    return np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)[:, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]
