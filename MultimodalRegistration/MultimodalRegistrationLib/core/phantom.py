"""A head-like CT/MR phantom pair with an exactly known rigid misalignment.

The anatomy is analytic (smooth ellipsoids and spheres in head coordinates, LPS mm), so the CT
and the MR are each sampled directly on their own grids: no resampling blur, exact truth.
The true transform maps fixed (CT) points to moving (MR) points, like every library transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .transforms import Transform, rigid_transform

# Tissue: (CT in HU, T1-like MR value). Bone is bright on CT and dark on MR.
TISSUES = {
    "air": (-1000.0, 0.0),
    "scalp": (-60.0, 380.0),
    "skull": (1100.0, 40.0),
    "csf": (10.0, 70.0),
    "grey": (42.0, 300.0),
    "white": (28.0, 430.0),
    "ventricle": (6.0, 50.0),
    "lesion": (65.0, 190.0),
    "eye": (12.0, 90.0),
    "neck": (45.0, 260.0),
    "spine": (700.0, 60.0),
}
HEAD_RADII = np.array([72.0, 92.0, 84.0])  # LR, AP, IS semi-axes (mm)


@dataclass
class PhantomPair:
    fixed: sitk.Image  # CT-like, anisotropic slices
    moving: sitk.Image  # MR-like, bias field and noise
    truth: Transform  # fixed -> moving (LPS mm)
    head_points: np.ndarray  # (N, 3) fixed-space LPS points inside the head, for errors


def _soft(inside_distance: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Partial-volume membership from a signed distance (mm, positive inside): a linear ramp."""
    return np.clip(0.5 + inside_distance * (0.5 / width), 0.0, 1.0)


def _ellipsoid(p, center, radii) -> np.ndarray:
    """Approximate signed distance (mm, positive inside) to an ellipsoid; p is (x, y, z) arrays."""
    squared = sum(((p[axis] - np.float32(center[axis])) / np.float32(radii[axis])) ** 2 for axis in range(3))
    return (1.0 - np.sqrt(squared)) * np.float32(min(radii))


def _cylinder_z(p, center_xy, radius, z_low, z_high) -> np.ndarray:
    radial = radius - np.sqrt((p[0] - np.float32(center_xy[0])) ** 2 + (p[1] - np.float32(center_xy[1])) ** 2)
    axial = np.minimum(p[2] - np.float32(z_low), np.float32(z_high) - p[2])
    return np.minimum(radial, axial)


def tissue_fractions(p: np.ndarray) -> dict[str, np.ndarray]:
    """Fractions of each tissue at head-coordinate points p (..., 3), summing to 1."""
    p = [np.ascontiguousarray(p[..., axis], dtype=np.float32) for axis in range(3)]
    head = _soft(_ellipsoid(p, (0, 0, 0), HEAD_RADII))
    neck = _soft(_cylinder_z(p, (0, 8), 46, -150, -40))
    body = np.maximum(head, neck)
    skull_out = _soft(_ellipsoid(p, (0, 0, 0), HEAD_RADII - 6))
    skull_in = _soft(_ellipsoid(p, (0, 0, 0), HEAD_RADII - 13))
    brain = _soft(_ellipsoid(p, (0, 4, 6), HEAD_RADII - 17))
    white = _soft(_ellipsoid(p, (2, 6, 10), HEAD_RADII * np.array([0.55, 0.6, 0.5])))
    ventricles = np.maximum(
        _soft(_ellipsoid(p, (-9, 2, 12), (6, 24, 9))), _soft(_ellipsoid(p, (10, 6, 10), (5, 20, 8)))
    )
    lesion = _soft(_ellipsoid(p, (28, -30, 22), (11, 9, 13)))
    eyes = np.maximum(
        _soft(_ellipsoid(p, (-31, -72, -22), (12, 12, 12))), _soft(_ellipsoid(p, (31, -72, -22), (12, 12, 12)))
    )
    spine = _soft(_cylinder_z(p, (0, 30), 9, -150, -60))
    fractions = {}
    fractions["spine"] = spine * neck
    fractions["neck"] = np.clip(neck - head, 0, 1) * (1 - spine)
    rest = head * (1 - spine)
    fractions["eye"] = rest * eyes * (1 - skull_in)
    rest = rest - fractions["eye"]
    fractions["scalp"] = rest * (1 - skull_out)
    fractions["skull"] = rest * (skull_out - skull_in)
    inner = rest * skull_in
    fractions["csf"] = inner * (1 - brain)
    tissue = inner * brain
    fractions["ventricle"] = tissue * ventricles
    tissue = tissue * (1 - ventricles)
    fractions["lesion"] = tissue * lesion
    tissue = tissue * (1 - lesion)
    fractions["white"] = tissue * white
    fractions["grey"] = tissue * (1 - white)
    fractions["air"] = np.clip(1 - body, 0, 1)
    return fractions


def _render(points_head: np.ndarray, modality: int) -> np.ndarray:
    fractions = tissue_fractions(points_head)
    values = np.zeros(points_head.shape[:-1], np.float32)
    for name, fraction in fractions.items():
        values += (TISSUES[name][modality] * fraction).astype(np.float32)
    return values


def _grid(size, spacing, origin, direction=np.eye(3)) -> sitk.Image:
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(np.asarray(direction, float).ravel()))
    return image


def _sample(image: sitk.Image, head_from_image: Transform, modality: int, chunk: int = 8) -> sitk.Image:
    """Fill ``image`` with the phantom seen through ``head_from_image`` (image LPS -> head LPS)."""
    size = image.GetSize()
    spacing = np.asarray(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin())
    matrix = head_from_image.matrix
    out = np.empty(size[::-1], np.float32)
    ii, jj = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="xy")
    for k0 in range(0, size[2], chunk):
        ks = np.arange(k0, min(k0 + chunk, size[2]))
        index = np.stack(np.broadcast_arrays(ii[None], jj[None], ks[:, None, None]), axis=-1).astype(np.float32)
        physical = origin + (index * spacing) @ direction.T
        head = physical @ matrix[:3, :3].T + matrix[:3, 3]
        out[ks] = _render(head.astype(np.float32), modality)
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result


def add_bias_and_noise(image: sitk.Image, seed: int, bias: float, noise: float) -> sitk.Image:
    """``image`` times a smooth field (1 +- ``bias`` across it) plus Gaussian noise (standard deviation ``noise``)."""
    array = sitk.GetArrayFromImage(image)
    shape = np.array(array.shape, float)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, int(n)) for n in shape], indexing="ij", sparse=True)
    field = 1.0 + bias * (0.6 * x + 0.4 * y * z - 0.5 * z**2 + 0.3 * x * y)
    rng = np.random.default_rng(seed)
    array = array * field.astype(np.float32) + rng.normal(0.0, noise, array.shape).astype(np.float32)
    result = sitk.GetImageFromArray(np.clip(array, 0, None).astype(np.float32))
    result.CopyInformation(image)
    return result


def make_phantom_pair(
    truth: Transform | None = None,
    ct_spacing=(1.0, 1.0, 2.5),
    mr_spacing=(1.5, 1.5, 1.5),
    field_of_view_mm=(230.0, 250.0, 250.0),
    mr_offset_mm=(12.0, -9.0, 20.0),
    seed: int = 0,
) -> PhantomPair:
    """Generate the CT (fixed) and MR (moving) phantoms and the exact fixed->moving truth.

    ``truth`` defaults to 25 degrees about an oblique axis plus a 31 mm shift. The MR grid is centred
    ``mr_offset_mm`` away from the moved head, like a scan from another scanner's frame.
    """
    if truth is None:
        truth = rigid_transform(25.0, (0.4, 0.8, 0.45), (18.0, -20.0, 16.0))
    fov = np.asarray(field_of_view_mm, float)
    center = np.array([0.0, 0.0, -15.0])  # the head plus some neck

    def centered_grid(spacing, grid_center):
        spacing = np.asarray(spacing, float)
        size = np.ceil(fov / spacing).astype(int)
        origin = grid_center - (size - 1) * spacing / 2
        return _grid(size, spacing, origin)

    fixed_grid = centered_grid(ct_spacing, center)
    ct = _sample(fixed_grid, Transform.identity(), modality=0)
    moving_center = truth.transform_points([center])[0] + np.asarray(mr_offset_mm, float)
    mr_grid = centered_grid(mr_spacing, moving_center)
    mr = _sample(mr_grid, truth.inverse(), modality=1)
    mr = add_bias_and_noise(mr, seed, bias=0.25, noise=6.0)
    rng = np.random.default_rng(seed + 1)
    candidates = rng.uniform(-1, 1, size=(4000, 3)) * HEAD_RADII
    inside = tissue_fractions(candidates)["air"] < 0.5
    head_points = candidates[inside][:500]
    return PhantomPair(fixed=ct, moving=mr, truth=truth, head_points=head_points)


def mean_error_mm(estimate: Transform, truth: Transform, points_lps: np.ndarray) -> float:
    """Mean distance (mm) between where ``estimate`` and ``truth`` send fixed-space points."""
    difference = estimate.transform_points(points_lps) - truth.transform_points(points_lps)
    return float(np.linalg.norm(difference, axis=1).mean())
