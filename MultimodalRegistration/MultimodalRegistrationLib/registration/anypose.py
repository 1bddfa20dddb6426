"""Any-pose initialisation: find a registration's starting pose from anywhere on the rotation sphere.

1. At 7 mm voxels, score 400 rotations spread over the whole sphere plus the principal-axis
   matches by mutual information (:mod:`.pose_scorer`), each translated so that the foreground
   centres meet; where one image's field of view cuts the anatomy short (a CT cropped top and
   bottom, a head MR against a neck-to-vertex CT), also slide it along that axis.
2. Refine the best few distinct poses, and the image-centre start, by a pattern search at 7 mm.
3. Polish the best two at 4 mm on samples in and around the fixed foreground; the best proper
   pose is the start. The users' masks count from here on (steps 1 and 2 see whole images).
Mirrored (improper) poses go through the same steps, and each side also tries the other's best
pose reflected through the fixed anatomy's planes (a nearly symmetric head fits both). When a
mirrored pose still explains the images clearly better than every rotation, an image header is
probably flipped: the search stops and says which axis. A slab (thinner than 40 mm) is exempt,
and its search keeps near the images' own orientation, since intensities cannot fix its tilt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.choices import FULL_ROTATION_DEG
from ..core.errors import InputError
from ..core.metric import shrink_to_spacing
from ..core.rotations import (
    axis_angle_matrices,
    pose_difference,
    rigid_matrices,
    rotation_angle_deg,
    rotation_grid,
)
from ..core.transforms import Transform
from .centres import centre_alignment, foreground_mask
from .pose_scorer import PoseScorer

SEARCH_SPACING_MM, POLISH_SPACING_MM = 7.0, 4.0
GRID_ROTATIONS = 400
KEEP_PROPER, KEEP_MIRRORED, POLISH_PROPER = 6, 2, 2
POLISH_SAMPLES = 15000
DISTINCT_DEG, DISTINCT_MM = 25.0, 25.0
# Slides along a cut axis: only when the cut image is shorter than the other by twice this (mm).
SLIDE_MIN_MM, SLIDE_STEP_MM, SLIDE_MAX_MM = 20.0, 15.0, 105.0
# A face of the image holding this fraction of the largest cross-section cuts the anatomy.
CUT_FRACTION = 0.2
# A mirrored pose must beat every rotation by this fraction of the mutual information (at the
# polish level) to stop the run. A head is nearly symmetric, so the difference is small: over 40
# random poses of the phantom, an unflipped pair scores -7% to -3.7%, a left-right flipped one
# +2% to +7.5%; the perfectly symmetric MNI template, where nothing can tell, -1.1% to +0.2%.
MIRROR_MARGIN = 0.015
MIRROR_MIN_NATS = 0.01  # and by this much: with hardly any information, nothing is clearly better
# A foreground thinner than this (mm) is a slab: it fits its mirror image through its plane as
# well as itself (no mirror check), and its tilt is not fixed by the intensities (an oblique cut
# through a head can match it better than the true one): the search keeps within SLAB_ROTATION_DEG.
SLAB_MM, SLAB_ROTATION_DEG = 40.0, 30.0
# A pose turned more than max_rotation_deg plus this is not chosen (refinement may turn a little further).
ROTATION_SLACK_DEG = 15.0
AXIS_NAMES = ("left-right", "anterior-posterior", "superior-inferior")
# The users' masks count only in the polish, and only when they hold this many 4 mm voxels
# (128 ml): a region of interest without the outline of the anatomy around it leaves too few
# samples to tell far poses, or a mirror image, apart (a 15 mm sphere led the search 100 mm off).
MASK_MIN_SAMPLES = 2000


@dataclass
class AnyPoseResult:
    """The outcome of :func:`search_any_pose`. Transforms map fixed to moving points (LPS mm)."""

    transform: Transform  # the best proper pose: where the engine starts
    metric: float  # its mutual information (nats) at the polish level
    centre_transform: Transform  # the image-centre start after the 7 mm refinement
    mirrored_metric: float  # the best mirrored pose's mutual information, -inf if none was searched
    candidates: int  # poses in the initial grid (rotations x slides, mirrored ones included)
    evaluations: int  # metric evaluations in all
    seconds: float
    mirror_checked: bool = True  # False when asked, or for a slab

    def summary(self) -> dict:
        """JSON-ready numbers for provenance."""
        return {
            "matrix_lps": np.round(self.transform.matrix, 6).tolist(),
            "metric": round(self.metric, 6),
            "mirrored_metric": round(self.mirrored_metric, 6) if np.isfinite(self.mirrored_metric) else None,
            "candidates": self.candidates,
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 3),
            "mirror_checked": self.mirror_checked,
        }


@dataclass
class _Coarse:
    """An image shrunk to a few mm: its foreground and the user's mask on that grid (z, y, x
    booleans; the mask None if not given) and the foreground points (LPS mm)."""

    image: sitk.Image
    foreground: np.ndarray
    mask: np.ndarray | None
    points: np.ndarray

    @classmethod
    def of(cls, image: sitk.Image, spacing_mm: float, mask: sitk.Image | None) -> "_Coarse":
        """``image`` at about ``spacing_mm`` voxels, its foreground within ``mask`` if given."""
        small = sitk.Cast(shrink_to_spacing(image, spacing_mm), sitk.sitkFloat32)
        foreground = sitk.GetArrayFromImage(foreground_mask(small)).astype(bool)
        if mask is not None:
            mask = sitk.Resample(mask, small, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
            mask = sitk.GetArrayFromImage(mask) > 0
            foreground &= mask
        if foreground.sum() < 10:
            foreground = np.ones(foreground.shape, bool) if mask is None or mask.sum() < 10 else mask
        index = np.argwhere(foreground)[:, ::-1].astype(float)
        to_physical = np.asarray(small.GetDirection()).reshape(3, 3) * np.asarray(small.GetSpacing())
        return cls(small, foreground, mask, index @ to_physical.T + np.asarray(small.GetOrigin()))

    def scorer(self, moving: "_Coarse", fixed_region: np.ndarray | None, **options) -> PoseScorer:
        """A pose scorer with this as the fixed image, sampling ``fixed_region`` (all if None);
        the users' masks restrict the samples and the moving values."""
        region = fixed_region
        if self.mask is not None:
            region = self.mask if region is None else region & self.mask
        return PoseScorer(
            self.image, moving.image, self.foreground, moving.foreground,
            fixed_region=region, moving_region=moving.mask, **options,
        )  # fmt: skip

    def dilated(self, voxels: int) -> np.ndarray:
        mask = sitk.GetImageFromArray(self.foreground.astype(np.uint8))
        return sitk.GetArrayFromImage(sitk.BinaryDilate(mask, [voxels] * 3)).astype(bool)

    def thickness(self) -> float:
        """The foreground's extent (mm) across its thinnest direction (a slab L thick: variance L^2 / 12)."""
        return float(np.sqrt(12 * max(np.linalg.eigvalsh(np.cov(self.points.T)).min(), 0.0)))

    def cut_axes(self) -> list[int]:
        """Image axes (0, 1, 2) along which the field of view cuts the foreground short."""
        axes = []
        for axis in range(3):
            array_axis = 2 - axis
            other = tuple(a for a in range(3) if a != array_axis)
            section = self.foreground.sum(axis=other)
            if max(section[0], section[-1]) > CUT_FRACTION * section.max():
                axes.append(axis)
        return axes


def _slides(linear: np.ndarray, fixed_cuts: np.ndarray, moving_cuts: np.ndarray, covariances) -> list[np.ndarray]:
    """Fixed-space shifts (mm) to try with each (K, 3, 3) linear part (fixed -> moving).

    ``fixed_cuts`` (C, 3) are unit directions in fixed space along which the fixed field of view
    cuts the anatomy short, ``moving_cuts`` the same in moving space. An image cut shorter than
    the other may sit anywhere along the other: slide along that direction. Lengths come from
    the foregrounds' covariances (a slab of length L has variance L^2 / 12 across it).
    Returns K arrays (S, 3), zero shift first.
    """
    fixed_covariance, moving_covariance = covariances
    count = len(linear)
    directions = np.concatenate(
        [np.broadcast_to(fixed_cuts, (count, len(fixed_cuts), 3)), np.einsum("kji,cj->kci", linear, moving_cuts)],
        axis=1,
    )  # (K, C, 3) in fixed space
    fixed_is_cut = np.arange(directions.shape[1]) < len(fixed_cuts)
    mapped = np.einsum("kij,kcj->kci", linear, directions)
    fixed_length = np.sqrt(12 * np.einsum("kci,ij,kcj->kc", directions, fixed_covariance, directions).clip(0))
    moving_length = np.sqrt(12 * np.einsum("kci,ij,kcj->kc", mapped, moving_covariance, mapped).clip(0))
    half_difference = np.abs(moving_length - fixed_length) / 2
    usable = ((fixed_length < moving_length) == fixed_is_cut) & (half_difference > SLIDE_MIN_MM)
    half_difference = np.where(usable, half_difference, 0.0)
    slides = []
    for k in range(count):
        if not usable[k].any():
            slides.append(np.zeros((1, 3)))
            continue
        best = int(np.argmax(half_difference[k]))
        steps = int(min(half_difference[k, best], SLIDE_MAX_MM) // SLIDE_STEP_MM)
        offsets = np.concatenate([[0], np.arange(1, steps + 1), -np.arange(1, steps + 1)]) * SLIDE_STEP_MM
        slides.append(np.outer(offsets, directions[k, best]))
    return slides


def _principal_axes(points: np.ndarray) -> np.ndarray:
    """Columns: principal axes of a point cloud, largest variance first."""
    _, vectors = np.linalg.eigh(np.cov(points.T))
    return vectors[:, ::-1]


def _moves(deltas_mm: np.ndarray, radius_mm: float, center: np.ndarray) -> np.ndarray:
    """(K, 4, 4) fixed-space moves from (K, 6) parameters in mm: a turn about ``center`` that moves
    points at ``radius_mm`` by the first three (about x, y, z), then a shift by the last three."""
    deltas_mm = np.asarray(deltas_mm, float).reshape(-1, 6)
    rotations = axis_angle_matrices(deltas_mm[:, :3] / radius_mm)
    return rigid_matrices(rotations, center - rotations @ center + deltas_mm[:, 3:])


def local_search(score, poses: np.ndarray, center, radius_mm: float, start_mm: float, stop_mm: float, rounds: int = 30):
    """Refine (K, 4, 4) poses side by side by a pattern search maximising ``score``.

    Each round tries, for every pose, +-step along each of the 6 rigid parameters (moves applied
    first, in fixed space) and then the Newton step of a parabola through each parameter's three
    values; it takes the best if it improves, else halves the step. A pose stops below ``stop_mm``.
    Returns the poses and their scores.
    """
    poses = np.array(poses, float)
    values = score(poses)
    steps = np.full(len(poses), float(start_mm))
    unit = np.concatenate([np.eye(6), -np.eye(6)])
    for _ in range(rounds):
        active = np.flatnonzero(steps >= stop_mm)
        if active.size == 0:
            break
        step = steps[active]
        moves = _moves((unit[None] * step[:, None, None]).reshape(-1, 6), radius_mm, center).reshape(-1, 12, 4, 4)
        trials = poses[active][:, None] @ moves
        trial_values = score(trials.reshape(-1, 4, 4)).reshape(len(active), 12)
        plus, minus, here = trial_values[:, :6], trial_values[:, 6:], values[active][:, None]
        slope, curvature = (plus - minus) / 2, plus + minus - 2 * here
        newton = np.where(curvature < 0, -slope / np.where(curvature < 0, curvature, -1), np.sign(slope))
        newton_poses = poses[active] @ _moves(np.clip(newton, -1, 1) * step[:, None], radius_mm, center)
        newton_values = score(newton_poses)
        for row, pose in enumerate(active):
            best = int(np.argmax(trial_values[row]))
            candidate, value = trials[row, best], trial_values[row, best]
            if newton_values[row] > value:
                candidate, value = newton_poses[row], newton_values[row]
            if value > values[pose] + 1e-4:
                poses[pose], values[pose] = candidate, value
            else:
                steps[pose] /= 2
    return poses, values


def _distinct(
    poses: np.ndarray, values: np.ndarray, count: int, center: np.ndarray,
    degrees: float = DISTINCT_DEG, mm: float = DISTINCT_MM,
) -> list[int]:  # fmt: skip
    """Indices of the best ``count`` poses, each differing from the better ones by a rotation
    (``degrees``) or a shift of ``center`` (``mm``)."""
    chosen: list[int] = []
    for index in np.argsort(-values):
        differences = [pose_difference(poses[index], poses[other], center) for other in chosen]
        if all(angle >= degrees or shift >= mm for angle, shift in differences):
            chosen.append(int(index))
            if len(chosen) == count:
                break
    return chosen


def flipped_axis(mirrored: np.ndarray, moving: sitk.Image) -> int:
    """The moving image axis (0, 1, 2) most likely flipped by a wrong header, given the best
    mirrored pose (4x4, fixed -> moving): the one whose flip leaves the smallest rotation between
    the images, since scans are mostly taken in similar orientations."""
    direction = np.asarray(moving.GetDirection()).reshape(3, 3)
    flips = [np.eye(3) - 2 * np.outer(direction[:, axis], direction[:, axis]) for axis in range(3)]
    return int(np.argmin([rotation_angle_deg(flip @ mirrored[:3, :3]) for flip in flips]))


def axis_name(image: sitk.Image, axis: int) -> str:
    """Anatomical name of an image axis, from its direction in LPS."""
    column = np.abs(np.asarray(image.GetDirection()).reshape(3, 3)[:, axis])
    return AXIS_NAMES[int(np.argmax(column))]


def _candidate_poses(
    fixed: sitk.Image, moving: sitk.Image, fixed_coarse: _Coarse, moving_coarse: _Coarse,
    to_virtual: np.ndarray, max_rotation_deg: float, check_mirror: bool,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The initial grid: proper and mirrored (K, 4, 4) poses from fixed space to the prior-mapped
    moving frame (``to_virtual`` maps moving space there).

    Rotations: identity, the principal-axis matches (4 sign choices) and the grid, within
    ``max_rotation_deg``; mirrored: the same after one reflection (any mirrored pose is a
    reflection times a proper one; a limited search tries each moving image axis). Each is
    translated so that the foreground centres meet, and slid along a cut field of view.
    """
    moving_points = moving_coarse.points @ to_virtual[:3, :3].T + to_virtual[:3, 3]
    fixed_center, moving_center = fixed_coarse.points.mean(axis=0), moving_points.mean(axis=0)
    fixed_axes, moving_axes = _principal_axes(fixed_coarse.points), _principal_axes(moving_points)
    handedness = np.sign(np.linalg.det(moving_axes) * np.linalg.det(fixed_axes))
    signs = [np.diag([a, b, a * b * handedness]) for a in (1, -1) for b in (1, -1)]
    principal = np.stack([moving_axes @ sign @ fixed_axes.T for sign in signs])
    rotations = np.concatenate([np.eye(3)[None], principal, rotation_grid(GRID_ROTATIONS)])
    rotations = rotations[rotation_angle_deg(rotations) <= max_rotation_deg + 1e-6]
    fixed_direction = np.asarray(fixed.GetDirection()).reshape(3, 3)
    moving_direction = to_virtual[:3, :3] @ np.asarray(moving.GetDirection()).reshape(3, 3)
    moving_direction /= np.linalg.norm(moving_direction, axis=0, keepdims=True)
    mirror_axes = (range(3) if max_rotation_deg < FULL_ROTATION_DEG else range(1)) if check_mirror else range(0)
    mirrors = [np.eye(3) - 2 * np.outer(moving_direction[:, a], moving_direction[:, a]) for a in mirror_axes]
    linear = np.concatenate([rotations] + [mirror @ rotations for mirror in mirrors])
    fixed_cuts = fixed_direction[:, fixed_coarse.cut_axes()].T
    moving_cuts = moving_direction[:, moving_coarse.cut_axes()].T
    covariances = (np.cov(fixed_coarse.points.T), np.cov(moving_points.T))
    poses = np.concatenate([
        rigid_matrices(np.tile(part, (len(shifts), 1, 1)), moving_center - part @ fixed_center + shifts @ part.T)
        for part, shifts in zip(linear, _slides(linear, fixed_cuts, moving_cuts, covariances))
    ])  # fmt: skip
    mirrored = np.linalg.det(poses[:, :3, :3]) < 0
    return poses[~mirrored], poses[mirrored]


def _twins(pose: np.ndarray, fixed: sitk.Image, center: np.ndarray) -> np.ndarray:
    """A 4x4 pose's three mirror images: reflected (first, in fixed space) through ``center``
    across each fixed image axis. Proper poses give mirrored ones and back; where the fixed
    anatomy is symmetric about such a plane (a head's midline, any plane of a thin slab), a
    twin fits as well as the pose."""
    axes = np.asarray(fixed.GetDirection()).reshape(3, 3).T
    mirrors = np.stack([np.eye(3) - 2 * np.outer(axis, axis) for axis in axes])
    return pose @ rigid_matrices(mirrors, center - mirrors @ center)


def search_any_pose(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    prior: Transform | None = None,
    max_rotation_deg: float = FULL_ROTATION_DEG,
    check_mirror: bool = True,
    seed: int = 0,
) -> AnyPoseResult:
    """Search rigid poses (fixed -> moving, LPS mm) over all rotations for the best starting pose.

    ``prior`` (linear, fixed -> moving) is applied after the searched pose: the result is
    ``prior @ pose``. ``max_rotation_deg`` (degrees, relative to the prior) keeps the search to
    rotations within that angle, for images known to be roughly aligned: fewer poses to score.
    Raises :class:`InputError` when a mirrored pose explains the images clearly better than any
    rotation (``check_mirror``; never for a slab thinner than SLAB_MM, which fits its mirror
    image as well; a slab's search also keeps within SLAB_ROTATION_DEG).
    """
    started = time.perf_counter()
    if prior is not None and not prior.is_linear:
        raise InputError("the any-pose search needs a linear initial transform: use --init auto or none with it")
    base = np.eye(4) if prior is None else prior.matrix
    to_virtual = np.linalg.inv(base)  # moving space -> the prior-mapped frame the searched pose maps into

    def total(poses: np.ndarray) -> np.ndarray:
        return base @ poses

    fixed_coarse = _Coarse.of(fixed, SEARCH_SPACING_MM, None)
    moving_coarse = _Coarse.of(moving, SEARCH_SPACING_MM, None)
    # A slab is its own mirror image through its plane: mirrored and proper poses fit it alike, so
    # mirrored poses still serve the search (through their proper twins) but prove nothing.
    slab = min(fixed_coarse.thickness(), moving_coarse.thickness()) < SLAB_MM
    judge_mirror = check_mirror and not slab
    if slab:
        max_rotation_deg = min(max_rotation_deg, SLAB_ROTATION_DEG)
    fixed_center = fixed_coarse.points.mean(axis=0)
    radius = float(np.sqrt(((fixed_coarse.points - fixed_center) ** 2).sum(axis=1).mean()))
    score = fixed_coarse.scorer(moving_coarse, None, seed=seed)

    # 1. Every rotation of the grid (and its mirror images), centres on top of each other, slid where cut.
    proper_poses, mirrored_poses = _candidate_poses(
        fixed, moving, fixed_coarse, moving_coarse, to_virtual, max_rotation_deg, check_mirror
    )
    proper_values = score(total(proper_poses))
    mirrored_values = score(total(mirrored_poses))

    # 2. Refine the best distinct poses and the image-centre start at 7 mm.
    centre = to_virtual @ centre_alignment(fixed, moving, prior, "geometry").matrix
    proper_starts = proper_poses[_distinct(proper_poses, proper_values, KEEP_PROPER, fixed_center)]
    mirrored_starts = mirrored_poses[_distinct(mirrored_poses, mirrored_values, KEEP_MIRRORED, fixed_center)]
    starts = np.concatenate([proper_starts, mirrored_starts, centre[None]])
    refined, refined_values = local_search(lambda p: score(total(p)), starts, fixed_center, radius, 16.0, 2.0)
    proper_count = len(proper_starts)
    proper_rows = np.r_[0:proper_count, len(refined) - 1]  # the proper starts and the centre start
    chosen = proper_rows[_distinct(refined[proper_rows], refined_values[proper_rows], POLISH_PROPER, fixed_center, 5.0, 5.0)]

    # 3. Polish at 4 mm on the fixed foreground and a rim of background, where mirror images differ.
    def polish_scorer(fixed_region: sitk.Image | None, moving_region: sitk.Image | None) -> PoseScorer:
        fine_fixed = _Coarse.of(fixed, POLISH_SPACING_MM, fixed_region)
        fine_moving = _Coarse.of(moving, POLISH_SPACING_MM, moving_region)
        return fine_fixed.scorer(fine_moving, fine_fixed.dilated(2), samples=POLISH_SAMPLES, bins=24, seed=seed)

    fine_score = polish_scorer(fixed_mask, moving_mask)
    if len(fine_score.points) < MASK_MIN_SAMPLES and (fixed_mask is not None or moving_mask is not None):
        fine_score = polish_scorer(None, None)

    def polish(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return local_search(lambda p: fine_score(total(p)), poses, fixed_center, radius, 3.0, 0.5)

    polish_starts = [refined[chosen]]
    if len(mirrored_starts):
        # The best mirrored pose, and the best proper one's mirror images (for a nearly symmetric
        # head, one of them is the mirrored optimum): both sides get the same chance.
        best_mirrored = refined[proper_count + int(np.argmax(refined_values[proper_count:-1]))]
        polish_starts += [best_mirrored[None], _twins(refined[chosen[0]], fixed, fixed_center)]
    polished, polished_values = polish(np.concatenate(polish_starts))
    proper, proper_values = polished[: len(chosen)], polished_values[: len(chosen)]
    mirrored, mirrored_metric = None, -np.inf
    if len(polished) > len(chosen):
        best = len(chosen) + int(np.argmax(polished_values[len(chosen) :]))
        mirrored, mirrored_metric = polished[best], float(polished_values[best])
    if mirrored_metric > proper_values.max():
        # And the other way round before calling the images mirrored.
        twins, twin_values = polish(_twins(mirrored, fixed, fixed_center))
        proper, proper_values = np.concatenate([proper, twins]), np.concatenate([proper_values, twin_values])
    allowed = rotation_angle_deg(proper[:, :3, :3]) <= max_rotation_deg + ROTATION_SLACK_DEG
    winner = int(np.argmax(np.where(allowed | ~allowed.any(), proper_values, -np.inf)))
    result = AnyPoseResult(
        transform=Transform.from_matrix(total(proper[winner][None])[0]),
        metric=float(proper_values[winner]),
        centre_transform=Transform.from_matrix(total(refined[-1][None])[0]),
        mirrored_metric=mirrored_metric,
        candidates=len(proper_poses) + len(mirrored_poses),
        evaluations=score.evaluations + fine_score.evaluations,
        seconds=time.perf_counter() - started,
        mirror_checked=judge_mirror,
    )
    gap = result.mirrored_metric - result.metric
    if judge_mirror and gap > MIRROR_MARGIN * result.metric and gap > MIRROR_MIN_NATS:
        axis = flipped_axis(total(mirrored[None])[0], moving)
        raise InputError(
            "the moving image looks mirrored compared with the fixed image, most likely along its "
            f"{axis_name(moving, axis)} axis (image axis {axis}): a mirrored pose matches the images clearly "
            f"better than any rotation (mutual information {result.mirrored_metric:.3f} against {result.metric:.3f}). "
            "Check the image orientation (direction and axis signs) in both image headers; "
            "if one image really is a mirror image of the other, flip it first"
        )
    return result
