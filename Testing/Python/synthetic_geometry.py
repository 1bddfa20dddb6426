"""Grid, sampling and shape helpers shared by the generated cases (ultrasound_like.py, pelvis_like.py, trus_data.py).

Images are SimpleITK images in LPS mm; point arrays are shaped (z, y, x, 3) or (..., 3), LPS mm; signed
distances are in mm, positive inside.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import index_to_physical_matrix
from MultimodalRegistrationLib.core.labels import set_label_names
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform


def grid_around(center, extent_mm, spacing_mm) -> sitk.Image:
    """An empty float image (identity direction) centred on ``center``, ``extent_mm`` wide per axis (LPS mm)."""
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (3,))
    size = np.maximum(np.round(np.broadcast_to(np.asarray(extent_mm, float), (3,)) / spacing).astype(int), 2)
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in np.asarray(center, float) - (size - 1) * spacing / 2))
    return image


def index_grid(shape) -> np.ndarray:
    """Voxel indices (i, j, k) of an array shaped (z, y, x), as (z, y, x, 3)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    return np.stack([i, j, k], axis=-1)


def voxel_points(image: sitk.Image) -> np.ndarray:
    """Every voxel centre of ``image`` in LPS mm, shaped (z, y, x, 3)."""
    matrix = index_to_physical_matrix(image)
    return index_grid(image.GetSize()[::-1]) @ matrix[:3, :3].T + matrix[:3, 3]


def image_like(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def sample_at(image: sitk.Image, points: np.ndarray, default: float = 0.0) -> np.ndarray:
    """``image`` linearly interpolated at LPS points shaped (z, y, x, 3); ``default`` outside it."""
    shape = points.shape[:-1]
    reference = sitk.Image([int(n) for n in shape[::-1]], sitk.sitkFloat32)  # origin 0, spacing 1: index = mm
    field = sitk.GetImageFromArray((points - index_grid(shape)).astype(np.float64), isVector=True)
    resampled = sitk.Resample(
        image, reference, sitk.DisplacementFieldTransform(field), sitk.sitkLinear, default, sitk.sitkFloat32
    )
    return sitk.GetArrayFromImage(resampled)


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (..., 3) through a 4x4 homogeneous matrix."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def membership(distance: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume fraction (0..1) from a signed distance (mm, positive inside) over a ramp ``width`` mm wide."""
    return np.clip(0.5 + distance / width, 0.0, 1.0)


def smooth_noise(shape, sigma, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise smoothed by ``sigma`` voxels (one value or one per x, y, z axis), scaled to unit deviation."""
    noise = sitk.GetImageFromArray(rng.standard_normal(shape).astype(np.float32))
    variance = [float(s) ** 2 for s in np.broadcast_to(np.asarray(sigma, float), (3,))]
    smooth = sitk.GetArrayFromImage(sitk.DiscreteGaussian(noise, variance, 32, 0.01, False))
    return smooth / max(float(smooth.std()), 1e-6)


def ellipsoid_distance(p: np.ndarray, center, radii) -> np.ndarray:
    """Approximate signed distance (mm, positive inside) to an axis-aligned ellipsoid."""
    radii = np.asarray(radii, float)
    return (1.0 - np.linalg.norm((p - np.asarray(center, float)) / radii, axis=-1)) * radii.min()


def shell_distance(p: np.ndarray, center, radii, thickness: float) -> np.ndarray:
    """Approximate signed distance (mm) to an ellipsoidal shell ``thickness`` mm thick inside ``radii``."""
    return np.minimum(
        ellipsoid_distance(p, center, radii), -ellipsoid_distance(p, center, np.asarray(radii, float) - thickness)
    )


def half_space_distance(p: np.ndarray, point, normal) -> np.ndarray:
    """Signed distance (mm) to the plane through ``point``, positive on the side ``normal`` points to."""
    normal = np.asarray(normal, float)
    return (p - np.asarray(point, float)) @ (normal / np.linalg.norm(normal))


def random_rigid(rng: np.random.Generator, angle_deg, shift_mm, center, direction=None) -> Transform:
    """A rigid transform about ``center`` (LPS mm): rotation ``angle_deg`` about a random axis, then a shift of
    ``shift_mm`` along ``direction`` (default random); a (low, high) pair draws the value uniformly."""
    angle = rng.uniform(*angle_deg) if np.ndim(angle_deg) else float(angle_deg)
    shift = rng.uniform(*shift_mm) if np.ndim(shift_mm) else float(shift_mm)
    axis = rng.normal(size=3)
    direction = rng.normal(size=3) if direction is None else np.asarray(direction, float)
    return rigid_transform(angle, axis, shift * direction / np.linalg.norm(direction), center=center)


def distinct_directions(rng: np.random.Generator, count: int) -> np.ndarray:
    """Up to 4 unit vectors 109.5 degrees apart: a randomly turned tetrahedron's vertices."""
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    vertices = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3.0)
    return (vertices @ rotation.T)[:count]


def named_labels(labels: np.ndarray, like: sitk.Image, names: dict[int, str]) -> sitk.Image:
    """A UInt8 labelmap on ``like``'s grid carrying Slicer's single-layer .seg.nrrd segment metadata."""
    return set_label_names(image_like(labels.astype(np.uint8), like), names)
