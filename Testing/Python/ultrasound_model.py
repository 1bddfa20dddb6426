"""The ultrasound-like anatomy and imaging model shared by the easy (ultrasound_like.py) and the hard
(trus_data.py) MR -> ultrasound cases: a gland with a urethra, calcifications and a cyst, a probe push with
its exact inverse, a fan of beams, and an echo model that relates weakly to the MR.

Points are LPS mm; the anatomy is analytic so that images, labelmaps and points agree without resampling blur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from data_paths import SHARED_DATA
from MultimodalRegistrationLib.core.images import corner_points
from MultimodalRegistrationLib.core.phantom import TISSUES, tissue_fractions
from synthetic_geometry import membership, sample_at, smooth_noise

MNI_T1 = SHARED_DATA / "mni_icbm152" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"

BEAM = np.array([0.0, -1.0, 0.0])  # the probe looks anterior (LPS -y) in the moving frame
LATERAL = np.array([1.0, 0.0, 0.0])
ELEVATION = np.array([0.0, 0.0, 1.0])


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


def mni_source() -> sitk.Image | None:
    """The MNI ICBM152 2009a T1 (1 mm, Float32) from ../shared/data, or None when it is absent."""
    return sitk.ReadImage(str(MNI_T1), sitk.sitkFloat32) if MNI_T1.exists() else None


def source_mr_values(source: sitk.Image | None, points: np.ndarray) -> np.ndarray:
    """The source MR at LPS points (..., 3): the analytic head phantom's T1 values when ``source`` is None."""
    if source is not None:
        return sample_at(source, points)
    fractions = tissue_fractions(points.astype(np.float32))
    return sum(TISSUES[name][1] * fraction for name, fraction in fractions.items()).astype(np.float32)


def mr_with_gland(values: np.ndarray, points: np.ndarray, gland: Gland, voxel: float, rng) -> np.ndarray:
    """Insert the gland into MR ``values`` at ``points``: its own level (about 18% of the range off its
    surroundings), a brighter rim, texture, bright urethra and cyst, dark calcifications, and noise."""
    low, high = np.percentile(values, [2, 98])
    span = high - low
    inside = gland.distance(points)
    local = float(np.median(values[inside > 0]))
    level = local - 0.18 * span if local > (low + high) / 2 else local + 0.18 * span
    texture = smooth_noise(values.shape, 1.5, rng)
    rim = membership(4.0 - inside, 2.0)
    out = values + membership(inside, voxel) * (level + (0.08 * rim + 0.04 * texture) * span - values)
    for distance, value in (
        (gland.urethra_distance(points), level + 0.25 * span),
        (gland.cyst_distance(points), level + 0.35 * span),
        (gland.calcification_distance(points), low),
    ):
        out += membership(distance, voxel) * (value - out)
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


def echo_amplitude(values_n: np.ndarray, x: np.ndarray, gland: Gland, fan: Fan, waves: Waves, rng) -> np.ndarray:
    """Ultrasound amplitude on the fan's polar grid from the tissue at fixed points ``x`` (elevation, lateral,
    depth, 3): echogenicity by tissue (not monotone in the MR: the same for its darkest and brightest, and
    modulated by ``waves``, structure the MR does not show), a bright capsule, specular echoes at impedance
    steps along the beam, Rayleigh speckle, shadows behind calcifications and depth loss."""
    inside = gland.distance(x)
    gland_part = membership(inside, 0.8)
    calcification = membership(gland.calcification_distance(x), 0.6)
    rim = membership(4.0 - inside, 2.0)
    background = (0.3 + 0.45 * (0.5 + 0.5 * np.cos(2 * np.pi * values_n + 0.3))) * np.clip(
        1 + 0.4 * waves(x), 0.2, None
    )
    texture = smooth_noise(values_n.shape, (2.0, 1.5, 1.5), rng)
    echo = background + gland_part * (0.5 * (1 - 0.4 * rim) * (1 + 0.3 * texture) - background)
    for distance, value in ((gland.urethra_distance(x), 0.08), (gland.cyst_distance(x), 0.03)):
        echo += membership(distance, 0.8) * (value - echo)
    echo = np.maximum(echo, 0.01)
    echo += calcification * (4.0 - echo) + 0.9 * np.exp(-((inside / 0.9) ** 2))
    impedance = 1.0 + 0.5 * values_n * (1 - gland_part) + 0.35 * gland_part + 2.0 * calcification
    reflection = np.abs(np.gradient(impedance, fan.dr, axis=-1))
    loss = np.cumsum((1.6 * calcification + 0.5 * reflection**2) * fan.dr, axis=-1)
    speckle = np.hypot(
        smooth_noise(values_n.shape, (0.7, 1.2, 1.2), rng), smooth_noise(values_n.shape, (0.7, 1.2, 1.2), rng)
    )
    speckle /= np.sqrt(np.mean(speckle**2))
    depth = np.linspace(0.0, 1.0, fan.shape[2])
    return (echo * speckle + 0.8 * reflection) * np.exp(-loss) * (1.0 - 0.3 * depth)


def log_compress(amplitude: np.ndarray, dynamic_range_db: float = 50.0) -> np.ndarray:
    """Amplitude to grey levels 0..255 over ``dynamic_range_db`` below the 99.5th percentile."""
    decibels = 20.0 * np.log10(np.maximum(amplitude, 0.0) + 1e-4)
    top = np.percentile(decibels, 99.5)
    return (np.clip((decibels - top + dynamic_range_db) / dynamic_range_db, 0.0, 1.0) * 255.0).astype(np.float32)
