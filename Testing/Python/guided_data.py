"""Generated cases with exact truth for registration guided by segmentations and landmarks.

* :func:`ultrasound_like_pair`: an MR (fixed) with an inserted gland, and a transrectal-ultrasound-like
  moving image of the same anatomy moved by a rigid pose and a probe-push deformation.
* :func:`pelvis_like_pair`: a CT (fixed) and an MR (moving) of a pelvis whose bones each move rigidly on
  top of one global pose, the soft tissue between them following smoothly.
* :func:`write_pair`: either pair as files: images, labelmaps with Slicer segment names, markups in RAS
  and the truth as ITK .h5.

Images are SimpleITK images in LPS mm; every truth :class:`Transform` maps fixed points to moving points
(LPS mm). The anatomy is analytic and each image is sampled on its own grid through the exact inverse of
the truth, so images, labelmaps and points agree without resampling blur.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import corner_points, index_to_physical_matrix, physical_center, write_image
from MultimodalRegistrationLib.core.labels import set_label_names
from MultimodalRegistrationLib.core.phantom import TISSUES, add_bias_and_noise, tissue_fractions
from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points, rigid_transform
from MultimodalRegistrationLib.landmarks.points_io import write_markups_json

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
MNI_T1 = SHARED_DATA / "mni_icbm152" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
PHANTOM_CENTER = (0.0, 0.0, 10.0)  # LPS mm: ventricles, white and grey matter around it

BEAM = np.array([0.0, -1.0, 0.0])  # the probe looks anterior (LPS -y) in the moving frame
APEX_BEHIND_GLAND_MM = 42.0  # the fan's virtual apex behind the moved gland centre
PROBE_RADIUS_MM = 20.0  # beams start this far from the apex (a convex probe's surface)
FAN_HALF_ANGLES_DEG = (45.0, 40.0)  # lateral, elevation
PUSH_SIGMA_MM = 14.0
LATERAL = np.array([1.0, 0.0, 0.0])
ELEVATION = np.array([0.0, 0.0, 1.0])

GLAND_NAMES = {1: "gland", 2: "urethra"}
BONE_NAMES = {1: "sacrum", 2: "left_hip", 3: "right_hip", 4: "left_femur"}

# The sizes a benchmark uses (the defaults are the small test sizes, at most 64 voxels per axis).
BENCH_ULTRASOUND = dict(size_mm=120.0, spacing_mm=0.8, us_size_mm=(80.0, 72.0, 72.0), us_spacing_mm=(0.5, 0.5, 0.7))
BENCH_PELVIS = dict(spacing_mm=1.5, moving_spacing_mm=(1.4, 1.4, 2.0))


# geometry helpers -----------------------------------------------------------------------------------------
def _grid(center, extent_mm, spacing_mm) -> sitk.Image:
    """An empty float image (identity direction) centred on ``center``, ``extent_mm`` wide per axis (LPS mm)."""
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (3,))
    size = np.maximum(np.round(np.broadcast_to(np.asarray(extent_mm, float), (3,)) / spacing).astype(int), 2)
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in np.asarray(center, float) - (size - 1) * spacing / 2))
    return image


def _index_grid(shape) -> np.ndarray:
    """Voxel indices (i, j, k) of an array shaped (z, y, x), as (z, y, x, 3)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    return np.stack([i, j, k], axis=-1)


def _points(image: sitk.Image) -> np.ndarray:
    """Every voxel centre of ``image`` in LPS mm, shaped (z, y, x, 3)."""
    matrix = index_to_physical_matrix(image)
    return _index_grid(image.GetSize()[::-1]) @ matrix[:3, :3].T + matrix[:3, 3]


def _image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def _sample(image: sitk.Image, points: np.ndarray, default: float = 0.0) -> np.ndarray:
    """``image`` linearly interpolated at LPS points shaped (z, y, x, 3); ``default`` outside it."""
    shape = points.shape[:-1]
    reference = sitk.Image([int(n) for n in shape[::-1]], sitk.sitkFloat32)  # origin 0, spacing 1: index = mm
    field = sitk.GetImageFromArray((points - _index_grid(shape)).astype(np.float64), isVector=True)
    resampled = sitk.Resample(
        image, reference, sitk.DisplacementFieldTransform(field), sitk.sitkLinear, default, sitk.sitkFloat32
    )
    return sitk.GetArrayFromImage(resampled)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (..., 3) through a 4x4 homogeneous matrix."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _membership(distance: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume fraction (0..1) from a signed distance (mm, positive inside) over a ramp ``width`` mm wide."""
    return np.clip(0.5 + distance / width, 0.0, 1.0)


def _smooth_noise(shape, sigma, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise smoothed by ``sigma`` voxels (one value or one per x, y, z axis), scaled to unit deviation."""
    noise = sitk.GetImageFromArray(rng.standard_normal(shape).astype(np.float32))
    variance = [float(s) ** 2 for s in np.broadcast_to(np.asarray(sigma, float), (3,))]
    smooth = sitk.GetArrayFromImage(sitk.DiscreteGaussian(noise, variance, 32, 0.01, False))
    return smooth / max(float(smooth.std()), 1e-6)


def _ellipsoid(p: np.ndarray, center, radii) -> np.ndarray:
    """Approximate signed distance (mm, positive inside) to an axis-aligned ellipsoid."""
    radii = np.asarray(radii, float)
    return (1.0 - np.linalg.norm((p - np.asarray(center, float)) / radii, axis=-1)) * radii.min()


def _shell(p: np.ndarray, center, radii, thickness: float) -> np.ndarray:
    """Approximate signed distance (mm) to an ellipsoidal shell ``thickness`` mm thick inside ``radii``."""
    return np.minimum(_ellipsoid(p, center, radii), -_ellipsoid(p, center, np.asarray(radii, float) - thickness))


def _half_space(p: np.ndarray, point, normal) -> np.ndarray:
    """Signed distance (mm) to the plane through ``point``, positive on the side ``normal`` points to."""
    normal = np.asarray(normal, float)
    return (p - np.asarray(point, float)) @ (normal / np.linalg.norm(normal))


def _random_rigid(rng: np.random.Generator, angle_deg, shift_mm, center, direction=None) -> Transform:
    """A rigid transform about ``center`` (LPS mm): rotation ``angle_deg`` about a random axis, then a shift of
    ``shift_mm`` along ``direction`` (default random); a (low, high) pair draws the value uniformly."""
    angle = rng.uniform(*angle_deg) if np.ndim(angle_deg) else float(angle_deg)
    shift = rng.uniform(*shift_mm) if np.ndim(shift_mm) else float(shift_mm)
    axis = rng.normal(size=3)
    direction = rng.normal(size=3) if direction is None else np.asarray(direction, float)
    return rigid_transform(angle, axis, shift * direction / np.linalg.norm(direction), center=center)


def _distinct_directions(rng: np.random.Generator, count: int) -> np.ndarray:
    """Up to 4 unit vectors 109.5 degrees apart: a randomly turned tetrahedron's vertices."""
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    vertices = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3.0)
    return (vertices @ rotation.T)[:count]


def _with_names(labels: np.ndarray, like: sitk.Image, names: dict[int, str]) -> sitk.Image:
    """A UInt8 labelmap on ``like``'s grid carrying Slicer's single-layer .seg.nrrd segment metadata."""
    return set_label_names(_image(labels.astype(np.uint8), like), names)


# the ultrasound-like case ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gland:
    """An irregular gland with a curved urethra, calcifications and a cyst (fixed LPS mm).

    The surface is star-shaped: an ellipsoid (``radii``, mm) whose radius is modulated by low-order
    terms of the direction (``shape`` weights). Signed distances are radial approximations (mm, positive
    inside); their zero sets are the exact surfaces used by the labelmaps.
    """

    center: np.ndarray
    radii: np.ndarray
    shape: np.ndarray
    calcifications: np.ndarray  # (3, 3) centres
    cyst: np.ndarray  # (3,) centre
    urethra_radius: float = 3.0
    calcification_radius: float = 1.6
    cyst_radius: float = 3.5

    @staticmethod
    def _terms(d: np.ndarray) -> np.ndarray:
        x, y, z = d[..., 0], d[..., 1], d[..., 2]
        return np.stack([z, x * y, y * z, z * x, x * x - y * y, 1.5 * z * z - 0.5, 3.0 * x * y * z], axis=-1)

    def surface_radius(self, directions: np.ndarray) -> np.ndarray:
        """Distance (mm) from the centre to the surface along unit ``directions`` (..., 3)."""
        ellipsoid = 1.0 / np.linalg.norm(directions / self.radii, axis=-1)
        return ellipsoid * (1.0 + self._terms(directions) @ self.shape)

    def distance(self, p: np.ndarray) -> np.ndarray:
        offset = p - self.center
        radius = np.linalg.norm(offset, axis=-1)
        return self.surface_radius(offset / np.maximum(radius, 1e-6)[..., None]) - radius

    def urethra_point(self, s: np.ndarray) -> np.ndarray:
        """The urethra's centre line at height ``s`` (mm above the gland centre, LPS): bowed, 3 mm anterior."""
        s = np.asarray(s, float)
        return self.center + np.stack([0 * s, -3.0 + 0.01 * s * s, s], axis=-1)

    def urethra_distance(self, p: np.ndarray) -> np.ndarray:
        offset = p - self.center
        s = offset[..., 2]
        radial = np.hypot(offset[..., 0], offset[..., 1] - (-3.0 + 0.01 * s * s))
        return np.minimum(self.urethra_radius - radial, 1.35 * self.radii[2] - np.abs(s))

    def calcification_distance(self, p: np.ndarray) -> np.ndarray:
        distances = [self.calcification_radius - np.linalg.norm(p - c, axis=-1) for c in self.calcifications]
        return np.max(distances, axis=0)

    def cyst_distance(self, p: np.ndarray) -> np.ndarray:
        return self.cyst_radius - np.linalg.norm(p - self.cyst, axis=-1)

    def labels(self, p: np.ndarray) -> np.ndarray:
        """1 inside the gland, 2 in the urethra, 0 elsewhere, at points (..., 3)."""
        labels = (self.distance(p) > 0).astype(np.uint8)
        labels[self.urethra_distance(p) > 0] = 2
        return labels

    def urethra_ends(self) -> np.ndarray:
        """Where the urethra's centre line crosses the surface: (base (superior), apex (inferior)), LPS mm."""
        ends = []
        for sign in (1.0, -1.0):
            inside, outside = 0.0, sign * 2.0 * self.radii.max()
            for _ in range(60):
                middle = 0.5 * (inside + outside)
                if self.distance(self.urethra_point(middle)) > 0:
                    inside = middle
                else:
                    outside = middle
            ends.append(self.urethra_point(0.5 * (inside + outside)))
        return np.array(ends)


def make_gland(center, rng: np.random.Generator, scale: float = 1.0) -> Gland:
    """A random gland about 40 x 30 x 34 mm (times ``scale``) centred at ``center`` (LPS mm)."""
    radii = np.array([20.0, 15.0, 17.0]) * scale
    shape = np.concatenate([[0.08], rng.uniform(-0.07, 0.07, 6)])
    bare = Gland(np.asarray(center, float), radii, shape, np.zeros((0, 3)), np.zeros(3))
    candidates = bare.center + rng.uniform(-1, 1, (4000, 3)) * radii
    depth, urethra = bare.distance(candidates), bare.urethra_distance(candidates)
    chosen: list[np.ndarray] = []
    for point, inside, tube in zip(candidates, depth, urethra):
        wanted_depth = 5.0 if len(chosen) < 3 else 7.0
        if inside > wanted_depth and tube < -4.0 and all(np.linalg.norm(point - c) > 9.0 for c in chosen):
            chosen.append(point)
        if len(chosen) == 4:
            break
    return Gland(bare.center, radii, shape, np.array(chosen[:3]), chosen[3])


@dataclass(frozen=True)
class ProbePush:
    """A probe pushing tissue by ``amount_mm`` along unit ``direction`` around ``point`` (fixed LPS mm).

    Displacement u(x) = g(x) (amount n + bulge (x - p)_perp / sigma), g = exp(-|x - p|^2 / (2 sigma^2)): the
    gland is squeezed from the probe's side and bulges sideways. The largest displacement gradient is
    about (amount + bulge) * 0.6 / sigma, well below 1, so the map x -> x + u(x) is invertible.
    """

    point: np.ndarray
    direction: np.ndarray
    amount_mm: float
    bulge_mm: float
    sigma_mm: float

    def _parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offset from the point, Gaussian weight, undamped displacement) at points (..., 3)."""
        offset = x - self.point
        across = offset - (offset @ self.direction)[..., None] * self.direction
        weight = np.exp(-np.einsum("...i,...i->...", offset, offset) / (2.0 * self.sigma_mm**2))[..., None]
        return offset, weight, self.amount_mm * self.direction + self.bulge_mm * across / self.sigma_mm

    def displacement(self, x: np.ndarray) -> np.ndarray:
        """u(x) in mm at fixed LPS points (..., 3)."""
        _, weight, push = self._parts(x)
        return weight * push

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x + self.displacement(x)

    def inverse(self, y: np.ndarray, iterations: int = 20) -> np.ndarray:
        """The x with x + u(x) = y (LPS mm), by Newton's method with the analytic Jacobian (to 1e-9 mm)."""
        y = np.asarray(y, float)
        flat = y.reshape(-1, 3)
        x = flat - self.displacement(flat)
        active = np.arange(len(flat))
        for _ in range(iterations):
            offset, weight, push = self._parts(x[active])
            residual = x[active] + weight * push - flat[active]
            moving_on = np.abs(residual).max(axis=-1) >= 1e-9
            if not moving_on.any():
                break
            active = active[moving_on]
            step = self._newton_step(offset[moving_on], weight[moving_on], push[moving_on], residual[moving_on])
            x[active] -= step
        return x.reshape(y.shape)

    def _newton_step(self, offset, weight, push, residual) -> np.ndarray:
        """Solve (I + grad u) step = residual. grad u = c P - a o^T with c = weight bulge / sigma, P the projector
        across the push, a = weight push / sigma^2 and o the offset: I + c P inverts in closed form and the
        rank-one term by Sherman-Morrison."""
        shrink = (weight * self.bulge_mm / self.sigma_mm) / (1.0 + weight * self.bulge_mm / self.sigma_mm)

        def solve_diagonal(v: np.ndarray) -> np.ndarray:
            return v - shrink * (v - (v @ self.direction)[..., None] * self.direction)

        rank_one = weight * push / self.sigma_mm**2
        solved, solved_rank_one = solve_diagonal(residual), solve_diagonal(rank_one)
        scale = np.sum(offset * solved, axis=-1) / (1.0 - np.sum(offset * solved_rank_one, axis=-1))
        return solved + solved_rank_one * scale[..., None]


def _field_transform(push: ProbePush, grid: sitk.Image) -> Transform:
    """The push as a displacement-field transform on ``grid`` (fixed LPS mm), with its exact inverse field."""
    points = _points(grid)

    def field(values: np.ndarray) -> sitk.DisplacementFieldTransform:
        image = sitk.GetImageFromArray(values.astype(np.float64), isVector=True)
        image.CopyInformation(grid)
        return sitk.DisplacementFieldTransform(image)

    inverse = Transform(field(push.inverse(points) - points))
    return Transform(field(push.displacement(points)), inverse=inverse)


@dataclass(frozen=True)
class Fan:
    """A 3D sector of beams from a (virtual) ``apex`` (moving LPS mm) along BEAM, sampled on a polar grid.

    Beam direction at lateral angle t and elevation angle e: cos(e) sin(t) LATERAL + sin(e) ELEVATION +
    cos(e) cos(t) BEAM. Polar arrays are shaped (elevation, lateral, depth); depth runs from ``r_min`` (the
    probe surface) to ``r_max`` mm.
    """

    apex: np.ndarray
    r_min: float
    r_max: float
    lateral_rad: float
    elevation_rad: float
    shape: tuple[int, int, int]

    @classmethod
    def covering(cls, apex, r_min, box: sitk.Image, lateral_deg, elevation_deg, dr, d_angle) -> Fan:
        """The fan from ``apex`` reaching every corner of ``box``, sampled every ``dr`` mm and ``d_angle`` rad."""
        corners = corner_points(box)
        r_max = float(np.linalg.norm(corners - apex, axis=1).max())
        lateral, elevation = np.deg2rad(lateral_deg), np.deg2rad(elevation_deg)
        shape = (
            int(np.ceil(2 * elevation / d_angle)) + 1,
            int(np.ceil(2 * lateral / d_angle)) + 1,
            int(np.ceil((r_max - r_min) / dr)) + 1,
        )
        return cls(np.asarray(apex, float), float(r_min), r_max, lateral, elevation, shape)

    @property
    def dr(self) -> float:
        return (self.r_max - self.r_min) / (self.shape[2] - 1)

    def polar_points(self) -> np.ndarray:
        """LPS mm of every polar sample, shaped (elevation, lateral, depth, 3)."""
        e = np.linspace(-self.elevation_rad, self.elevation_rad, self.shape[0])[:, None, None, None]
        t = np.linspace(-self.lateral_rad, self.lateral_rad, self.shape[1])[None, :, None, None]
        r = np.linspace(self.r_min, self.r_max, self.shape[2])[None, None, :, None]
        direction = np.cos(e) * np.sin(t) * LATERAL + np.sin(e) * ELEVATION + np.cos(e) * np.cos(t) * BEAM
        return self.apex + r * direction

    def polar_index(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous polar indices (depth, lateral, elevation) of LPS points (..., 3), and whether inside the fan."""
        offset = points - self.apex
        r = np.linalg.norm(offset, axis=-1)
        elevation = np.arcsin(np.clip(offset @ ELEVATION / np.maximum(r, 1e-9), -1, 1))
        lateral = np.arctan2(offset @ LATERAL, offset @ BEAM)
        index = np.stack(
            [
                (r - self.r_min) / self.dr,
                (lateral + self.lateral_rad) / (2 * self.lateral_rad) * (self.shape[1] - 1),
                (elevation + self.elevation_rad) / (2 * self.elevation_rad) * (self.shape[0] - 1),
            ],
            axis=-1,
        )
        limits = np.array([self.shape[2], self.shape[1], self.shape[0]]) - 1
        inside = np.all((index >= 0) & (index <= limits), axis=-1) & (offset @ BEAM > 0)
        return index, inside


@dataclass
class GuidedPair:
    """An MR (fixed) and an ultrasound-like image (moving) with segmentations, landmarks and exact truth.

    ``truth`` maps fixed to moving points (LPS mm): ``rigid @ deformation``, the deformation the analytic
    probe push sampled as a displacement field on a 2 mm grid (within 0.05 mm of the analytic map the images
    were rendered with, :meth:`truth_points`), its inverse field attached (``truth.inverse()``). Targets are
    in and on the gland (the last quarter on its surface); landmarks are features a user would click
    (calcifications, the cyst, the urethra's ends): ``landmarks_moving`` are clicks with noise,
    ``landmarks_moving_true`` where they truly are.
    """

    fixed: sitk.Image  # MR-like, Float32
    moving: sitk.Image  # ultrasound-like, Float32 in 0..255, 0 outside the fan
    fixed_labels: sitk.Image  # UInt8: 1 gland, 2 urethra, Slicer segment names in the metadata
    moving_labels: sitk.Image
    moving_mask: sitk.Image  # UInt8: 1 inside the ultrasound fan
    names: dict[int, str]
    truth: Transform
    rigid: Transform
    deformation: Transform
    targets_fixed: np.ndarray  # (N, 3) LPS mm
    targets_moving: np.ndarray  # truth.transform_points(targets_fixed)
    landmarks_fixed: np.ndarray  # (6, 3) LPS mm
    landmarks_moving: np.ndarray  # clicked: true position plus noise
    landmarks_moving_true: np.ndarray
    landmark_labels: list[str]
    gland: Gland
    push: ProbePush
    fan: Fan

    def truth_points(self, fixed_points_lps: np.ndarray) -> np.ndarray:
        """The analytic fixed -> moving map (LPS mm) the images were rendered with."""
        return self.rigid.transform_points(self.push.forward(np.asarray(fixed_points_lps, float)))

    def fixed_points_of(self, moving_points_lps: np.ndarray) -> np.ndarray:
        """The analytic moving -> fixed map (LPS mm)."""
        return self.push.inverse(_apply(self.rigid.inverse().matrix, np.asarray(moving_points_lps, float)))


def mni_source() -> sitk.Image | None:
    """The MNI ICBM152 2009a T1 (1 mm, Float32) from ../shared/data, or None when it is absent."""
    return sitk.ReadImage(str(MNI_T1), sitk.sitkFloat32) if MNI_T1.exists() else None


def _source_values(source: sitk.Image | None, points: np.ndarray) -> np.ndarray:
    """The source MR at LPS points (..., 3): the analytic head phantom's T1 values when ``source`` is None."""
    if source is not None:
        return _sample(source, points)
    fractions = tissue_fractions(points.astype(np.float32))
    return sum(TISSUES[name][1] * fraction for name, fraction in fractions.items()).astype(np.float32)


def _mr_with_gland(values: np.ndarray, points: np.ndarray, gland: Gland, voxel: float, rng) -> np.ndarray:
    """Insert the gland into MR ``values`` at ``points``: its own level (about 18% of the range off its
    surroundings), a brighter rim, texture, bright urethra and cyst, dark calcifications, and noise."""
    low, high = np.percentile(values, [2, 98])
    span = high - low
    inside = gland.distance(points)
    local = float(np.median(values[inside > 0]))
    level = local - 0.18 * span if local > (low + high) / 2 else local + 0.18 * span
    texture = _smooth_noise(values.shape, 1.5, rng)
    rim = _membership(4.0 - inside, 2.0)
    out = values + _membership(inside, voxel) * (level + (0.08 * rim + 0.04 * texture) * span - values)
    for distance, value in (
        (gland.urethra_distance(points), level + 0.25 * span),
        (gland.cyst_distance(points), level + 0.35 * span),
        (gland.calcification_distance(points), low),
    ):
        out += _membership(distance, voxel) * (value - out)
    return (out + rng.normal(0.0, 0.015 * span, out.shape)).astype(np.float32)


@dataclass(frozen=True)
class Waves:
    """A smooth random field attached to the anatomy (fixed LPS mm): a sum of plane waves, unit deviation."""

    vectors: np.ndarray  # (K, 3) rad/mm
    phases: np.ndarray  # (K,)

    @classmethod
    def random(cls, rng: np.random.Generator, count: int = 8, wavelengths_mm=(10.0, 25.0)) -> Waves:
        directions = rng.normal(size=(count, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        vectors = directions * (2 * np.pi / rng.uniform(*wavelengths_mm, (count, 1)))
        return cls(vectors, rng.uniform(0, 2 * np.pi, count))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return np.sqrt(2.0 / len(self.phases)) * np.cos(p @ self.vectors.T + self.phases).sum(axis=-1)


def _echo(values_n: np.ndarray, x: np.ndarray, gland: Gland, fan: Fan, waves: Waves, rng) -> np.ndarray:
    """Ultrasound amplitude on the fan's polar grid from the tissue at fixed points ``x`` (elevation, lateral,
    depth, 3): echogenicity by tissue (not monotone in the MR: the same for its darkest and brightest, and
    modulated by ``waves``, structure the MR does not show), a bright capsule, specular echoes at impedance
    steps along the beam, Rayleigh speckle, shadows behind calcifications and depth loss."""
    inside = gland.distance(x)
    gland_part = _membership(inside, 0.8)
    calcification = _membership(gland.calcification_distance(x), 0.6)
    rim = _membership(4.0 - inside, 2.0)
    background = (0.3 + 0.45 * (0.5 + 0.5 * np.cos(2 * np.pi * values_n + 0.3))) * np.clip(
        1 + 0.4 * waves(x), 0.2, None
    )
    texture = _smooth_noise(values_n.shape, (2.0, 1.5, 1.5), rng)
    echo = background + gland_part * (0.5 * (1 - 0.4 * rim) * (1 + 0.3 * texture) - background)
    for distance, value in ((gland.urethra_distance(x), 0.08), (gland.cyst_distance(x), 0.03)):
        echo += _membership(distance, 0.8) * (value - echo)
    echo = np.maximum(echo, 0.01)
    echo += calcification * (4.0 - echo) + 0.9 * np.exp(-((inside / 0.9) ** 2))
    impedance = 1.0 + 0.5 * values_n * (1 - gland_part) + 0.35 * gland_part + 2.0 * calcification
    reflection = np.abs(np.gradient(impedance, fan.dr, axis=-1))
    loss = np.cumsum((1.6 * calcification + 0.5 * reflection**2) * fan.dr, axis=-1)
    speckle = np.hypot(
        _smooth_noise(values_n.shape, (0.7, 1.2, 1.2), rng), _smooth_noise(values_n.shape, (0.7, 1.2, 1.2), rng)
    )
    speckle /= np.sqrt(np.mean(speckle**2))
    depth = np.linspace(0.0, 1.0, fan.shape[2])
    return (echo * speckle + 0.8 * reflection) * np.exp(-loss) * (1.0 - 0.3 * depth)


def _log_compress(amplitude: np.ndarray, dynamic_range_db: float = 50.0) -> np.ndarray:
    """Amplitude to grey levels 0..255 over ``dynamic_range_db`` below the 99.5th percentile."""
    decibels = 20.0 * np.log10(np.maximum(amplitude, 0.0) + 1e-4)
    top = np.percentile(decibels, 99.5)
    return (np.clip((decibels - top + dynamic_range_db) / dynamic_range_db, 0.0, 1.0) * 255.0).astype(np.float32)


def _ultrasound(
    source, box: sitk.Image, fan: Fan, moving_to_fixed: Callable, values_range, gland: Gland, rng
) -> tuple[np.ndarray, np.ndarray]:
    """The ultrasound-like grey levels on ``box`` (scan-converted from the fan's polar grid) and the fan mask.
    ``values_range`` (low, high) of the source MR maps it to 0..1 for the echogenicity."""
    x = moving_to_fixed(fan.polar_points())
    low, high = values_range
    values_n = np.clip((_source_values(source, x) - low) / (high - low), 0.0, 1.0)
    polar = sitk.GetImageFromArray(_log_compress(_echo(values_n, x, gland, fan, Waves.random(rng), rng)))
    index, inside = fan.polar_index(_points(box))
    grey = _sample(polar, index) * inside
    return grey.astype(np.float32), inside.astype(np.uint8)


def _targets(gland: Gland, count: int, rng) -> np.ndarray:
    """``count`` points in the gland (three quarters at least 1 mm deep, the rest on the surface), LPS mm."""
    on_surface = count // 4
    candidates = gland.center + rng.uniform(-1, 1, (20 * count, 3)) * gland.radii
    inner = candidates[gland.distance(candidates) > 1.0][: count - on_surface]
    directions = rng.normal(size=(on_surface, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    surface = gland.center + gland.surface_radius(directions)[:, None] * directions
    return np.concatenate([inner, surface])


def ultrasound_like_pair(
    source: sitk.Image | None = None,
    size_mm: float = 84.0,
    spacing_mm: float = 1.4,
    us_size_mm=(64.0, 60.0, 60.0),
    us_spacing_mm=(1.0, 1.0, 1.25),
    seed: int = 0,
    center_lps=None,
    angle_deg=(10.0, 20.0),
    shift_mm=(10.0, 20.0),
    push_mm: float = 5.0,
    click_noise_mm: float = 1.0,
    targets: int = 20,
) -> GuidedPair:
    """An MR -> transrectal-ultrasound-like case with exact truth.

    Fixed: a ``size_mm`` cube of ``source`` (default: the analytic head phantom's T1; see :func:`mni_source`)
    at ``spacing_mm``, around ``center_lps`` (default: the source's centre), with a gland inserted.
    Moving: the anatomy pushed by a probe (``push_mm``) and moved by a rigid pose (``angle_deg`` about the
    gland centre, then ``shift_mm``; a (low, high) pair draws from ``seed``), rendered as ultrasound in a
    fan inside a box ``us_size_mm`` wide (lateral x, depth y, elevation z; LPS mm) at ``us_spacing_mm``.
    ``targets`` points in the gland; 6 landmarks clicked on the moving side with ``click_noise_mm`` RMS (3D).
    """
    rng = np.random.default_rng(seed)
    if center_lps is None:
        center_lps = PHANTOM_CENTER if source is None else physical_center(source)
    fixed_grid = _grid(center_lps, size_mm, spacing_mm)
    gland = make_gland(np.asarray(center_lps, float) + rng.uniform(-4, 4, 3), rng)
    rigid = _random_rigid(rng, angle_deg, shift_mm, gland.center)
    beam_in_fixed = rigid.matrix[:3, :3].T @ BEAM
    push = ProbePush(
        gland.center - beam_in_fixed * float(gland.surface_radius(-beam_in_fixed)),
        beam_in_fixed,
        push_mm,
        0.4 * push_mm,
        PUSH_SIGMA_MM,
    )
    deformation = _field_transform(push, _grid(push.point, 8.0 * push.sigma_mm, 2.0))
    truth = Transform((rigid @ deformation).sitk, inverse=deformation.inverse() @ rigid.inverse())

    fixed_points = _points(fixed_grid)
    source_values = _source_values(source, fixed_points)
    values_range = tuple(np.percentile(source_values, [2, 98]))
    fixed = _image(_mr_with_gland(source_values, fixed_points, gland, float(spacing_mm), rng), fixed_grid)

    moving_center = rigid.transform_points(push.forward(gland.center[None]))[0]
    apex = moving_center - APEX_BEHIND_GLAND_MM * BEAM
    box_center = apex + (PROBE_RADIUS_MM + us_size_mm[1] / 2) * BEAM
    box_center[[0, 2]] = moving_center[[0, 2]]
    box = _grid(box_center, us_size_mm, us_spacing_mm)
    step = float(min(us_spacing_mm))
    fan = Fan.covering(apex, PROBE_RADIUS_MM, box, *FAN_HALF_ANGLES_DEG, 0.8 * step, 1.5 * step / 55.0)
    inverse_matrix = rigid.inverse().matrix

    def moving_to_fixed(points: np.ndarray) -> np.ndarray:
        return push.inverse(_apply(inverse_matrix, points))

    grey, fov = _ultrasound(source, box, fan, moving_to_fixed, values_range, gland, rng)
    moving = _image(grey, box)

    targets_fixed = _targets(gland, targets, rng)
    landmarks_fixed = np.concatenate([gland.calcifications, gland.cyst[None], gland.urethra_ends()])
    landmarks_true = truth.transform_points(landmarks_fixed)
    return GuidedPair(
        fixed=fixed,
        moving=moving,
        fixed_labels=_with_names(gland.labels(fixed_points), fixed_grid, GLAND_NAMES),
        moving_labels=_with_names(gland.labels(moving_to_fixed(_points(box))), box, GLAND_NAMES),
        moving_mask=_image(fov, box),
        names=dict(GLAND_NAMES),
        truth=truth,
        rigid=rigid,
        deformation=deformation,
        targets_fixed=targets_fixed,
        targets_moving=truth.transform_points(targets_fixed),
        landmarks_fixed=landmarks_fixed,
        landmarks_moving=landmarks_true + rng.normal(0.0, click_noise_mm / np.sqrt(3), landmarks_true.shape),
        landmarks_moving_true=landmarks_true,
        landmark_labels=[
            "calcification-1",
            "calcification-2",
            "calcification-3",
            "cyst",
            "urethra-base",
            "urethra-apex",
        ],
        gland=gland,
        push=push,
        fan=fan,
    )


# the pelvis-like case -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bone:
    """One bone: ``distance`` gives its approximate signed distance (mm, positive inside) at fixed LPS points;
    ``center`` (LPS mm) is the centre of its own motion, ``box`` the half-widths (mm) of a box holding it."""

    name: str
    label: int
    center: np.ndarray
    box: np.ndarray
    distance: Callable[[np.ndarray], np.ndarray]


def _sacrum(p: np.ndarray) -> np.ndarray:
    """A rounded block (superellipsoid, power 4) 44 x 24 x 64 mm, its top tilted 25 degrees posterior."""
    angle = np.deg2rad(25.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), np.sin(angle)], [0, -np.sin(angle), np.cos(angle)]])
    local = (p - np.array([0.0, 36.0, 8.0])) @ rotation.T
    radii = np.array([22.0, 12.0, 32.0])
    return (1.0 - np.sum((local / radii) ** 4, axis=-1) ** 0.25) * radii.min()


def _femoral_center(side: float) -> np.ndarray:
    return np.array([side * 62.0, -6.0, -28.0])


def _hip(side: float) -> Callable[[np.ndarray], np.ndarray]:
    """A hip bone on ``side`` (+1 left, -1 right): a bowl-like iliac wing, a pillar and an acetabular cup."""
    femoral = _femoral_center(side)

    def distance(p: np.ndarray) -> np.ndarray:
        wing = np.minimum.reduce(
            [
                _shell(p, (side * 38.0, 8.0, 20.0), (34.0, 40.0, 36.0), 8.0),
                _half_space(p, (side * 33.0, 0.0, 0.0), (side, 0.0, 0.0)),
                _half_space(p, (0.0, 0.0, -8.0), (0.0, 0.0, 1.0)),
            ]
        )
        cup = np.minimum(
            _shell(p, femoral, (26.0, 26.0, 26.0), 6.5), _half_space(p, femoral + (side * 4, 0, 0), (-side, 0, 0))
        )
        pillar = _ellipsoid(p, (side * 48.0, 2.0, -2.0), (9.0, 11.0, 14.0))
        cavity = np.linalg.norm(p - femoral, axis=-1) - 19.5
        return np.minimum(np.maximum.reduce([wing, cup, pillar]), cavity)

    return distance


def _femur(side: float) -> Callable[[np.ndarray], np.ndarray]:
    """A femoral head (radius 14 mm) in the cup, with a neck running lateral and down."""
    femoral = _femoral_center(side)

    def distance(p: np.ndarray) -> np.ndarray:
        head = 14.0 - np.linalg.norm(p - femoral, axis=-1)
        return np.maximum(head, _ellipsoid(p, femoral + (side * 14.0, 0.0, -10.0), (13.0, 8.0, 8.0)))

    return distance


def pelvis_bones(femur: bool = True) -> list[Bone]:
    """The sacrum, both hip bones and (``femur``) the left femoral head, in fixed LPS mm."""
    bones = [
        Bone("sacrum", 1, np.array([0.0, 36.0, 8.0]), np.array([28.0, 30.0, 38.0]), _sacrum),
        Bone("left_hip", 2, np.array([52.0, 2.0, 8.0]), np.array([40.0, 50.0, 64.0]), _hip(1.0)),
        Bone("right_hip", 3, np.array([-52.0, 2.0, 8.0]), np.array([40.0, 50.0, 64.0]), _hip(-1.0)),
    ]
    if femur:
        bones.append(Bone("left_femur", 4, _femoral_center(1.0), np.array([30.0, 16.0, 24.0]), _femur(1.0)))
    return bones


# Tissue: (CT in HU, T1-like MR). Cortex is bright on CT and dark on MR; fatty marrow is bright on MR.
PELVIS_TISSUES = {
    "air": (-1000.0, 0.0),
    "fat": (-100.0, 420.0),
    "muscle": (45.0, 130.0),
    "bladder": (8.0, 40.0),
    "cortex": (1200.0, 25.0),
    "marrow": (280.0, 360.0),
}


def _body_parts(p: np.ndarray, width: float) -> dict[str, np.ndarray]:
    """Fractions of air, fat, muscle and bladder at soft-tissue points (..., 3), summing to 1."""
    body_distance = (1.0 - np.hypot(p[..., 0] / 100.0, (p[..., 1] - 5.0) / 70.0)) * 70.0
    body, inner = _membership(body_distance, width), _membership(body_distance - 10.0, width)
    bladder = _membership(_ellipsoid(p, (0.0, -32.0, -14.0), (26.0, 20.0, 20.0)), width) * inner
    return {"air": 1 - body, "fat": body - inner, "muscle": inner - bladder, "bladder": bladder}


def _pelvis_image(soft: dict[str, np.ndarray], bone_distances: list[np.ndarray], modality: int, width: float):
    """Blend soft tissue fractions and bones (cortex 2.5 mm thick over marrow) into one modality's values."""
    values = sum(PELVIS_TISSUES[name][modality] * fraction for name, fraction in soft.items())
    for distance in bone_distances:
        bone, marrow = _membership(distance, width), _membership(distance - 2.5, width)
        values = values * (1 - bone) + PELVIS_TISSUES["cortex"][modality] * (bone - marrow)
        values = values + PELVIS_TISSUES["marrow"][modality] * marrow
    return values.astype(np.float32)


def _bone_labels(distances: list[np.ndarray], bones: list[Bone]) -> np.ndarray:
    """Each point's bone label (the deepest bone where two overlap), 0 outside every bone."""
    stacked = np.stack(distances)
    labels = np.array([bone.label for bone in bones], np.uint8)[np.argmax(stacked, axis=0)]
    return np.where(stacked.max(axis=0) > 0, labels, 0).astype(np.uint8)


@dataclass
class PiecewisePair:
    """A CT (fixed) and an MR (moving) of a pelvis; every bone moves rigidly on its own.

    ``bone_truths[name]`` maps that bone's fixed points to its moving points (LPS mm): ``global_truth`` after
    the bone's own small motion about its centre. Soft tissue follows a distance-weighted blend of the bone
    motions and the global pose; it has no single truth.
    """

    fixed: sitk.Image  # CT-like, HU
    moving: sitk.Image  # T1-MR-like, bias field and noise
    fixed_labels: sitk.Image  # UInt8, label per bone, Slicer segment names in the metadata
    moving_labels: sitk.Image
    names: dict[int, str]
    global_truth: Transform
    bone_truths: dict[str, Transform]
    targets_fixed: dict[str, np.ndarray]  # per bone, (N, 3) LPS mm, at least 1 mm inside it
    targets_moving: dict[str, np.ndarray]
    bones: list[Bone]


def _bone_targets(bone: Bone, count: int, rng) -> np.ndarray:
    candidates = bone.center + rng.uniform(-1, 1, (400 * count, 3)) * bone.box
    return candidates[bone.distance(candidates) > 1.0][:count]


def _soft_tissue_points(points, bone_points, bone_distances, global_points, reach_mm: float = 12.0) -> np.ndarray:
    """Where moving soft tissue comes from (fixed LPS mm): each bone's inverse motion weighted by
    exp(-(distance outside it / reach)^2), and the global pose's with weight 0.05."""
    weights = [np.exp(-((np.maximum(-d, 0.0) / reach_mm) ** 2))[..., None] for d in bone_distances]
    total = 0.05 + sum(weights)
    return (0.05 * global_points + sum(w * p for w, p in zip(weights, bone_points))) / total


def pelvis_like_pair(
    seed: int = 0,
    spacing_mm: float = 3.5,
    moving_spacing_mm=(3.3, 3.3, 4.0),
    femur: bool = True,
    global_angle_deg=(5.0, 10.0),
    global_shift_mm=(8.0, 15.0),
    bone_angle_deg=(2.0, 5.0),
    bone_shift_mm=(1.5, 4.0),
    targets_per_bone: int = 8,
) -> PiecewisePair:
    """A pelvis-like CT (fixed, 220 x 160 x 120 mm at ``spacing_mm``) and MR (moving, 210 x 156 x 120 mm at
    ``moving_spacing_mm``) with per-bone rigid truth. Angles (degrees) and shifts (mm) are drawn from the
    (low, high) ranges with ``seed``: one global pose about the body centre, then each bone's own motion
    about its centre (the femur's about the femoral head), the bones' shifts along directions 109.5 degrees
    apart so that no two bones move alike."""
    rng = np.random.default_rng(seed)
    bones = pelvis_bones(femur)
    global_truth = _random_rigid(rng, global_angle_deg, global_shift_mm, (0.0, 0.0, 0.0))
    directions = _distinct_directions(rng, len(bones))
    bone_truths = {
        bone.name: global_truth @ _random_rigid(rng, bone_angle_deg, bone_shift_mm, bone.center, direction)
        for bone, direction in zip(bones, directions)
    }

    fixed_grid = _grid((0.0, 5.0, 0.0), (220.0, 160.0, 120.0), spacing_mm)
    p = _points(fixed_grid)
    width = float(spacing_mm)
    fixed_distances = [bone.distance(p) for bone in bones]
    ct = _pelvis_image(_body_parts(p, width), fixed_distances, 0, width)
    ct = ct + rng.normal(0.0, 10.0, ct.shape).astype(np.float32)

    moving_grid = _grid(global_truth.transform_points([[0.0, 5.0, 0.0]])[0], (210.0, 156.0, 120.0), moving_spacing_mm)
    v = _points(moving_grid)
    bone_points = [_apply(bone_truths[bone.name].inverse().matrix, v) for bone in bones]
    moving_distances = [bone.distance(x) for bone, x in zip(bones, bone_points)]
    soft = _soft_tissue_points(v, bone_points, moving_distances, _apply(global_truth.inverse().matrix, v))
    moving_width = float(np.mean(moving_spacing_mm))
    mr = _pelvis_image(_body_parts(soft, moving_width), moving_distances, 1, moving_width)
    moving = add_bias_and_noise(_image(mr, moving_grid), seed, bias=0.15, noise=8.0)

    names = {bone.label: bone.name for bone in bones}
    targets_fixed = {bone.name: _bone_targets(bone, targets_per_bone, rng) for bone in bones}
    return PiecewisePair(
        fixed=_image(ct, fixed_grid),
        moving=moving,
        fixed_labels=_with_names(_bone_labels(fixed_distances, bones), fixed_grid, names),
        moving_labels=_with_names(_bone_labels(moving_distances, bones), moving_grid, names),
        names=names,
        global_truth=global_truth,
        bone_truths=bone_truths,
        targets_fixed=targets_fixed,
        targets_moving={name: bone_truths[name].transform_points(points) for name, points in targets_fixed.items()},
        bones=bones,
    )


# files ----------------------------------------------------------------------------------------------------
def write_markups(path: Path, points_lps: np.ndarray, labels: list[str]) -> None:
    """Write a Slicer markups point list (.mrk.json) in RAS mm, readable by landmarks.points_io.read_points."""
    write_markups_json(path, lps_ras_points(points_lps), labels)


def write_pair(pair: GuidedPair | PiecewisePair, folder: str | Path) -> dict[str, Path]:
    """Write a pair into ``folder``: fixed.nrrd, moving.nrrd, fixed_labels.seg.nrrd, moving_labels.seg.nrrd
    (Slicer segment names), points as .mrk.json (RAS mm) and the truth as .h5; returns name -> path.

    Ultrasound-like pairs add moving_mask.nrrd, truth.h5 and landmarks_{fixed,moving}.mrk.json (moving: the
    noisy clicks); pelvis-like pairs write truth_global.h5 and truth_<bone>.h5, their targets labelled
    '<bone>-<n>'."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.nrrd" for name in ("fixed", "moving")}
    paths.update({name: folder / f"{name}.seg.nrrd" for name in ("fixed_labels", "moving_labels")})
    for name in ("fixed", "moving", "fixed_labels", "moving_labels"):
        write_image(getattr(pair, name), paths[name])
    if isinstance(pair, GuidedPair):
        paths["moving_mask"] = folder / "moving_mask.nrrd"
        write_image(pair.moving_mask, paths["moving_mask"])
        transforms = {"truth": pair.truth}
        labels = [f"target-{i + 1}" for i in range(len(pair.targets_fixed))]
        points = {
            "targets_fixed": (pair.targets_fixed, labels),
            "targets_moving": (pair.targets_moving, labels),
            "landmarks_fixed": (pair.landmarks_fixed, pair.landmark_labels),
            "landmarks_moving": (pair.landmarks_moving, pair.landmark_labels),
        }
    else:
        transforms = {"truth_global": pair.global_truth}
        transforms.update({f"truth_{name}": truth for name, truth in pair.bone_truths.items()})
        labels = [f"{name}-{i + 1}" for name, found in pair.targets_fixed.items() for i in range(len(found))]
        points = {
            "targets_fixed": (np.concatenate(list(pair.targets_fixed.values())), labels),
            "targets_moving": (np.concatenate(list(pair.targets_moving.values())), labels),
        }
    for name, transform in transforms.items():
        paths[name] = folder / f"{name}.h5"
        transform.write(paths[name])
    for name, (found, found_labels) in points.items():
        paths[name] = folder / f"{name}.mrk.json"
        write_markups(paths[name], found, found_labels)
    return paths
