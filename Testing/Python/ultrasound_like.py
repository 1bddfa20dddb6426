"""The easy MR -> ultrasound-like case (:func:`ultrasound_like_pair`), with exact truth.

An MR (fixed) with an inserted gland, and a transrectal-ultrasound-like moving image of the same anatomy moved
by a rigid pose and a probe-push deformation (the model: ultrasound_model.py). Images are SimpleITK images in
LPS mm; every truth :class:`Transform` maps fixed points to moving points (LPS mm). Each image is sampled on its
own grid through the exact inverse of the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import physical_center
from MultimodalRegistrationLib.core.transforms import Transform
from pair_files import write_case
from synthetic_geometry import (
    apply_matrix,
    grid_around,
    image_like,
    named_labels,
    random_rigid,
    sample_at,
    voxel_points,
)
from ultrasound_model import (
    BEAM,
    Fan,
    Gland,
    ProbePush,
    Waves,
    echo_amplitude,
    log_compress,
    make_gland,
    mr_with_gland,
    source_mr_values,
)

PHANTOM_CENTER = (0.0, 0.0, 10.0)  # LPS mm: ventricles, white and grey matter around it
APEX_BEHIND_GLAND_MM = 42.0  # the fan's virtual apex behind the moved gland centre
PROBE_RADIUS_MM = 20.0  # beams start this far from the apex (a convex probe's surface)
FAN_HALF_ANGLES_DEG = (45.0, 40.0)  # lateral, elevation
PUSH_SIGMA_MM = 14.0
GLAND_NAMES = {1: "gland", 2: "urethra"}

# The sizes a benchmark uses (the defaults are the small test sizes, at most 64 voxels per axis).
BENCH_ULTRASOUND = dict(size_mm=120.0, spacing_mm=0.8, us_size_mm=(80.0, 72.0, 72.0), us_spacing_mm=(0.5, 0.5, 0.7))


def push_transform(push: ProbePush, grid: sitk.Image) -> Transform:
    """The push as a displacement-field transform on ``grid`` (fixed LPS mm), with its exact inverse field."""
    points = voxel_points(grid)

    def field(values: np.ndarray) -> sitk.DisplacementFieldTransform:
        image = sitk.GetImageFromArray(values.astype(np.float64), isVector=True)
        image.CopyInformation(grid)
        return sitk.DisplacementFieldTransform(image)

    inverse = Transform(field(push.inverse(points) - points))
    return Transform(field(push.displacement(points)), inverse=inverse)


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
        return self.push.inverse(apply_matrix(self.rigid.inverse().matrix, np.asarray(moving_points_lps, float)))

    def write(self, folder: str | Path) -> dict[str, Path]:
        """The pair as files in ``folder`` (see :func:`pair_files.write_case`): fixed, moving, fixed_labels,
        moving_labels, moving_mask, truth.h5, targets_{fixed,moving} (labelled target-<n>) and
        landmarks_{fixed,moving}.mrk.json (moving: the noisy clicks); returns name -> path."""
        names = ("fixed", "moving", "fixed_labels", "moving_labels", "moving_mask")
        labels = [f"target-{i + 1}" for i in range(len(self.targets_fixed))]
        points = {
            "targets_fixed": (self.targets_fixed, labels),
            "targets_moving": (self.targets_moving, labels),
            "landmarks_fixed": (self.landmarks_fixed, self.landmark_labels),
            "landmarks_moving": (self.landmarks_moving, self.landmark_labels),
        }
        return write_case(folder, {name: getattr(self, name) for name in names}, {"truth": self.truth}, points)


def _ultrasound(
    source, box: sitk.Image, fan: Fan, moving_to_fixed: Callable, values_range, gland: Gland, rng
) -> tuple[np.ndarray, np.ndarray]:
    """The ultrasound-like grey levels on ``box`` (scan-converted from the fan's polar grid) and the fan mask.
    ``values_range`` (low, high) of the source MR maps it to 0..1 for the echogenicity."""
    x = moving_to_fixed(fan.polar_points())
    low, high = values_range
    values_n = np.clip((source_mr_values(source, x) - low) / (high - low), 0.0, 1.0)
    polar = sitk.GetImageFromArray(log_compress(echo_amplitude(values_n, x, gland, fan, Waves.random(rng), rng)))
    index, inside = fan.polar_index(voxel_points(box))
    grey = sample_at(polar, index) * inside
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
    fixed_grid = grid_around(center_lps, size_mm, spacing_mm)
    gland = make_gland(np.asarray(center_lps, float) + rng.uniform(-4, 4, 3), rng)
    rigid = random_rigid(rng, angle_deg, shift_mm, gland.center)
    beam_in_fixed = rigid.matrix[:3, :3].T @ BEAM
    push = ProbePush(
        gland.center - beam_in_fixed * float(gland.surface_radius(-beam_in_fixed)),
        beam_in_fixed,
        push_mm,
        0.4 * push_mm,
        PUSH_SIGMA_MM,
    )
    deformation = push_transform(push, grid_around(push.point, 8.0 * push.sigma_mm, 2.0))
    truth = Transform((rigid @ deformation).sitk, inverse=deformation.inverse() @ rigid.inverse())

    fixed_points = voxel_points(fixed_grid)
    source_values = source_mr_values(source, fixed_points)
    values_range = tuple(np.percentile(source_values, [2, 98]))
    fixed = image_like(mr_with_gland(source_values, fixed_points, gland, float(spacing_mm), rng), fixed_grid)

    moving_center = rigid.transform_points(push.forward(gland.center[None]))[0]
    apex = moving_center - APEX_BEHIND_GLAND_MM * BEAM
    box_center = apex + (PROBE_RADIUS_MM + us_size_mm[1] / 2) * BEAM
    box_center[[0, 2]] = moving_center[[0, 2]]
    box = grid_around(box_center, us_size_mm, us_spacing_mm)
    step = float(min(us_spacing_mm))
    fan = Fan.covering(apex, PROBE_RADIUS_MM, box, *FAN_HALF_ANGLES_DEG, 0.8 * step, 1.5 * step / 55.0)
    inverse_matrix = rigid.inverse().matrix

    def moving_to_fixed(points: np.ndarray) -> np.ndarray:
        return push.inverse(apply_matrix(inverse_matrix, points))

    grey, fov = _ultrasound(source, box, fan, moving_to_fixed, values_range, gland, rng)
    moving = image_like(grey, box)

    targets_fixed = _targets(gland, targets, rng)
    landmarks_fixed = np.concatenate([gland.calcifications, gland.cyst[None], gland.urethra_ends()])
    landmarks_true = truth.transform_points(landmarks_fixed)
    return GuidedPair(
        fixed=fixed,
        moving=moving,
        fixed_labels=named_labels(gland.labels(fixed_points), fixed_grid, GLAND_NAMES),
        moving_labels=named_labels(gland.labels(moving_to_fixed(voxel_points(box))), box, GLAND_NAMES),
        moving_mask=image_like(fov, box),
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
