"""The any-pose search with isotropic scale, for presets that scale (similarity, affine): shrunken
tissue (cleared, fixed, sectioned) against an in-vivo image, often a brain alone or a partial stack
against a whole head. Poses map fixed to moving points (LPS mm); a similarity pose is x_m = s R x_f + t.

1. Seeds and grid (:mod:`.scale_seed`): size ratios of the foregrounds (or masks) and a geometric
   grid of scales bracketing them.
2. For every scale s, the rigid search's grid (:func:`.grid.candidate_poses`: 400 rotations and the
   principal-axis matches, centres met, slides along a cut field of view, and along the moving tissue's
   principal axes when it looks dissected, :func:`.scale_seed.looks_dissected`) in a frame where the
   moving image is brought back to size by s about its foreground centre; all scored at once at
   5 mm (the moving image at the same anatomical resolution, 5 mm x the typical seed) with the
   outline counting (:class:`.scorer.PoseScorer`'s rule). The outline fixes the rotation roughly,
   not the scale: the best pose of every scale is refined rigidly.
3. From each, and from it turned by TURN_DEG about each axis, and from the grid's best poses by the
   overlap rule at 10 mm, rotation, shift and scale are refined together where both images exist
   (:class:`.overlap_scorer.OverlapPoseScorer`: the moving tissue, or the fixed mask). That rule's
   basin is narrow (15-20 degrees at 5 mm) but true.
4. The best distinct poses are polished at 4 mm on the fixed foreground (or mask) and a rim; the
   best is the start.

Measured (Testing/Benchmarks/bench_shrink.py): see that benchmark's table. No mirror check here: the
rigid search's mirror verdict needs proper and mirrored poses of equal size, and a mirrored header
is a question for the rigid preset first.
"""

from __future__ import annotations

import time

import numpy as np
import SimpleITK as sitk

from ...core.choices import FULL_ROTATION_DEG
from ...core.errors import InputError
from ...core.rotations import axis_angle_matrices, isotropic_scale
from ...core.transforms import Transform
from .anypose import AnyPoseResult
from .coarse import CoarseImage
from .grid import candidate_poses
from .local_search import distinct_scaled_poses, local_search
from .overlap_scorer import overlap_scorer
from .scale_seed import SCALE_STEP, looks_dissected, scale_about, scale_grid, scale_seeds, solid

SEARCH_SPACING_MM, POLISH_SPACING_MM = 5.0, 4.0
RANK_SPACING_MM = 10.0  # ranking the grid by the overlap rule
GRID_SAMPLES, INSIDE_SAMPLES, POLISH_SAMPLES = 3000, 6000, 15000
KEEP_PER_SCALE, INSIDE_STARTS, POLISH_COUNT, TURN_DEG = 1, 8, 3, 20.0


def _turns(center: np.ndarray) -> np.ndarray:
    """Identity and turns by TURN_DEG about each axis through ``center`` (fixed space), (7, 4, 4)."""
    turns = [np.eye(4)]
    for axis in range(3):
        for sign in (1, -1):
            vector = np.zeros(3)
            vector[axis] = sign * np.radians(TURN_DEG)
            turn = np.eye(4)
            turn[:3, :3] = axis_angle_matrices(vector[None])[0]
            turn[:3, 3] = center - turn[:3, :3] @ center
            turns.append(turn)
    return np.stack(turns)


def search_scaled_pose(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    prior: Transform | None = None,
    max_rotation_deg: float = FULL_ROTATION_DEG,
    seed: int = 0,
) -> AnyPoseResult:
    """Search similarity poses (fixed -> moving, LPS mm) over all rotations and a bracket of scales.

    As :func:`.anypose.search_any_pose` (``prior`` applied after the searched pose, rotations within
    ``max_rotation_deg`` of it), plus isotropic scale. The masks seed the scale and, with the
    moving tissue, say where both images exist. The result's ``scale`` is the start's isotropic
    scale (moving / fixed size), ``scale_seeds`` the seeds and ``scales`` the grid.
    """
    started = time.perf_counter()
    if prior is not None and not prior.is_linear:
        raise InputError("the any-pose search needs a linear initial transform: use --init auto or none with it")
    base = np.eye(4) if prior is None else prior.matrix
    base_scale = isotropic_scale(base[:3, :3])
    to_base = np.linalg.inv(base)

    fixed_coarse = CoarseImage.of(fixed, SEARCH_SPACING_MM, fixed_mask)
    fixed_solid, moving_solid = solid(fixed_coarse), solid(CoarseImage.of(moving, SEARCH_SPACING_MM, moving_mask))
    seeds, dissected = scale_seeds(fixed_solid, moving_solid), looks_dissected(fixed_solid, moving_solid)
    seeds = {name: value / base_scale for name, value in seeds.items()}
    scales = scale_grid(seeds, fixed_mask is not None or moving_mask is not None)
    # The moving image at about the fixed image's anatomical resolution: tissue shrunk to 0.65 is
    # sampled at 0.65 x 5 mm (at 5 mm, each of its voxels would span 8 mm of anatomy).
    typical = min(float(np.exp(np.mean(np.log(list(seeds.values()))))) * base_scale, 1.0)
    moving_coarse = CoarseImage.of(moving, SEARCH_SPACING_MM * typical, moving_mask)
    fixed_whole = CoarseImage.of(fixed, SEARCH_SPACING_MM, None)  # the grid sees whole images
    fixed_center = fixed_coarse.points.mean(axis=0)
    radius = float(np.sqrt(((fixed_coarse.points - fixed_center) ** 2).sum(axis=1).mean()))
    moving_center = (moving_coarse.points @ to_base[:3, :3].T + to_base[:3, 3]).mean(axis=0)

    # 2. Each scale's rigid grid in the frame where the moving image is back to size.
    blocks = []
    for scale in scales:
        sized = scale_about(scale, moving_center)
        to_virtual = np.linalg.inv(sized) @ to_base
        proper, _ = candidate_poses(fixed, moving, fixed_whole, moving_coarse, to_virtual, max_rotation_deg, False,
                                    dissected)  # fmt: skip
        blocks.append(sized @ proper)
    poses = np.concatenate(blocks)

    def total(p: np.ndarray) -> np.ndarray:
        return base @ p

    grid_score = overlap_scorer(fixed_whole, moving_coarse, None, seed=seed, samples=GRID_SAMPLES)
    values = grid_score(total(poses))
    starts, offset = [], 0
    for block in blocks:
        chunk = values[offset : offset + len(block)]
        starts += [block[i] for i in distinct_scaled_poses(block, chunk, KEEP_PER_SCALE, fixed_center)]
        offset += len(block)
    refined, _ = local_search(lambda p: grid_score(total(p)), np.stack(starts), fixed_center, radius, 16.0, 2.0)

    # 3. Rotation, shift and scale together, where both images exist, from each and its turns, and
    # from the grid's best poses by that rule itself (a partial stack: the outline misleads the first).
    # Samples from the fixed foreground and a rim: from the whole box, too few land in the tissue,
    # and mutual information from few samples is biased high (false poses outscored the truth).
    fixed_masked = fixed_coarse if fixed_mask is not None else fixed_whole
    inside = overlap_scorer(
        fixed_masked, moving_coarse, fixed_whole.dilated(1), tissue_only=True, seed=seed, samples=INSIDE_SAMPLES
    )
    # The grid's poses are ranked by that rule at 10 mm, where its basin is wide enough for the grid's
    # spacing (at 5 mm, poses 15 mm from the truth scored below false ones on two 65% stacks).
    rank_fixed = CoarseImage.of(fixed, RANK_SPACING_MM, fixed_mask)
    rank_whole = CoarseImage.of(fixed, RANK_SPACING_MM, None) if fixed_mask is not None else rank_fixed
    rank_moving = CoarseImage.of(moving, RANK_SPACING_MM * typical, moving_mask)
    ranker = overlap_scorer(
        rank_fixed, rank_moving, rank_whole.dilated(1), tissue_only=True, seed=seed, samples=INSIDE_SAMPLES
    )
    inside_values = ranker(total(poses))
    inside_starts = poses[distinct_scaled_poses(poses, inside_values, INSIDE_STARTS, fixed_center)]
    expanded = np.concatenate([pose @ _turns(fixed_center) for pose in refined] + [inside_starts])
    refined, _ = local_search(
        lambda p: inside(total(p)), expanded, fixed_center, radius, 8.0, 2.0, rounds=20, scale=True
    )

    # 4. Polish the best distinct ones at 4 mm on the fixed foreground (or mask) and a rim.
    fine_fixed = CoarseImage.of(fixed, POLISH_SPACING_MM, fixed_mask)
    fine_moving = CoarseImage.of(moving, POLISH_SPACING_MM * typical, moving_mask)
    fine = overlap_scorer(
        fine_fixed, fine_moving, fine_fixed.dilated(2), tissue_only=True, samples=POLISH_SAMPLES, bins=24,
        seed=seed, scale_range=(scales[0] * base_scale / SCALE_STEP, scales[-1] * base_scale * SCALE_STEP),
    )  # fmt: skip
    chosen = distinct_scaled_poses(refined, fine(total(refined)), POLISH_COUNT, fixed_center)
    polished, polished_values = local_search(
        lambda p: fine(total(p)), refined[chosen], fixed_center, radius, 4.0, 0.5, scale=True
    )
    best = int(np.argmax(polished_values))
    transform = Transform.from_matrix(total(polished[best][None])[0])
    return AnyPoseResult(
        transform=transform,
        metric=float(polished_values[best]),
        centre_transform=transform,  # no separate image-centre run: a size-1 start is what failed before
        mirrored_metric=-np.inf,
        candidates=len(poses),
        evaluations=grid_score.evaluations + ranker.evaluations + inside.evaluations + fine.evaluations,
        seconds=time.perf_counter() - started,
        mirror_checked=False,
        scale=isotropic_scale(transform.matrix[:3, :3]),
        scale_seeds={name: round(value * base_scale, 4) for name, value in seeds.items()},
        scales=[round(float(s * base_scale), 4) for s in scales],
    )
