"""Serial sections with exact truth (issue 23): the analytic head phantom cut into axial sections, each
rendered as an H&E-like RGB PNG (tissue on a bright slide), moved in-plane by a known rigid motion.

Frames: ``x_out`` is a point of the volume's section plane, the canvas of ``canvas_mm`` whose centre sits on
the head's axis; head coordinates are ``(x_out - canvas centre, z)``. Section k's image shows the head at
``x_in = truth[k] @ x_out``; its pixel (column i, row j) is at ``(i px, j px)``. The stain texture is drawn
anew for every section (other cells), so only anatomy matches between sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.phantom import TISSUES, tissue_fractions
from PIL import Image
from scipy import ndimage

# (hematoxylin, eosin) optical densities of each tissue; stain colours after Ruifrok & Johnston (2001).
STAIN = {
    "air": (0.0, 0.0), "scalp": (0.3, 0.6), "skull": (0.15, 0.9), "csf": (0.05, 0.1), "grey": (0.8, 0.4),
    "white": (0.3, 0.75), "ventricle": (0.05, 0.1), "lesion": (1.1, 0.3), "eye": (0.2, 0.3), "neck": (0.4, 0.5),
    "spine": (0.15, 0.9),
}  # fmt: skip
# Vessels and nerve tracts running along z (no in-plane drift between sections): x, y (head mm), radius,
# z range (mm), hematoxylin, eosin. They break the symmetry of the phantom's nested ellipsoids.
TUBES = (
    (-30.0, 35.0, 5.0, (-90, 90), 1.2, 0.2),
    (25.0, -40.0, 4.0, (-90, 90), 0.1, 1.2),
    (40.0, 30.0, 3.0, (10, 90), 1.3, 0.6),
    (-45.0, -20.0, 6.0, (-90, 40), 0.05, 0.05),
    (5.0, 55.0, 3.5, (-90, 90), 1.0, 1.0),
    (-15.0, -60.0, 4.5, (20, 90), 1.2, 0.1),
)
HEMATOXYLIN = np.array([0.650, 0.704, 0.286])
EOSIN = np.array([0.072, 0.990, 0.105])


@dataclass
class SerialSections:
    paths: list[Path]
    truth: np.ndarray  # (N, 3, 3): x_in = truth[k] @ x_out (mm)
    damage: dict[int, str]  # section -> missing | blank | torn | small
    pixel_mm: float
    section_mm: float
    points: list[np.ndarray]  # per section: x_out points (mm) inside the head, for errors


def rigid(angle_deg: float, shift, center) -> np.ndarray:
    """3x3: rotation by ``angle_deg`` about ``center``, then ``shift`` (mm)."""
    a = np.radians(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    matrix = np.eye(3)
    matrix[:2, :2] = rotation
    matrix[:2, 2] = np.asarray(center) - rotation @ np.asarray(center) + np.asarray(shift)
    return matrix


ANATOMY_GRID_MM = 2.0


@lru_cache(maxsize=2)
def fine_anatomy(seed: int = 0) -> np.ndarray:
    """Smooth 3D structure (features of about 4 mm, no preferred direction) on a 2 mm grid over the head
    (z, y, x from -100 mm): cell density that varies within each tissue, continuous from section to section."""
    rng = np.random.default_rng(10_000 + seed)
    field = ndimage.gaussian_filter(rng.normal(size=(101, 101, 101)), 2.0)
    return (field / field.std()).astype(np.float32)


def _fine(head: np.ndarray, seed: int) -> np.ndarray:
    index = (head[:, ::-1] + 100.0) / ANATOMY_GRID_MM  # z, y, x
    return ndimage.map_coordinates(fine_anatomy(seed), index.T, order=1, mode="nearest")


def render(
    truth: np.ndarray, z_mm: float, pixel_mm: float, canvas_mm, seed: int, anatomy_seed: int = 0, fine: bool = True
) -> np.ndarray:
    """(rows, columns, 3) uint8 H&E-like section of the head at height ``z_mm`` seen through ``truth``;
    ``fine``: with the tubes and the fine 3D structure (False: the phantom's tissues only, as an MR shows them)."""
    columns, rows = (np.asarray(canvas_mm) / pixel_mm).astype(int)
    jj, ii = np.mgrid[0:rows, 0:columns]
    x_in = np.stack([ii * pixel_mm, jj * pixel_mm], axis=-1).reshape(-1, 2)
    inverse = np.linalg.inv(truth)
    x_out = x_in @ inverse[:2, :2].T + inverse[:2, 2]
    head = np.concatenate([x_out - np.asarray(canvas_mm) / 2, np.full((len(x_out), 1), z_mm)], axis=1)
    fractions = tissue_fractions(head.reshape(rows, columns, 3).astype(np.float32))
    h = sum(STAIN[name][0] * fraction for name, fraction in fractions.items())
    e = sum(STAIN[name][1] * fraction for name, fraction in fractions.items())
    inside = 1 - fractions["air"] - fractions["scalp"] - fractions["skull"]
    if fine:
        h = h * (1 + 0.35 * inside * _fine(head, anatomy_seed).reshape(rows, columns))
    for x, y, radius, (z_low, z_high), tube_h, tube_e in TUBES if fine else ():
        if z_low <= z_mm <= z_high:
            distance = np.hypot(head[:, 0] - x, head[:, 1] - y).reshape(rows, columns)
            tube = np.clip(radius - distance + 0.5, 0, 1) * inside
            h, e = h * (1 - tube) + tube_h * tube, e * (1 - tube) + tube_e * tube
    rng = np.random.default_rng(seed)
    texture = 1 + 0.2 * ndimage.gaussian_filter(rng.normal(size=(rows, columns)), 1.2) / 0.23
    density = (h * texture)[..., None] * HEMATOXYLIN + (e * texture)[..., None] * EOSIN
    yy, xx = np.mgrid[-1 : 1 : rows * 1j, -1 : 1 : columns * 1j]
    light = 242 * (1 - 0.05 * (xx**2 + yy**2))[..., None]
    rgb = light * np.power(10.0, -np.clip(density, 0, None)) + rng.normal(0, 3.0, density.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def serial_sections(
    folder: Path, count: int = 30, pixel_mm: float = 0.5, section_mm: float = 2.0, max_deg: float = 12.0,
    max_mm: float = 8.0, damage: dict[int, str] | None = None, seed: int = 0, canvas_mm=(200.0, 230.0),
    first_z: float = -29.0, mirrored: tuple[int, ...] = (),
) -> SerialSections:  # fmt: skip
    """Write ``count`` sections (``section_0000.png`` ...) into ``folder``; see the module notes.
    ``damage`` maps section indices to missing (an empty file), blank (glass only), torn (a strip gone) or
    small (only a quarter of the slide's tissue kept). ``mirrored``: sections laid face down on their slide (their
    columns reversed); their truth holds the mirror: ``x_in = F @ rigid @ x_out``, ``F: x -> (columns - 1) px - x``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    damage = dict(damage or {})
    rng = np.random.default_rng(seed)
    center = np.asarray(canvas_mm) / 2
    truths, paths, points = [], [], []
    for k in range(count):
        direction = rng.normal(size=2)
        shift = direction / np.linalg.norm(direction) * rng.uniform(0, max_mm)
        truth = rigid(rng.uniform(-max_deg, max_deg), shift, center)
        z = first_z + k * section_mm
        path = folder / f"section_{k:04d}.png"
        kind = damage.get(k)
        if kind == "missing":
            path.write_bytes(b"")
        else:
            rgb = render(truth, z, pixel_mm, canvas_mm, seed * 1000 + k)
            glass = np.percentile(rgb.reshape(-1, 3), 99, axis=0).astype(np.uint8)
            if kind == "blank":
                rgb[:] = np.clip(glass.astype(int) - rng.integers(0, 5, rgb.shape), 0, 255).astype(np.uint8)
            elif kind == "torn":
                rows, columns = rgb.shape[:2]
                jj, ii = np.mgrid[0:rows, 0:columns]
                gap = np.abs((ii - columns / 2) * 0.6 + (jj - rows / 2) * 0.8 - 10 / pixel_mm) < 2.5 / pixel_mm
                rgb[gap] = glass
            elif kind == "small":
                rows, columns = rgb.shape[:2]
                keep = np.zeros((rows, columns), bool)
                keep[: rows // 2, : columns // 2] = True
                rgb[~keep] = glass
            if k in mirrored:
                rgb = rgb[:, ::-1]
                flip = np.diag([-1.0, 1.0, 1.0])
                flip[0, 2] = (rgb.shape[1] - 1) * pixel_mm
                truth = flip @ truth
            Image.fromarray(rgb).save(path)
        grid = np.stack(
            np.meshgrid(np.arange(10, canvas_mm[0] - 10, 5.0), np.arange(10, canvas_mm[1] - 10, 5.0)), -1
        ).reshape(-1, 2)
        head = np.concatenate([grid - center, np.full((len(grid), 1), z)], axis=1)
        inside = tissue_fractions(head.astype(np.float32))["air"] < 0.5
        truths.append(truth)
        paths.append(path)
        points.append(grid[inside])
    return SerialSections(paths, np.stack(truths), damage, pixel_mm, section_mm, points)


def residuals_after_global_fit(
    estimate: np.ndarray, truth: np.ndarray, points: list[np.ndarray], members
) -> np.ndarray:
    """Per-section mean error (mm, in each section's image) of ``estimate`` after the one rigid change of the
    volume frame ``H`` (least squares over all members' points) that best makes ``estimate[k] @ H`` the truth.
    NaN for sections not in ``members``."""
    members = list(members)
    source = np.concatenate([points[k] for k in members])
    target = []
    for k in members:  # H x should be estimate^-1 truth x
        back = np.linalg.inv(estimate[k]) @ truth[k]
        target.append(points[k] @ back[:2, :2].T + back[:2, 2])
    target = np.concatenate(target)
    a, b = source - source.mean(0), target - target.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    rotation = u @ np.diag([1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    h = np.eye(3)
    h[:2, :2] = rotation
    h[:2, 2] = target.mean(0) - rotation @ source.mean(0)
    out = np.full(len(truth), np.nan)
    for k in members:
        mapped = points[k] @ (estimate[k] @ h)[:2, :2].T + (estimate[k] @ h)[:2, 2]
        expected = points[k] @ truth[k][:2, :2].T + truth[k][:2, 2]
        out[k] = float(np.linalg.norm(mapped - expected, axis=1).mean())
    return out


def reference_volume(
    data: SerialSections, motion: np.ndarray, offset_mm: float = 3.0, voxel_mm=(1.0, 1.0, 1.0), seed: int = 0,
    canvas_mm=(200.0, 230.0), first_z: float = -29.0,
) -> sitk.Image:  # fmt: skip
    """An MR-like reference of the same head (the phantom's T1-like tissue values, noise): its third axis is the
    cutting direction, section k at depth ``offset_mm + k * section_mm`` from its first slice; its plane frame
    (voxel (i, j) at ``(i sx, j sy)`` mm) is ``x_ref = motion @ x_out``. ``first_z``: the head height of section 0."""
    voxel = np.asarray(voxel_mm, float)
    depth = offset_mm + (len(data.paths) - 1) * data.section_mm + 4.0
    columns, rows, slices = int(canvas_mm[0] / voxel[0]) + 20, int(canvas_mm[1] / voxel[1]) + 20, int(depth / voxel[2])
    jj, ii = np.mgrid[0:rows, 0:columns]
    x_ref = np.stack([ii * voxel[0], jj * voxel[1]], axis=-1).reshape(-1, 2)
    inverse = np.linalg.inv(motion)
    head_xy = x_ref @ inverse[:2, :2].T + inverse[:2, 2] - np.asarray(canvas_mm) / 2
    out = np.empty((slices, rows, columns), np.float32)
    for s in range(slices):
        z = first_z - offset_mm + s * voxel[2]
        head = np.concatenate([head_xy, np.full((len(head_xy), 1), z)], axis=1).astype(np.float32)
        fractions = tissue_fractions(head)
        out[s] = sum(TISSUES[name][1] * fraction for name, fraction in fractions.items()).reshape(rows, columns)
    out += np.random.default_rng(seed).normal(0, 10.0, out.shape).astype(np.float32)
    image = sitk.GetImageFromArray(out)
    image.SetSpacing(tuple(voxel))
    return image


CHECK_POINTS = np.array([[60.0, 60.0], [140.0, 170.0], [100.0, 115.0]])  # canvas points (mm) inside the head


def miss_mm(estimate: np.ndarray, truth: np.ndarray, points: np.ndarray = CHECK_POINTS) -> np.ndarray:
    """How far (mm) the 3x3 ``estimate`` puts each of ``points`` from where ``truth`` puts it."""
    gap = estimate - truth
    return np.linalg.norm(points @ gap[:2, :2].T + gap[:2, 2], axis=1)
