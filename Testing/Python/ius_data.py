"""Brain MR -> intraoperative 3D ultrasound (iUS) with exact truth, from MNI ICBM152 (../shared/data).

Fixed: an iUS volume on a grid turned with the probe (0.5 mm), a 60 x 48 degree fan 65 mm deep from the brain
surface down to the right lateral ventricle, zeros outside it. Its echo comes from the MR at the true corresponding
points: tissue boundaries facing the beam, sulci and the falx bright, ventricles dark, Rayleigh speckle, depth
attenuation, 50 dB log compression. Moving: the MNI T1 with CSF, skull and scalp layers (a whole head, 1 mm).
Truth (fixed -> moving, LPS mm): a navigation error (a rotation about the fan's centre and a shift) after an
optional brain shift that sinks the tissue under the probe. Written from a helper's sweep (2026-11-30).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.ndimage as ndi
import SimpleITK as sitk
from data_paths import SHARED_DATA
from MultimodalRegistrationLib.core.transforms import rigid_transform

MNI = SHARED_DATA / "mni_icbm152" / "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
TARGET = np.array([-15.0, 10.0, 20.0])  # LPS: the right lateral ventricle's body
OUTWARD = np.array([-0.55, 0.0, 0.83]) / np.linalg.norm([-0.55, 0.0, 0.83])
REACH_MM, LATERAL, ELEVATION = (3.0, 65.0), np.radians(30.0), np.radians(24.0)
SHIFT_SIGMA_MM = 25.0


@dataclass
class IusPair:
    fixed: sitk.Image  # the ultrasound
    moving: sitk.Image  # the head MR
    points: np.ndarray  # brain points inside the fan on a 4 mm grid (fixed LPS mm)
    truth_points: np.ndarray  # where they lie in the moving image

    def mean_error(self, transform) -> float:
        """Mean distance (mm) between where ``transform`` and the truth send the points."""
        return float(np.linalg.norm(transform.transform_points(self.points) - self.truth_points, axis=1).mean())


def _sample(array: np.ndarray, image: sitk.Image, points: np.ndarray, order: int = 1) -> np.ndarray:
    """``array`` (z, y, x, on ``image``'s grid) at LPS points, 0 outside."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    index = (points - np.asarray(image.GetOrigin())) @ direction / np.asarray(image.GetSpacing())
    return ndi.map_coordinates(array, [index[:, 2], index[:, 1], index[:, 0]], order=order, mode="constant")


@cache
def head_mr() -> sitk.Image:
    """The MNI T1 with a 3 mm CSF rim, skull tables and marrow, muscle and fat around it (int16, 1 mm)."""
    t1 = sitk.ConstantPad(sitk.ReadImage(str(MNI).format("t1"), sitk.sitkFloat32), [25] * 3, [25] * 3, 0.0)
    values = sitk.GetArrayFromImage(t1)
    brain = ndi.binary_fill_holes(ndi.binary_closing(values > 0, iterations=3))
    distance = ndi.distance_transform_edt(~brain)
    texture = ndi.gaussian_filter(np.random.default_rng(7).normal(0, 1, values.shape), 2.0) * 6.0
    layers = np.zeros_like(values)
    for low, high, value in ((0, 3, 25), (3, 5, 6), (5, 8, 70), (8, 10, 6), (10, 13, 60), (13, 17, 150)):
        layers[(distance > low) & (distance <= high)] = value
    outside = ~brain
    values[outside] = np.clip(layers[outside] + np.where(layers[outside] > 0, texture[outside], 0), 0, 255)
    head = sitk.GetImageFromArray(np.round(values).astype(np.int16))
    head.CopyInformation(t1)
    return head


@cache
def _echo_maps() -> tuple:
    """The MR's acoustic maps on the MNI grid: base echo, bright thin CSF, the T1's gradient (LPS) and the brain."""
    image = sitk.ReadImage(str(MNI).format("t1"), sitk.sitkFloat32)
    t1 = sitk.GetArrayFromImage(image)
    grey, white = (
        sitk.GetArrayFromImage(sitk.ReadImage(str(MNI).format(p), sitk.sitkFloat32)) / 255.0 for p in ("gm", "wm")
    )
    brain = ndi.binary_fill_holes(ndi.binary_closing(t1 > 0, iterations=2))
    csf = np.clip(1 - grey - white, 0, 1) * brain
    large = ndi.grey_opening(csf, size=(5, 5, 5))  # ventricles and cisterns: dark; sulci and the fissure: bright
    base = 0.10 * white + 0.06 * grey + 0.004 * large + 0.003 * (~brain)
    gradient = np.stack(np.gradient(ndi.gaussian_filter(t1, 0.5)), axis=0)[::-1]  # x, y, z index derivatives
    gradient = np.einsum("ij,j...->i...", np.asarray(image.GetDirection()).reshape(3, 3), gradient)
    scale = np.percentile(np.linalg.norm(gradient, axis=0)[brain], 99.5)
    return image, base, ndi.gaussian_filter(np.clip(csf - large, 0, 1), 0.6), gradient / scale, brain.astype(np.float32)


def ius_pair(shift_mm: float, turn_deg: float, brain_shift_mm: float = 0.0, seed: int = 1,
             spacing_mm: float = 0.5) -> IusPair:  # fmt: skip
    """An iUS (fixed) and the head MR (moving) ``shift_mm`` and ``turn_deg`` apart as the headers place them, after a
    brain shift of up to ``brain_shift_mm`` under the probe; directions drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    image, base, sulci, gradient, brain = _echo_maps()
    depth = 0.0
    while _sample(brain, image, (TARGET + depth * OUTWARD)[None], 0)[0] > 0.5:
        depth += 0.5
    apex, beam = TARGET + (depth + 2.0) * OUTWARD, -OUTWARD
    lateral = np.cross(beam, [0.0, 1.0, 0.0])
    lateral /= np.linalg.norm(lateral)
    elevation = np.cross(beam, lateral)
    axes = np.stack([lateral, elevation, beam], axis=1)  # the grid's index axes (LPS columns)
    turns = np.meshgrid(
        np.linspace(-LATERAL, LATERAL, 21), np.linspace(-ELEVATION, ELEVATION, 21), REACH_MM, indexing="ij"
    )
    rays = (np.cos(turns[1]) * np.sin(turns[0]))[..., None] * lateral + np.sin(turns[1])[..., None] * elevation \
        + (np.cos(turns[1]) * np.cos(turns[0]))[..., None] * beam  # fmt: skip
    local = ((apex + turns[2][..., None] * rays).reshape(-1, 3) - apex) @ axes
    low, high = local.min(0) - 2 * spacing_mm, local.max(0) + 2 * spacing_mm
    size = np.ceil((high - low) / spacing_mm).astype(int) + 1
    origin = apex + axes @ low
    index = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3)
    points = origin + (index * spacing_mm) @ axes.T
    inside_fan = _in_fan(points, apex, beam, lateral, elevation)
    centre = points[inside_fan].mean(0)
    axis = rng.normal(size=3)
    rotation = rigid_transform(turn_deg, tuple(rng.normal(size=3)), (0.0, 0.0, 0.0)).matrix[:3, :3]
    translation = shift_mm * axis / np.linalg.norm(axis)

    def truth(x: np.ndarray) -> np.ndarray:
        sunk = x - brain_shift_mm * np.exp(-np.sum((x - apex) ** 2, axis=1) / (2 * SHIFT_SIGMA_MM**2))[:, None] * beam
        return (sunk - centre) @ rotation.T + centre + translation

    fan_points = points[inside_fan]
    moved = truth(fan_points)
    rays = (fan_points - apex) / np.linalg.norm(fan_points - apex, axis=1)[:, None] @ rotation.T
    edges = np.stack([_sample(gradient[k], image, moved) for k in range(3)], 1)
    echo = (_sample(base, image, moved) + 0.6 * np.clip(np.abs(np.sum(edges * rays, axis=1)), 0, 1)
            + 0.15 * np.clip(np.linalg.norm(edges, axis=1), 0, 1) + 0.8 * _sample(sulci, image, moved))  # fmt: skip
    blur = np.array([0.45, 1.0, 0.8]) / spacing_mm  # speckle: short along the beam
    envelope = np.hypot(*(ndi.gaussian_filter(rng.normal(size=size[::-1]), blur) for _ in "iq"))
    envelope = (envelope / envelope.mean()).transpose(2, 1, 0).reshape(-1)[inside_fan]
    reach = np.linalg.norm(fan_points - apex, axis=1) - REACH_MM[0]
    echo = echo * envelope * np.exp(-reach / 55.0) * (1 + 0.5 * reach / 55.0) + 0.002 * np.abs(
        rng.normal(size=len(echo))
    )
    decibels = 20 * np.log10(np.maximum(echo / np.percentile(echo, 99.5), 1e-6))
    values = np.zeros(len(points), np.float32)
    values[inside_fan] = np.clip((decibels + 50.0) / 50.0, 0, 1) * 255
    fixed = sitk.GetImageFromArray(np.round(values.reshape(*size).transpose(2, 1, 0)).astype(np.uint8))
    fixed.SetOrigin(origin.tolist())
    fixed.SetSpacing([spacing_mm] * 3)
    fixed.SetDirection(axes.ravel().tolist())
    grid = np.stack(np.meshgrid(*[np.arange(-80, 81, 4.0)] * 3, indexing="ij"), -1).reshape(-1, 3) + np.round(centre)
    grid = grid[_in_fan(grid, apex, beam, lateral, elevation, margin=True)]
    grid = grid[_sample(brain, image, truth(grid), 0) > 0.5]
    return IusPair(fixed, head_mr(), grid, truth(grid))


def _in_fan(points, apex, beam, lateral, elevation, margin: bool = False) -> np.ndarray:
    """Which points (LPS mm) lie in the fan (``margin``: 5 mm in from its near end, 3 mm from its far end, 3 deg in)."""
    relative = points - apex
    reach = np.linalg.norm(relative, axis=1)
    across = np.arctan2(relative @ lateral, relative @ beam)
    up = np.arcsin(np.clip(relative @ elevation / np.maximum(reach, 1e-6), -1, 1))
    inward = np.radians(3.0) if margin else 0.0
    near, far = (REACH_MM[0] + 5, REACH_MM[1] - 3) if margin else REACH_MM
    return ((reach >= near) & (reach <= far) & (np.abs(across) <= LATERAL - inward)
            & (np.abs(up) <= ELEVATION - inward) & (relative @ beam > 0))  # fmt: skip
