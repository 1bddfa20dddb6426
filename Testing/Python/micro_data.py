"""Generated microscopy / histology test data with exact truth, from the MNI ICBM152 maps (issue 23).

All transforms map fixed points to moving points (LPS mm), like every library transform.

* :func:`head_mri`: a whole-head T2-like MRI (the fixed image): grey, white matter and CSF from the
  template's maps, with CSF, skull and scalp layers synthesised by distance from the brain mask,
  a bias field and noise; plus the brain mask on its grid and points inside the brain.
* :func:`light_sheet`: a brain-only, light-sheet-like image (the moving image) of the same anatomy,
  shrunk isotropically (cleared tissue), rotated and moved into a frame of its own, optionally cut
  to a partial stack along its stack axis (``coverage``). Autofluorescence-like contrast (white
  matter brightest, CSF dark), depth attenuation along the illumination axis, stripes, shot noise.
  Rendered directly from the maps through the exact inverse of the truth (one linear lookup).
* :func:`mni_slice` / :func:`histology_rgb`: a 2D MR slice and a 2D RGB "H&E-like" section of the same
  slice with a known 2D rigid/affine truth.
* :func:`section_stack`: serial sections of an MNI-derived volume rendered as RGB histology, each
  moved in-plane by a known rigid motion, some damaged (missing, torn, shrunken, blank).

The data live in ../shared/data/mni_icbm152 (never copied into the repo); callers skip without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from data_paths import SHARED_DATA
from scipy import ndimage

DATA = SHARED_DATA / "mni_icbm152"
PAD_MM = 22  # room around the brain for CSF, skull and scalp


def available() -> bool:
    return (DATA / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").exists()


@dataclass(frozen=True)
class Anatomy:
    """The template's tissue fractions on its padded 1 mm grid (z, y, x arrays) and the grid itself."""

    grey: np.ndarray
    white: np.ndarray
    csf: np.ndarray  # inside the brain mask: 1 - grey - white
    outside_mm: np.ndarray  # distance from the brain mask (<= 0 inside)
    reference: sitk.Image  # the padded grid (LPS, 1 mm, identity direction in this template)

    @property
    def to_index(self) -> np.ndarray:
        """4x4: LPS mm -> continuous (x, y, z) index of the padded grid."""
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(self.reference.GetDirection()).reshape(3, 3) * np.asarray(self.reference.GetSpacing())
        matrix[:3, 3] = self.reference.GetOrigin()
        return np.linalg.inv(matrix)

    def lookup(self, points: np.ndarray, arrays: tuple[np.ndarray, ...], order: int = 1) -> list[np.ndarray]:
        """Values of ``arrays`` (z, y, x) at LPS points (..., 3), 0 outside."""
        shape = points.shape[:-1]
        flat = points.reshape(-1, 3)
        index = flat @ self.to_index[:3, :3].T + self.to_index[:3, 3]
        coordinates = index[:, ::-1].T  # z, y, x
        return [
            ndimage.map_coordinates(a, coordinates, order=order, mode="constant", cval=c).reshape(shape)
            for a, c in arrays
        ]

    def brain_center(self) -> np.ndarray:
        index = np.argwhere(self.outside_mm <= 0).mean(axis=0)[::-1]
        return np.asarray(self.reference.TransformContinuousIndexToPhysicalPoint(index.tolist()))


@lru_cache(maxsize=4)
def smoothed(sigma: float) -> tuple:
    """The anatomy's (grey, white, csf) smoothed by ``sigma`` voxels, as lookup arrays (cached)."""
    a = anatomy()
    return tuple((ndimage.gaussian_filter(x, sigma), 0.0) for x in (a.grey, a.white, a.csf))


def _mni(name: str) -> sitk.Image:
    return sitk.Cast(sitk.ReadImage(str(DATA / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz")), sitk.sitkFloat32)


@lru_cache(maxsize=1)
def anatomy() -> Anatomy:
    pad = [PAD_MM] * 3
    t1, grey, white = (sitk.ConstantPad(image, pad, pad, 0.0) for image in (_mni("t1"), _mni("gm"), _mni("wm")))
    brain = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(t1 > 0, [3, 3, 3]))
    outside_mm = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(brain, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    ).astype(np.float32)
    inside = outside_mm <= 0
    g = sitk.GetArrayFromImage(grey) / 255.0
    w = sitk.GetArrayFromImage(white) / 255.0
    g, w = np.where(inside, g, 0).astype(np.float32), np.where(inside, w, 0).astype(np.float32)
    csf = np.where(inside, np.clip(1.0 - g - w, 0, 1), 0).astype(np.float32)
    reference = sitk.Image(t1.GetSize(), sitk.sitkUInt8)
    reference.CopyInformation(t1)
    return Anatomy(g, w, csf, outside_mm, reference)


def random_rotation(angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return np.asarray(sitk.VersorTransform(axis.tolist(), float(np.radians(angle_deg))).GetMatrix()).reshape(3, 3)


def _image(array: np.ndarray, spacing, origin, direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    if direction is not None:
        image.SetDirection([float(d) for d in np.asarray(direction).ravel()])
    return image


def _grid_points(size, spacing, origin, direction=None) -> np.ndarray:
    """(z, y, x, 3) LPS points of a grid (axis-aligned unless ``direction`` is given)."""
    axes = [spacing[a] * np.arange(size[a]) for a in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    index = np.stack([x, y, z], axis=-1)
    if direction is not None:
        index = index @ np.asarray(direction, float).reshape(3, 3).T
    return (index + np.asarray(origin, float)).astype(np.float32)


# ----------------------------------------------------------------------------------- 3D: shrink case
@dataclass
class HeadMRI:
    image: sitk.Image  # whole-head T2-like MRI
    brain_mask: sitk.Image  # on the MRI grid
    brain_points: np.ndarray  # (N, 3) LPS points inside the brain, for errors


def head_mri(spacing_mm: float = 1.5, seed: int = 0) -> HeadMRI:
    """Whole-head T2-like MRI: CSF bright, grey over white, dark skull, mid-bright scalp; bias and noise."""
    a = anatomy()
    ref = a.reference
    size = [int(np.floor((n - 1) * s / spacing_mm)) + 1 for n, s in zip(ref.GetSize(), ref.GetSpacing())]
    origin, direction = np.asarray(ref.GetOrigin()), np.asarray(ref.GetDirection())
    points = _grid_points(size, [spacing_mm] * 3, origin, direction)
    smooth = max(spacing_mm / 2.5, 0.01)
    arrays = [(ndimage.gaussian_filter(x, smooth), 0.0) for x in (a.grey, a.white, a.csf)]
    grey, white, csf = a.lookup(points, tuple(arrays))
    (outside,) = a.lookup(points, ((a.outside_mm, 99.0),))
    t2 = 0.55 * grey + 0.32 * white + 1.0 * csf
    for low, high, value in ((0, 3, 0.95), (3, 9, 0.05), (9, 15, 0.5)):  # CSF rim, skull, scalp
        layer = np.clip(np.minimum(outside - low, high - outside) + 0.5, 0, 1) * (outside > 0)
        t2 = t2 * (1 - layer) + value * layer
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in t2.shape], indexing="ij", sparse=True)
    bias = 1 + 0.15 * (0.7 * x - 0.5 * y * z + 0.4 * z**2 - 0.2)
    t2 = np.abs(t2 * bias + rng.normal(0, 0.025, t2.shape) + 1j * rng.normal(0, 0.025, t2.shape))  # Rician
    image = _image(1000 * t2, [spacing_mm] * 3, origin, direction)
    mask = _image((outside <= 0).astype(np.float32), [spacing_mm] * 3, origin, direction)
    inside = np.argwhere(a.outside_mm <= -2)[:, ::-1]
    chosen = inside[np.random.default_rng(seed + 7).choice(len(inside), 2000, replace=False)]
    brain_points = np.array([ref.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in chosen], float)
    return HeadMRI(image, sitk.Cast(mask, sitk.sitkUInt8), brain_points)


@dataclass
class ShrinkCase:
    moving: sitk.Image  # light-sheet-like, brain only, shrunk, rotated, maybe partial
    truth: np.ndarray  # 4x4 fixed -> moving (LPS mm): x_m = s R (x_f - c) + c_m
    shrink: float
    angle_deg: float
    coverage: float
    covered_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # brain points inside the stack


def light_sheet(
    shrink: float, angle_deg: float, coverage: float = 1.0, seed: int = 0, spacing_mm: float = 1.0,
    brain_points: np.ndarray | None = None, side: int = 0,
) -> ShrinkCase:  # fmt: skip
    """The moving image of a shrink case (see the module notes). ``coverage`` < 1 keeps that fraction of
    the brain's extent along the stack axis (image z), from a random end. ``side`` 1 or -1 keeps one
    hemisphere only (LPS x above or below the brain's centre: a dissected, cleared hemisphere), in a box
    around it."""
    a = anatomy()
    rng = np.random.default_rng(seed)
    rotation = random_rotation(angle_deg, rng)
    center = a.brain_center()
    moving_center = rng.uniform(-60, 60, 3) + np.array([300.0, -200.0, 500.0])  # a frame of its own
    linear = shrink * rotation
    truth = np.eye(4)
    truth[:3, :3] = linear
    truth[:3, 3] = moving_center - linear @ center
    inverse = np.linalg.inv(truth)
    # The moving box: the brain's bounding box mapped through the truth, plus a margin.
    inside = np.argwhere(a.outside_mm <= 0)[:, ::-1].astype(float)
    to_physical = np.linalg.inv(a.to_index)
    brain = inside[:: 37] @ to_physical[:3, :3].T + to_physical[:3, 3]
    if side:
        brain = brain[side * (brain[:, 0] - center[0]) > 0]
    mapped = brain @ truth[:3, :3].T + truth[:3, 3]
    low, high = mapped.min(axis=0) - 6, mapped.max(axis=0) + 6
    if coverage < 1.0:
        extent = mapped[:, 2].max() - mapped[:, 2].min()
        if rng.uniform() < 0.5:
            high[2] = mapped[:, 2].min() + coverage * extent
        else:
            low[2] = mapped[:, 2].max() - coverage * extent
    size = np.ceil((high - low) / spacing_mm).astype(int) + 1
    points = _grid_points(size, [spacing_mm] * 3, low)
    anatomy_points = points @ inverse[:3, :3].T.astype(np.float32) + inverse[:3, 3].astype(np.float32)
    sigma = 0.5 * spacing_mm / shrink  # the anatomy's sampling distance, against aliasing
    arrays = tuple((ndimage.gaussian_filter(x, sigma * 0.5), 0.0) for x in (a.grey, a.white, a.csf))
    grey, white, csf = a.lookup(anatomy_points, arrays)
    if side:
        kept = (side * (anatomy_points[..., 0] - center[0]) > 0).astype(np.float32)
        grey, white, csf = grey * kept, white * kept, csf * kept
    signal = 0.45 * grey + 1.0 * white + 0.12 * csf  # autofluorescence-like: white brightest, CSF dark
    tissue = np.clip(grey + white + csf, 0, 1)
    # Illumination from the low-x side: attenuation with depth into the tissue, and stripes along x.
    depth = np.cumsum(tissue, axis=2) * spacing_mm
    signal *= np.exp(-depth / (140.0 * shrink))
    stripe_rows = 1 + 0.18 * np.sin(rng.uniform(0, 2 * np.pi, size[1])[None, :, None] + 0.0 * depth)
    signal *= np.where(rng.uniform(size=(1, size[1], 1)) < 0.15, stripe_rows, 1.0)
    signal += 0.03 * tissue * ndimage.gaussian_filter(rng.normal(size=signal.shape), 1.5)  # texture
    counts = rng.poisson(np.clip(signal, 0, None) * 400 + 20) / 400.0  # shot noise on a dim background
    image = _image(counts * 1000, [spacing_mm] * 3, low)
    case = ShrinkCase(image, truth, shrink, angle_deg, coverage)
    if brain_points is not None:
        moved = brain_points @ truth[:3, :3].T + truth[:3, 3]
        box_low, box_high = low, low + (size - 1) * spacing_mm
        covered = np.all((moved >= box_low) & (moved <= box_high), axis=1)
        if side:
            covered &= side * (brain_points[:, 0] - center[0]) > 0
        case.covered_points = brain_points[covered]
    return case


def mean_error(estimate: np.ndarray, truth: np.ndarray, points: np.ndarray) -> float:
    """Mean distance (mm, in the fixed image's frame) between ``points`` and where the estimate sends them
    mapped back through the truth: both 4x4 fixed -> moving matrices."""
    back = np.linalg.inv(truth) @ estimate
    difference = points @ back[:3, :3].T + back[:3, 3] - points
    return float(np.linalg.norm(difference, axis=1).mean())


# ----------------------------------------------------------------------------------- 2D: one section
# Ruifrok & Johnston (2001) stain optical-density vectors (RGB), normalised: hematoxylin, eosin, DAB.
STAINS = {
    "hematoxylin": np.array([0.650, 0.704, 0.286]),
    "eosin": np.array([0.072, 0.990, 0.105]),
    "dab": np.array([0.268, 0.570, 0.776]),
}


def _plane_points(size, spacing, origin, z_mm) -> np.ndarray:
    """(rows, columns, 3) LPS points of a 2D grid (x along columns, y along rows) at height ``z_mm``."""
    x = origin[0] + spacing * np.arange(size[0])
    y = origin[1] + spacing * np.arange(size[1])
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return np.stack([xx, yy, np.full_like(xx, z_mm)], axis=-1).astype(np.float32)


def _image2d(array: np.ndarray, spacing: float, origin=(0.0, 0.0), vector: bool = False) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=vector)
    image.SetSpacing([float(spacing)] * 2)
    image.SetOrigin([float(o) for o in origin])
    return image


def mni_slice(z_mm: float = 10.0, spacing_mm: float = 0.5, seed: int = 0) -> tuple[sitk.Image, np.ndarray]:
    """A 2D T1-like MR slice of the whole head (brain, CSF, skull, scalp) at LPS height ``z_mm``, on an
    axis-aligned grid; and 500 in-plane points (x, y mm) inside the brain, for errors."""
    a = anatomy()
    ref = a.reference
    corners = np.array([ref.TransformIndexToPhysicalPoint([int(i), int(j), 0]) for i in (0, ref.GetSize()[0] - 1)
                        for j in (0, ref.GetSize()[1] - 1)])  # fmt: skip
    low, high = corners[:, :2].min(axis=0), corners[:, :2].max(axis=0)
    size = (np.floor((high - low) / spacing_mm) + 1).astype(int)
    points = _plane_points(size, spacing_mm, low, z_mm)
    arrays = tuple((ndimage.gaussian_filter(x, 0.4), 0.0) for x in (a.grey, a.white, a.csf))
    grey, white, csf = a.lookup(points, arrays)
    (outside,) = a.lookup(points, ((a.outside_mm, 99.0),))
    t1 = 0.55 * grey + 0.85 * white + 0.15 * csf
    for lo, hi, value in ((0, 3, 0.12), (3, 9, 0.06), (9, 15, 0.7)):
        layer = np.clip(np.minimum(outside - lo, hi - outside) + 0.5, 0, 1) * (outside > 0)
        t1 = t1 * (1 - layer) + value * layer
    rng = np.random.default_rng(seed)
    t1 = np.abs(t1 + rng.normal(0, 0.02, t1.shape) + 1j * rng.normal(0, 0.02, t1.shape))
    inside = np.argwhere(outside <= -2)
    chosen = inside[rng.choice(len(inside), 500, replace=False)]
    brain_points = low + chosen[:, ::-1] * spacing_mm
    return _image2d((1000 * t1).astype(np.float32), spacing_mm, low), brain_points


def rigid2d(angle_deg: float, shift, center=(0.0, 0.0), scale=(1.0, 1.0), shear: float = 0.0, mirror=False) -> np.ndarray:
    """3x3 homogeneous 2D transform x -> R S x + t about ``center`` (then shifted by ``shift``)."""
    theta = np.radians(angle_deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    linear = rotation @ np.array([[scale[0], shear], [0.0, scale[1]]])
    if mirror:
        linear = linear @ np.diag([-1.0, 1.0])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = np.asarray(center) - linear @ np.asarray(center) + np.asarray(shift)
    return matrix


def histology_rgb(
    truth: np.ndarray, z_mm: float = 10.0, pixel_mm: float = 0.2, size_mm=(150.0, 180.0), seed: int = 0,
    tear: bool = False, side: int = 0, coronal: bool = False,
) -> sitk.Image:  # fmt: skip
    """An H&E-like RGB section (uint8, 3 components) of the brain at height ``z_mm``: hematoxylin from cell
    density (grey matter > white matter), eosin from the tissue (white matter more eosinophilic), glass
    white outside the brain; uneven illumination, texture and noise. ``truth`` (3x3) maps MR-slice
    (fixed) points to section (moving) points: the section's pixel (i, j) is at (i, j) * ``pixel_mm``. ``side``
    1 or -1 keeps one hemisphere (LPS x above or below the brain's centre). ``coronal``: the plane at LPS y =
    ``z_mm`` instead, its second axis along LPS z."""
    a = anatomy()
    rng = np.random.default_rng(seed)
    size = (np.asarray(size_mm) / pixel_mm).astype(int)
    grid = _plane_points(size, pixel_mm, (0.0, 0.0), 0.0)[..., :2].reshape(-1, 2)
    inverse = np.linalg.inv(truth)
    fixed_points = grid @ inverse[:2, :2].T + inverse[:2, 2]
    points = np.concatenate([fixed_points, np.full((len(grid), 1), z_mm)], axis=1)
    points = (points[:, [0, 2, 1]] if coronal else points).reshape(size[1], size[0], 3)
    grey, white, csf = a.lookup(points.astype(np.float32), smoothed(0.3))
    if side:
        kept = side * (points[..., 0] - a.brain_center()[0]) > 0
        grey, white, csf = grey * kept, white * kept, csf * kept
    tissue = np.clip(grey + white + csf, 0, 1)
    texture = 1 + 0.15 * ndimage.gaussian_filter(rng.normal(size=tissue.shape), 1.0)
    hematoxylin = (0.75 * grey + 0.25 * white + 0.1 * csf) * texture
    eosin = (0.35 * grey + 0.6 * white + 0.05 * csf) * texture
    if tear:  # a torn strip: tissue missing along a random line
        yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
        angle = rng.uniform(0, np.pi)
        distance = (xx - size[0] / 2) * np.cos(angle) + (yy - size[1] / 2) * np.sin(angle) - rng.uniform(-20, 20) / pixel_mm
        gap = np.abs(distance) < rng.uniform(1.0, 3.0) / pixel_mm
        hematoxylin[gap], eosin[gap] = 0, 0
    density = hematoxylin[..., None] * STAINS["hematoxylin"] + eosin[..., None] * STAINS["eosin"]
    yy, xx = np.mgrid[-1 : 1 : size[1] * 1j, -1 : 1 : size[0] * 1j]
    light = 245 * (1 - 0.06 * (xx**2 + yy**2))[..., None]
    rgb = light * np.power(10.0, -density) + rng.normal(0, 3.0, density.shape)
    return _image2d(np.clip(rgb, 0, 255).astype(np.uint8), pixel_mm, vector=True)


# ----------------------------------------------------------------------------------- serial sections
@dataclass
class SectionStack:
    paths: list  # section files in order (a missing one is an empty file)
    truth: np.ndarray  # (N, 3, 3): x_in = truth[i] @ x_out (mm), x_out in the volume's section plane
    damage: dict  # section index -> "missing" | "blank" | "torn" | "small"
    pixel_mm: float
    section_mm: float
    plane_points: np.ndarray  # (N, M, 2) x_out points inside each section's tissue, for errors


def section_stack(
    folder: Path, count: int = 32, pixel_mm: float = 0.5, section_mm: float = 3.0, max_deg: float = 12.0,
    max_mm: float = 8.0, damaged: bool = True, seed: int = 0, canvas_mm=(190.0, 220.0), first_z: float | None = None,
) -> SectionStack:  # fmt: skip
    """Axial sections of the MNI brain every ``section_mm``, each an H&E-like RGB PNG at ``pixel_mm`` on a
    canvas of ``canvas_mm``, moved in-plane by a random rigid motion (up to ``max_deg`` about the canvas
    centre and ``max_mm``). With ``damaged``: one missing (an empty file), one blank (glass only), one
    torn, one much smaller (a fragment). Written one at a time (bounded memory)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a = anatomy()
    rng = np.random.default_rng(seed)
    center_mm = np.asarray(canvas_mm) / 2
    brain_center = a.brain_center()
    if first_z is None:
        first_z = brain_center[2] - section_mm * (count - 1) / 2
    damage = {}
    if damaged and count >= 12:
        picks = rng.choice(np.arange(2, count - 2), 4, replace=False)
        damage = dict(zip((int(p) for p in picks), ("missing", "blank", "torn", "small")))
    truths, paths, plane_points = [], [], []
    for index in range(count):
        angle = rng.uniform(-max_deg, max_deg)
        shift = rng.uniform(-1, 1, 2)
        shift = shift / max(np.linalg.norm(shift), 1e-9) * rng.uniform(0, max_mm)
        truth = rigid2d(angle, shift, center=center_mm)  # x_in = truth @ x_out
        z = first_z + index * section_mm
        # The volume plane puts the brain centre at the canvas centre: x_out -> template (x, y) = x_out - c + b.
        to_template = np.eye(3)
        to_template[:2, 2] = brain_center[:2] - center_mm
        section_from_template = truth @ np.linalg.inv(to_template)  # template (x, y) -> section image
        path = folder / f"section_{index:04d}.png"
        kind = damage.get(index)
        if kind == "missing":
            path.write_bytes(b"")
        else:
            image = histology_rgb(section_from_template, z, pixel_mm, size_mm=canvas_mm, seed=seed * 1000 + index,
                                  tear=kind == "torn")  # fmt: skip
            array = sitk.GetArrayFromImage(image)
            if kind == "blank":
                array[:] = np.clip(array.max(axis=(0, 1)) - rng.integers(0, 4, array.shape), 0, 255).astype(np.uint8)
            elif kind == "small":  # only a corner fragment of the tissue survived
                rows, columns = array.shape[:2]
                keep = np.zeros((rows, columns), bool)
                keep[: rows // 2, : columns // 2] = True
                glass = np.percentile(array.reshape(-1, 3), 99, axis=0).astype(np.uint8)
                array[~keep] = glass
            from PIL import Image

            Image.fromarray(array).save(path)
        # Points for errors: inside the brain in this section's plane (volume frame).
        grid = np.stack(np.meshgrid(np.arange(10, canvas_mm[0] - 10, 4.0), np.arange(10, canvas_mm[1] - 10, 4.0)), -1).reshape(-1, 2)
        template = grid - center_mm + brain_center[:2]
        (outside,) = a.lookup(np.concatenate([template, np.full((len(grid), 1), z)], 1).astype(np.float32), ((a.outside_mm, 99.0),))
        inside = grid[outside <= -1]
        if len(inside) < 10:
            inside = grid[np.linalg.norm(grid - center_mm, axis=1) < 40]
        plane_points.append(inside[:: max(1, len(inside) // 300)][:300])
        truths.append(truth)
        paths.append(path)
    width = max(len(p) for p in plane_points)
    padded = np.stack([np.concatenate([p, np.repeat(p[-1:], width - len(p), 0)]) for p in plane_points])
    return SectionStack(paths, np.stack(truths), damage, pixel_mm, section_mm, padded)
