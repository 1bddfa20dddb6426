"""The pelvis-like CT -> MR case (:func:`pelvis_like_pair`), with exact truth.

A CT (fixed) and an MR (moving) of a pelvis whose bones each move rigidly on top of one global pose, the soft
tissue between them following smoothly. Images are SimpleITK images in LPS mm; every truth :class:`Transform`
maps fixed points to moving points (LPS mm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.phantom import add_bias_and_noise
from MultimodalRegistrationLib.core.transforms import Transform
from pair_files import write_case
from synthetic_geometry import (
    apply_matrix,
    distinct_directions,
    ellipsoid_distance,
    grid_around,
    half_space_distance,
    image_like,
    membership,
    named_labels,
    random_rigid,
    shell_distance,
    voxel_points,
)

# The sizes a benchmark uses (the defaults are the small test sizes).
BENCH_PELVIS = dict(spacing_mm=1.5, moving_spacing_mm=(1.4, 1.4, 2.0))


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
                shell_distance(p, (side * 38.0, 8.0, 20.0), (34.0, 40.0, 36.0), 8.0),
                half_space_distance(p, (side * 33.0, 0.0, 0.0), (side, 0.0, 0.0)),
                half_space_distance(p, (0.0, 0.0, -8.0), (0.0, 0.0, 1.0)),
            ]
        )
        cup = np.minimum(
            shell_distance(p, femoral, (26.0, 26.0, 26.0), 6.5),
            half_space_distance(p, femoral + (side * 4, 0, 0), (-side, 0, 0)),
        )
        pillar = ellipsoid_distance(p, (side * 48.0, 2.0, -2.0), (9.0, 11.0, 14.0))
        cavity = np.linalg.norm(p - femoral, axis=-1) - 19.5
        return np.minimum(np.maximum.reduce([wing, cup, pillar]), cavity)

    return distance


def _femur(side: float) -> Callable[[np.ndarray], np.ndarray]:
    """A femoral head (radius 14 mm) in the cup, with a neck running lateral and down."""
    femoral = _femoral_center(side)

    def distance(p: np.ndarray) -> np.ndarray:
        head = 14.0 - np.linalg.norm(p - femoral, axis=-1)
        return np.maximum(head, ellipsoid_distance(p, femoral + (side * 14.0, 0.0, -10.0), (13.0, 8.0, 8.0)))

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
    body, inner = membership(body_distance, width), membership(body_distance - 10.0, width)
    bladder = membership(ellipsoid_distance(p, (0.0, -32.0, -14.0), (26.0, 20.0, 20.0)), width) * inner
    return {"air": 1 - body, "fat": body - inner, "muscle": inner - bladder, "bladder": bladder}


def _pelvis_image(soft: dict[str, np.ndarray], bone_distances: list[np.ndarray], modality: int, width: float):
    """Blend soft tissue fractions and bones (cortex 2.5 mm thick over marrow) into one modality's values."""
    values = sum(PELVIS_TISSUES[name][modality] * fraction for name, fraction in soft.items())
    for distance in bone_distances:
        bone, marrow = membership(distance, width), membership(distance - 2.5, width)
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

    def write(self, folder: str | Path) -> dict[str, Path]:
        """The pair as files in ``folder`` (see :func:`pair_files.write_case`): fixed, moving, fixed_labels,
        moving_labels, truth_global.h5, truth_<bone>.h5 and targets_{fixed,moving}.mrk.json, labelled
        '<bone>-<n>'; returns name -> path."""
        images = {name: getattr(self, name) for name in ("fixed", "moving", "fixed_labels", "moving_labels")}
        transforms = {"truth_global": self.global_truth}
        transforms.update({f"truth_{name}": truth for name, truth in self.bone_truths.items()})
        labels = [f"{name}-{i + 1}" for name, found in self.targets_fixed.items() for i in range(len(found))]
        points = {
            "targets_fixed": (np.concatenate(list(self.targets_fixed.values())), labels),
            "targets_moving": (np.concatenate(list(self.targets_moving.values())), labels),
        }
        return write_case(folder, images, transforms, points)


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
    global_truth = random_rigid(rng, global_angle_deg, global_shift_mm, (0.0, 0.0, 0.0))
    directions = distinct_directions(rng, len(bones))
    bone_truths = {
        bone.name: global_truth @ random_rigid(rng, bone_angle_deg, bone_shift_mm, bone.center, direction)
        for bone, direction in zip(bones, directions)
    }

    fixed_grid = grid_around((0.0, 5.0, 0.0), (220.0, 160.0, 120.0), spacing_mm)
    p = voxel_points(fixed_grid)
    width = float(spacing_mm)
    fixed_distances = [bone.distance(p) for bone in bones]
    ct = _pelvis_image(_body_parts(p, width), fixed_distances, 0, width)
    ct = ct + rng.normal(0.0, 10.0, ct.shape).astype(np.float32)

    moving_grid = grid_around(
        global_truth.transform_points([[0.0, 5.0, 0.0]])[0], (210.0, 156.0, 120.0), moving_spacing_mm
    )
    v = voxel_points(moving_grid)
    bone_points = [apply_matrix(bone_truths[bone.name].inverse().matrix, v) for bone in bones]
    moving_distances = [bone.distance(x) for bone, x in zip(bones, bone_points)]
    soft = _soft_tissue_points(v, bone_points, moving_distances, apply_matrix(global_truth.inverse().matrix, v))
    moving_width = float(np.mean(moving_spacing_mm))
    mr = _pelvis_image(_body_parts(soft, moving_width), moving_distances, 1, moving_width)
    moving = add_bias_and_noise(image_like(mr, moving_grid), seed, bias=0.15, noise=8.0)

    names = {bone.label: bone.name for bone in bones}
    targets_fixed = {bone.name: _bone_targets(bone, targets_per_bone, rng) for bone in bones}
    return PiecewisePair(
        fixed=image_like(ct, fixed_grid),
        moving=moving,
        fixed_labels=named_labels(_bone_labels(fixed_distances, bones), fixed_grid, names),
        moving_labels=named_labels(_bone_labels(moving_distances, bones), moving_grid, names),
        names=names,
        global_truth=global_truth,
        bone_truths=bone_truths,
        targets_fixed=targets_fixed,
        targets_moving={name: bone_truths[name].transform_points(points) for name, points in targets_fixed.items()},
        bones=bones,
    )
