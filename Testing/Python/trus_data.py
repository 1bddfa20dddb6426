"""A hard MR -> transrectal-ultrasound (TRUS) case generator, shaped like the real pairs of issue 22.

The real pairs (issue 22): both images 1.5 mm isotropic, 8-bit, identity directions, the same origin.
Fixed = TRUS, a 47 x 63 x 44 box (70 x 95 x 66 mm); moving = MR, 69 x 69 x 64 (104 x 104 x 96 mm). Header
alignment leaves about 19 mm, the image centres about 12 mm, the gland centroids about 5.6 mm (median over
the landmarks). One gland segmentation per image, drawn independently; 4-5 landmarks in and on the gland.

What makes a pair hard here (every number is drawn per seed, see :func:`trus_pair`):

* the truth is a rigid pose (10-30 degrees about a random axis) composed with a probe push (the TRUS
  gland is compressed 5-10 mm from behind and bulges sideways) and a smooth random warp (3-5 mm RMS,
  40-80 mm waves: bladder and rectum filling), so no rigid map fits;
* the gland is a near-symmetric ellipsoid (a slight taper towards the apex, a slightly flat back), so its
  principal axes cannot tell front from back, and two of its radii can be close;
* the two segmentations differ beyond the deformation: independent smooth boundary noise (1-2 voxels),
  a partial-volume bias (+-1 mm), and different apex and base extents (-5..+3 mm at each end, per image);
* the TRUS field of view is a fan (zero outside) starting at the probe 3-6 mm behind the gland (the rectal
  wall): a narrow elevation sweep (18-36 degrees half-angle) cuts the gland's base or apex in some pairs,
  and the TRUS segmentation stops at the fan's edge;
* the TRUS intensities relate weakly to the MR (echogenicity not monotone in the MR value, speckle,
  shadows behind calcifications, depth loss; ultrasound_model's echo model); mutual information still sees the
  MR's texture around the gland through that map, unless ``echo_mr_share`` (below 1) replaces it by a texture
  the MR does not show;
* 4-5 landmarks (a cyst, calcifications, the urethra at the base or apex), clicked with 1-2 mm noise (RMS,
  3D) on each side.

Frames: the anatomy is analytic in the MR (moving) frame. The truth maps fixed (TRUS) points x to moving
(MR) points y = A(P(W(x))): W the smooth warp, P(x) = x + u(x) undoes the probe's push
(ultrasound_model.ProbePush, posterior, with an inward bulge), A a rigid pose. :meth:`TrusPair.truth_points`
is that analytic map, exact; its inverse is :meth:`TrusPair.fixed_points_of` (Newton, to 1e-9 mm). Images and
labels are sampled through the exact map on their own grids. Deterministic per seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import physical_center
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform
from MultimodalRegistrationLib.registration.guided.guidance import Guidance, PreparedGuidance, prepare_guidance
from pair_files import write_case
from synthetic_geometry import image_like, named_labels, sample_at, voxel_points
from ultrasound_model import (
    BEAM,
    Fan,
    ProbePush,
    Waves,
    echo_amplitude,
    log_compress,
    mni_source,
    mr_with_gland,
    source_mr_values,
)

SPACING_MM = 1.5
TRUS_SIZE = (47, 63, 44)  # 70 x 95 x 66 mm: fixed
MR_SIZE = (69, 69, 64)  # 104 x 104 x 96 mm: moving
ORIGIN_LPS = (-40.0, -55.0, -30.0)  # both headers (any value: only the grids' relation matters)
POSTERIOR = np.array([0.0, 1.0, 0.0])  # LPS +y; the probe lies behind the gland (BEAM = -POSTERIOR)
PROBE_RADIUS_MM = 20.0  # the fan's virtual apex behind the probe's surface
NAMES = {1: "gland"}


def _grid(size, spacing=SPACING_MM, origin=ORIGIN_LPS) -> sitk.Image:
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing((spacing,) * 3)
    image.SetOrigin(tuple(float(o) for o in origin))
    return image


def _rotation(axis, angle_deg) -> np.ndarray:
    return rigid_transform(angle_deg, axis, (0.0, 0.0, 0.0)).matrix[:3, :3]


def _to_uint8(values: np.ndarray, low_pct=0.5, high_pct=99.5) -> np.ndarray:
    low, high = np.percentile(values, [low_pct, high_pct])
    return np.clip(np.round((values - low) / max(high - low, 1e-6) * 255.0), 0, 255).astype(np.uint8)


# the gland -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrusGland:
    """A near-symmetric gland in the MR frame (LPS mm).

    Local axes are the columns of ``axes`` (left-right, anterior-posterior pointing posterior, inferior-
    superior pointing superior). The surface is an ellipsoid (``radii``) narrowed towards the apex by
    ``taper`` and flattened at the back by ``flatten``, plus small low-order ``shape`` terms. Signed
    distances are radial approximations (mm, positive inside). The features (cysts, calcifications, the
    urethra along the local superior axis, 3 mm anterior) are what a user clicks as landmarks.
    """

    center: np.ndarray
    axes: np.ndarray  # (3, 3) columns: local LR, AP (posterior), SI (superior) in LPS
    radii: np.ndarray
    taper: float
    flatten: float
    shape: np.ndarray  # (4,) weights of the low-order terms
    calcifications: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    cysts: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    calcification_radius: float = 1.5
    cyst_radius: float = 3.0
    urethra_radius: float = 2.5

    def local(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, float) - self.center) @ self.axes

    def surface_radius(self, d: np.ndarray) -> np.ndarray:
        """Distance (mm) from the centre to the surface along unit local directions ``d`` (..., 3)."""
        ellipsoid = 1.0 / np.linalg.norm(d / self.radii, axis=-1)
        x, y, z = d[..., 0], d[..., 1], d[..., 2]
        terms = np.stack([x * y, y * z, z * x, x * x - z * z], axis=-1) @ self.shape
        return ellipsoid * (1.0 + self.taper * z) * (1.0 - self.flatten * np.maximum(y, 0.0) ** 2) * (1.0 + terms)

    def local_distance(self, q: np.ndarray) -> np.ndarray:
        radius = np.linalg.norm(q, axis=-1)
        return self.surface_radius(q / np.maximum(radius, 1e-6)[..., None]) - radius

    def distance(self, p: np.ndarray) -> np.ndarray:
        return self.local_distance(self.local(p))

    def drawn_distance(self, p: np.ndarray, base_mm: float, apex_mm: float) -> np.ndarray:
        """The distance a segmenter would draw: the gland stretched along its SI axis so that the base ends
        ``base_mm`` and the apex ``apex_mm`` further out (negative: short of it)."""
        q = self.local(p)
        stretch = np.where(q[..., 2] > 0, 1.0 + base_mm / self.radii[2], 1.0 + apex_mm / self.radii[2])
        q = q.copy()
        q[..., 2] /= stretch
        return self.local_distance(q)

    def urethra_distance(self, p: np.ndarray) -> np.ndarray:
        q = self.local(p)
        radial = np.hypot(q[..., 0], q[..., 1] + 3.0)
        return np.minimum(self.urethra_radius - radial, 1.3 * self.radii[2] - np.abs(q[..., 2]))

    def calcification_distance(self, p: np.ndarray) -> np.ndarray:
        if not len(self.calcifications):
            return np.full(np.shape(p)[:-1], -1e3)
        return np.max([self.calcification_radius - np.linalg.norm(p - c, axis=-1) for c in self.calcifications], 0)

    def cyst_distance(self, p: np.ndarray) -> np.ndarray:
        if not len(self.cysts):
            return np.full(np.shape(p)[:-1], -1e3)
        return np.max([self.cyst_radius - np.linalg.norm(p - c, axis=-1) for c in self.cysts], 0)

    def urethra_end(self, superior: bool) -> np.ndarray:
        """Where the urethra's centre line leaves the gland (base if ``superior``, else apex), LPS mm."""
        sign = 1.0 if superior else -1.0
        inside, outside = 0.0, sign * 2.0 * float(self.radii.max())
        for _ in range(60):
            middle = 0.5 * (inside + outside)
            q = np.array([0.0, -3.0, middle])
            if self.local_distance(q) > 0:
                inside = middle
            else:
                outside = middle
        return self.center + self.axes @ np.array([0.0, -3.0, 0.5 * (inside + outside)])


def _make_gland(center: np.ndarray, rng: np.random.Generator) -> TrusGland:
    radii = np.array([rng.uniform(19.0, 25.0), rng.uniform(13.0, 17.0), rng.uniform(15.0, 21.0)])
    tilt = _rotation([1.0, 0.0, 0.0], rng.uniform(-20.0, 20.0)) @ _rotation(rng.normal(size=3), rng.uniform(0, 6))
    return TrusGland(
        center=np.asarray(center, float),
        axes=tilt,
        radii=radii,
        taper=rng.uniform(0.0, 0.08),
        flatten=rng.uniform(0.0, 0.12),
        shape=rng.uniform(-0.04, 0.04, 4),
    )


def _place_features(gland: TrusGland, rng: np.random.Generator, count: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Candidate calcifications (3-8 mm deep: towards the periphery, where they mostly lie) and cysts (depth
    >= 5 mm), 8 mm apart and off the urethra."""
    chosen, kinds = [], []
    wanted = ["cyst", "cyst"] + ["calcification"] * (count - 2)
    candidates = gland.center + (rng.uniform(-1, 1, (4000, 3)) * gland.radii) @ gland.axes.T
    depth, tube = gland.distance(candidates), gland.urethra_distance(candidates)
    for point, inside, urethra in zip(candidates, depth, tube):
        kind = wanted[len(chosen)]
        deep_enough = inside > 5.0 if kind == "cyst" else 3.0 < inside < 8.0
        if deep_enough and urethra < -4.0 and all(np.linalg.norm(point - c) > 8.0 for c in chosen):
            chosen.append(point)
            kinds.append(kind)
        if len(chosen) == count:
            break
    chosen = np.array(chosen)
    kinds = np.array(kinds)
    return chosen[kinds == "calcification"], chosen[kinds == "cyst"]


@dataclass(frozen=True)
class Warp:
    """A smooth random deformation x -> x + w(x) (fixed LPS mm): a few long plane waves (40-80 mm) whose
    displacement is ``rms_mm`` (3D RMS) on average; the largest displacement gradient stays below about 0.35,
    so the map is invertible. Stands for what differs between the MR and the TRUS session besides the
    probe (bladder and rectum filling, patient position)."""

    vectors: np.ndarray  # (K, 3) rad/mm
    amplitudes: np.ndarray  # (K, 3) mm
    phases: np.ndarray  # (K,)

    @classmethod
    def random(cls, rng: np.random.Generator, rms_mm: float, count: int = 3) -> "Warp":
        directions = rng.normal(size=(count, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        vectors = directions * (2 * np.pi / rng.uniform(40.0, 80.0, (count, 1)))
        amplitudes = rng.normal(size=(count, 3))
        amplitudes *= rms_mm * np.sqrt(2.0) / np.sqrt((amplitudes**2).sum())  # sin's mean square is 1/2
        return cls(vectors, amplitudes, rng.uniform(0, 2 * np.pi, count))

    def displacement(self, x: np.ndarray) -> np.ndarray:
        return np.sin(np.asarray(x, float) @ self.vectors.T + self.phases) @ self.amplitudes

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, float) + self.displacement(x)


def _invert(forward, y: np.ndarray, iterations: int = 30) -> np.ndarray:
    """The x with forward(x) = y for a map close to a rigid one's derivative (Newton, finite differences)."""
    y = np.asarray(y, float).reshape(-1, 3)
    x = y.copy()
    step = 1e-4
    for _ in range(iterations):
        residual = forward(x) - y
        if np.abs(residual).max() < 1e-9:
            break
        jacobian = np.stack([(forward(x + step * e) - forward(x - step * e)) / (2 * step) for e in np.eye(3)], -1)
        x = x - np.linalg.solve(jacobian, residual[..., None])[..., 0]
    return x


# the pair ------------------------------------------------------------------------------------------------
@dataclass
class TrusPair:
    """A TRUS-like fixed and an MR-like moving image with independent gland segmentations and exact truth.

    ``truth_points`` maps fixed to moving points (LPS mm) exactly. ``landmarks_fixed``/``landmarks_moving``
    are the clicks (with noise) a user would give; ``landmarks_fixed_true`` and ``landmarks_moving_true`` =
    truth(landmarks_fixed_true) are where the features are. The target registration error of a transform
    is :meth:`tre`: |transform(landmarks_fixed_true) - landmarks_moving_true|. ``targets_*``: 40 extra points
    spread through the gland (inside the TRUS fan) for a denser error estimate.
    """

    seed: int
    fixed: sitk.Image  # TRUS-like, UInt8, 0 outside the fan
    moving: sitk.Image  # MR-like, UInt8
    fixed_labels: sitk.Image  # UInt8, 1 = gland, Slicer segment names
    moving_labels: sitk.Image
    fixed_fov: sitk.Image  # UInt8, 1 inside the fan
    landmarks_fixed: np.ndarray
    landmarks_moving: np.ndarray
    landmarks_fixed_true: np.ndarray
    landmarks_moving_true: np.ndarray
    landmark_labels: list[str]
    targets_fixed: np.ndarray
    targets_moving: np.ndarray
    gland: TrusGland
    push: ProbePush
    warp: Warp
    rigid: np.ndarray  # 4x4: the rigid part A (fixed after the warp and the push -> moving)
    fan: Fan
    params: dict

    def truth_points(self, fixed_points_lps: np.ndarray) -> np.ndarray:
        points = self.push.forward(self.warp.forward(np.asarray(fixed_points_lps, float)))
        return points @ self.rigid[:3, :3].T + self.rigid[:3, 3]

    def fixed_points_of(self, moving_points_lps: np.ndarray) -> np.ndarray:
        inverse = np.linalg.inv(self.rigid)
        unmoved = np.asarray(moving_points_lps, float) @ inverse[:3, :3].T + inverse[:3, 3]
        return _invert(lambda x: self.push.forward(self.warp.forward(x)), unmoved)

    def tre(self, transform: Transform) -> np.ndarray:
        """Target registration error (mm) at the true landmarks: |transform(x) - truth(x)|."""
        return np.linalg.norm(
            transform.transform_points(self.landmarks_fixed_true) - self.landmarks_moving_true, axis=1
        )

    def mean_tre(self, pose: Transform | np.ndarray) -> float:
        """Mean target registration error (mm) of a transform or a 4x4 matrix (fixed -> moving, LPS)."""
        return float(np.mean(self.tre(pose if isinstance(pose, Transform) else Transform.from_matrix(pose))))

    def clicked_error(self, transform: Transform) -> np.ndarray:
        """The error a user measures with the clicks: |transform(fixed click) - moving click| (mm)."""
        return np.linalg.norm(transform.transform_points(self.landmarks_fixed) - self.landmarks_moving, axis=1)

    def target_error(self, transform: Transform) -> np.ndarray:
        return np.linalg.norm(transform.transform_points(self.targets_fixed) - self.targets_moving, axis=1)

    def truth_field(self, reference: sitk.Image | None = None) -> Transform:
        """The truth sampled as a displacement field on ``reference`` (default: the fixed grid), for tools that
        need a transform; the analytic :meth:`truth_points` is exact."""
        reference = reference or self.fixed
        points = voxel_points(reference)
        values = self.truth_points(points.reshape(-1, 3)).reshape(points.shape) - points
        image = sitk.GetImageFromArray(values.astype(np.float64), isVector=True)
        image.CopyInformation(reference)
        return Transform(sitk.DisplacementFieldTransform(image))


def _unseen_texture(source, source_centre: np.ndarray, rng: np.random.Generator):
    """Source MR values at points relative to the gland, taken 25 mm from the MR's own texture and turned by
    45-135 degrees: a texture of the same kind that the MR does not show there."""
    direction = rng.normal(size=3)
    centre = source_centre + 25.0 * direction / np.linalg.norm(direction)
    turn = _rotation(rng.normal(size=3), rng.uniform(45.0, 135.0))
    return lambda relative: source_mr_values(source, relative @ turn.T + centre)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    labelled = sitk.RelabelComponent(sitk.ConnectedComponent(image), sortByObjectSize=True)
    return sitk.GetArrayFromImage(labelled) == 1


def trus_pair(
    seed: int = 0,
    source: sitk.Image | None | str = "mni",
    angle_deg=(15.0, 30.0),
    compression_mm=(5.0, 10.0),
    boundary_noise_voxels=(0.5, 1.0),
    end_shift_mm=(-6.0, 3.0),
    bias_mm=(-0.75, 0.75),
    elevation_deg=(18.0, 36.0),
    click_noise_mm=(1.0, 2.0),
    warp_mm=(3.0, 5.0),
    rectal_wall_mm=(3.0, 6.0),
    echo_mr_share=(1.0, 1.0),
) -> TrusPair:
    """One hard MR -> TRUS pair (fixed TRUS, moving MR), deterministic per ``seed``.

    Ranges (low, high) are drawn uniformly per pair. ``source``: the MR texture ("mni": the MNI T1 from
    ../shared/data when present; None: the analytic head phantom; or an image). ``echo_mr_share``: how much of
    the tissue around the gland the TRUS echoes from the MR's own texture; the rest from a texture the MR does
    not show (the source elsewhere, turned), so the intensities away from the gland, its capsule and its
    features agree less. Below 1 it is drawn from a generator of its own: every other draw, and so the gland,
    the segmentations and the landmarks, stay those of the same seed at 1.
    """
    rng = np.random.default_rng(seed)
    if isinstance(source, str):
        source = mni_source()
    fixed_grid, moving_grid = _grid(TRUS_SIZE), _grid(MR_SIZE)
    fixed_centre, moving_centre = physical_center(fixed_grid), physical_center(moving_grid)

    # Where the gland lies in each image, and the rigid pose between them (about the TRUS gland centre).
    # The header offset d (MR gland minus TRUS gland, identity headers) is drawn about 0.5-0.85 of the
    # offset between the image centres, with 4 mm of scatter per axis: identity then leaves ~19 mm and the
    # image centres ~12 mm, as on the real pairs.
    gland_fixed = fixed_centre + np.array([rng.uniform(-6, 6), rng.uniform(6, 14), rng.uniform(-6, 6)])
    header = rng.uniform(0.4, 0.8) * (moving_centre - fixed_centre) + rng.normal(0.0, 5.0, 3)
    gland_moving = gland_fixed + header
    angle = rng.uniform(*angle_deg)
    rotation = _rotation(rng.normal(size=3), angle)
    gland = _make_gland(gland_moving, rng)
    calcifications, cysts = _place_features(gland, rng)
    gland = TrusGland(gland.center, gland.axes, gland.radii, gland.taper, gland.flatten, gland.shape,
                      calcifications, cysts)  # fmt: skip
    rigid = np.eye(4)
    rigid[:3, :3] = rotation
    rigid[:3, 3] = gland_moving - rotation @ gland_fixed

    # The probe: behind the gland in the TRUS frame, pushing it forward by ``compression`` mm.
    compression = rng.uniform(*compression_mm)
    back = float(gland.surface_radius(gland.axes.T @ rotation @ POSTERIOR))
    contact = gland_fixed + (back - compression) * POSTERIOR
    push = ProbePush(contact, POSTERIOR, compression, -0.4 * compression, rng.uniform(12.0, 18.0))

    warp_rms = rng.uniform(*warp_mm)
    warp = Warp.random(rng, warp_rms)

    def truth(points: np.ndarray) -> np.ndarray:
        return push.forward(warp.forward(points)) @ rigid[:3, :3].T + rigid[:3, 3]

    def truth_inverse(points: np.ndarray) -> np.ndarray:
        inverse = np.linalg.inv(rigid)
        return _invert(lambda x: push.forward(warp.forward(x)), points @ inverse[:3, :3].T + inverse[:3, 3])

    # The TRUS fan: apex behind the probe's surface, beams anterior; the elevation sweep may cut the gland.
    elevation = rng.uniform(*elevation_deg)
    wall = rng.uniform(*rectal_wall_mm)  # the probe's surface lies this far behind the gland
    apex = contact + (PROBE_RADIUS_MM + wall) * POSTERIOR
    fan = Fan.covering(apex, PROBE_RADIUS_MM, fixed_grid, 50.0, elevation, 0.8 * SPACING_MM, 0.022)
    assert np.allclose(BEAM, -POSTERIOR)

    # The MR texture source: the MNI T1 (a brain, used as texture only) around a random point.
    if source is not None:
        source_centre = physical_center(source) + rng.uniform(-12, 12, 3)
    else:
        source_centre = np.array([0.0, 0.0, 10.0]) + rng.uniform(-5, 5, 3)

    def source_at(points: np.ndarray) -> np.ndarray:
        return source_mr_values(source, points - gland.center + source_centre)

    # Moving: MR with the gland inserted.
    moving_points = voxel_points(moving_grid)
    mr_values = source_at(moving_points)
    values_range = tuple(np.percentile(mr_values, [2, 98]))
    mr = mr_with_gland(mr_values, moving_points, gland, SPACING_MM, rng)
    moving = image_like(_to_uint8(mr), moving_grid)

    # Fixed: TRUS from the fan's polar grid, scan-converted; 0 outside the fan.
    polar_moving = truth(fan.polar_points().reshape(-1, 3)).reshape(fan.polar_points().shape)
    low, high = values_range
    values_n = np.clip((source_at(polar_moving) - low) / (high - low), 0.0, 1.0)
    mr_share = 1.0
    if min(echo_mr_share) < 1.0:
        own = np.random.default_rng([seed, 22])
        mr_share = own.uniform(*echo_mr_share)
        unseen = _unseen_texture(source, source_centre, own)
        unseen_n = np.clip((unseen(polar_moving - gland.center) - low) / (high - low), 0.0, 1.0)
        values_n = mr_share * values_n + (1.0 - mr_share) * unseen_n
    polar = sitk.GetImageFromArray(
        log_compress(echo_amplitude(values_n, polar_moving, gland, fan, Waves.random(rng), rng))
    )
    fixed_points = voxel_points(fixed_grid)
    index, inside = fan.polar_index(fixed_points)
    grey = sample_at(polar, index) * inside
    fixed = image_like(np.clip(np.round(grey), 0, 255).astype(np.uint8), fixed_grid)
    fov = inside.astype(np.uint8)

    # Segmentations, drawn independently: noise, bias and apex/base extents of their own.
    drawn = {}
    for role in ("fixed", "moving"):
        noise_waves = Waves.random(rng, count=10, wavelengths_mm=(8.0, 22.0))
        drawn[role] = dict(
            noise_mm=rng.uniform(*boundary_noise_voxels) * SPACING_MM,
            base_mm=rng.uniform(*end_shift_mm),
            apex_mm=rng.uniform(*end_shift_mm),
            bias_mm=rng.uniform(*bias_mm),
            waves=noise_waves,
        )
    labels = {}
    for role, own_points, anatomy_points in (
        ("moving", moving_points, moving_points),
        ("fixed", fixed_points, truth(fixed_points.reshape(-1, 3)).reshape(fixed_points.shape)),
    ):
        d = drawn[role]
        level = (gland.drawn_distance(anatomy_points, d["base_mm"], d["apex_mm"]) + d["bias_mm"]
                 + d["noise_mm"] * d["waves"](own_points))  # fmt: skip
        mask = level > 0
        if role == "fixed":
            mask &= inside
        labels[role] = _largest_component(mask).astype(np.uint8)

    # Landmarks: features seen in both images (inside the fan), clicked with noise on both sides.
    features = [("cyst-1", gland.cysts[0]), ("calcification-1", gland.calcifications[0]),
                ("calcification-2", gland.calcifications[1]), ("urethra-base", gland.urethra_end(True)),
                ("calcification-3", gland.calcifications[2]), ("urethra-apex", gland.urethra_end(False)),
                ("cyst-2", gland.cysts[1])] + [(f"calcification-{i + 1}", c)
                                               for i, c in enumerate(gland.calcifications[3:], start=3)]  # fmt: skip
    wanted = int(rng.integers(4, 6))
    names, fixed_true = [], []
    for name, point in features:
        x = truth_inverse(point[None])[0]
        index_x, seen = fan.polar_index(x[None])
        in_box = np.all(np.abs(x - fixed_centre) < (np.asarray(TRUS_SIZE) - 1) * SPACING_MM / 2 - 2.0)
        if seen[0] and in_box and fan.polar_index(x[None] + 3.0 * BEAM)[1][0]:
            names.append(name)
            fixed_true.append(x)
        if len(names) == wanted:
            break
    fixed_true = np.array(fixed_true)
    moving_true = truth(fixed_true)
    click = rng.uniform(*click_noise_mm)
    landmarks_fixed = fixed_true + rng.normal(0.0, click / np.sqrt(3), fixed_true.shape)
    landmarks_moving = moving_true + rng.normal(0.0, click / np.sqrt(3), moving_true.shape)

    # Targets: points through the gland that the TRUS sees.
    candidates = gland.center + (rng.uniform(-1, 1, (4000, 3)) * gland.radii) @ gland.axes.T
    candidates = candidates[gland.distance(candidates) > 0.5]
    candidates_fixed = truth_inverse(candidates)
    seen = fan.polar_index(candidates_fixed)[1]
    targets_fixed = candidates_fixed[seen][:40]

    params = dict(
        angle_deg=float(angle),
        compression_mm=float(compression),
        warp_rms_mm=float(warp_rms),
        elevation_deg=float(elevation),
        rectal_wall_mm=float(wall),
        echo_mr_share=float(mr_share),
        header_offset_mm=float(np.linalg.norm(header)),
        radii_mm=[round(float(r), 2) for r in gland.radii],
        click_noise_mm=float(click),
        segment_fixed={k: round(float(v), 2) for k, v in drawn["fixed"].items() if k != "waves"},
        segment_moving={k: round(float(v), 2) for k, v in drawn["moving"].items() if k != "waves"},
        fixed_gland_voxels=int(labels["fixed"].sum()),
        moving_gland_voxels=int(labels["moving"].sum()),
    )
    return TrusPair(
        seed=seed,
        fixed=fixed,
        moving=moving,
        fixed_labels=named_labels(labels["fixed"], fixed_grid, NAMES),
        moving_labels=named_labels(labels["moving"], moving_grid, NAMES),
        fixed_fov=image_like(fov, fixed_grid),
        landmarks_fixed=landmarks_fixed,
        landmarks_moving=landmarks_moving,
        landmarks_fixed_true=fixed_true,
        landmarks_moving_true=moving_true,
        landmark_labels=names,
        targets_fixed=targets_fixed,
        targets_moving=truth(targets_fixed),
        gland=gland,
        push=push,
        warp=warp,
        rigid=rigid,
        fan=fan,
        params=params,
    )


COHORT_SEEDS = tuple(range(100, 124))  # the hard cohort: 24 pairs


def gland_guidance(pair: TrusPair, engine: str = "elastix") -> PreparedGuidance:
    """The pair's two gland segmentations, prepared as a guided run prepares them."""
    return prepare_guidance(pair.fixed, pair.moving, Guidance(pair.fixed_labels, pair.moving_labels), engine)


def trus_cohort(seeds=COHORT_SEEDS, **options):
    """The hard cohort, one pair per seed (a generator: each pair is about 3 MB)."""
    for seed in seeds:
        yield trus_pair(seed=seed, **options)


def write_trus_pair(pair: TrusPair, folder: str | Path) -> dict[str, Path]:
    """Write a pair for the command line: fixed.nrrd, moving.nrrd, fixed_labels.seg.nrrd, moving_labels.seg.nrrd,
    fixed_fov.nrrd and landmarks_{fixed,moving}.mrk.json (the clicks, RAS) plus landmarks_*_true.mrk.json."""
    names = ("fixed", "moving", "fixed_fov", "fixed_labels", "moving_labels")
    landmarks = ("landmarks_fixed", "landmarks_moving", "landmarks_fixed_true", "landmarks_moving_true")
    points = {name: (getattr(pair, name), pair.landmark_labels) for name in landmarks}
    return write_case(folder, {name: getattr(pair, name) for name in names}, points=points)
