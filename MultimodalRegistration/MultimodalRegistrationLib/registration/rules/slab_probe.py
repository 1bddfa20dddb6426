"""A thin fixed slab fixes its tilt weakly. After the engine, poses tilted and shifted about its result are polished
on a 2 mm grid; one that lies apart from the result and agrees better is returned, and one that agrees about as well
is warned about. Transforms map fixed to moving points (LPS mm).

Measured (a helper's sweep, 2026-11-30: slabs of 4-12 slices of the phantom MR, 10-30 mm, as the fixed image against
the whole CT, 67 runs of elastix and ANTs rigid): 34 ended over 5 mm off, 29 of them unwarned, and the truth scored
higher than the result on 33 of those 34. The search scores at 7 and 4 mm, where such a slab is 2-4 voxels thick, and
elastix's coarse levels walked away even from the truth. A probed pose apart that agreed BETTER_NATS better came up
for 19 of the 34 wrong results and none of the 33 right ones (whose best gain was 0.002 nats); one within LEVEL_NATS
for 31 of the 34 wrong and 1 right one (2.2 mm off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ...core.extents import principal_extents
from ...core.metric import mutual_information
from ...core.rotations import axis_angle_matrices, rigid_matrices
from ...core.transforms import Transform
from ..pose.coarse import CoarseImage
from ..pose.local_search import local_search
from .far_from_start import moved_from_start_mm

PROBE_SPACING_MM = 2.0
PROBE_SAMPLES = 20000
TILTS_DEG = (-20.0, -10.0, 10.0, 20.0)  # about each of the slab's two in-plane axes
SPINS_DEG = (-15.0, 15.0)  # about its normal
SHIFTS_MM = (-10.0, 10.0)  # along its normal
APART_MM = 5.0  # a probed pose this far from the result (median over the slab) is another answer
BETTER_NATS = 0.02
LEVEL_NATS = 0.005
SLAB_POSE = "the slab's pose is weakly fixed"  # how its warnings start


@dataclass
class SlabProbe:
    """The best probed pose apart from the result: the transform, how far apart (mm), its mutual information."""

    transform: Transform
    apart_mm: float
    metric: float


def probe_slab(fixed: sitk.Image, moving: sitk.Image, result: Transform, seed: int) -> SlabProbe | None:
    """The best-scoring pose, polished from tilts and shifts of ``result`` about the slab's own axes, that ends more
    than APART_MM from it; None if none does."""
    coarse_fixed = CoarseImage.of(fixed, PROBE_SPACING_MM, None, centred=True)
    coarse_moving = CoarseImage.of(moving, PROBE_SPACING_MM, None, centred=True)
    score = coarse_fixed.scorer(coarse_moving, coarse_fixed.dilated(2), samples=PROBE_SAMPLES, bins=24, seed=seed)
    points = coarse_fixed.points
    centre = points.mean(0)
    radius = float(np.sqrt(((points - centre) ** 2).sum(1).mean()))
    axes = principal_extents(np.cov(points.T))[0]  # columns, the slab's normal last
    turns = [np.radians(deg) * axes[:, k] for k in (0, 1) for deg in TILTS_DEG]
    turns = axis_angle_matrices(np.array(turns + [np.radians(deg) * axes[:, 2] for deg in SPINS_DEG]))
    tilted = rigid_matrices(turns, centre - turns @ centre)  # about the slab's centre
    shifted = rigid_matrices(np.tile(np.eye(3), (len(SHIFTS_MM), 1, 1)), np.outer(SHIFTS_MM, axes[:, 2]))
    moves = np.concatenate([tilted, shifted])  # applied in fixed space, before the result
    poses, values = local_search(score, result.matrix @ moves, centre, radius, 6.0, 0.5)
    apart = np.array([moved_from_start_mm(fixed, result, Transform.from_matrix(pose)) for pose in poses])
    if not np.any(apart > APART_MM):
        return None
    best = int(np.argmax(np.where(apart > APART_MM, values, -np.inf)))
    found = Transform.from_matrix(poses[best])
    return SlabProbe(found, float(apart[best]), mutual_information(fixed, moving, found))


def slab_probe_words(probe: SlabProbe, metric_after: float, thickness_mm: float) -> tuple[bool, str | None]:
    """Whether ``probe`` replaces a result scoring ``metric_after`` (nats), and the warning, if any."""
    numbers = f"mutual information {probe.metric:.3f} against {metric_after:.3f}"
    check = ("check the result (a checkerboard, landmarks in QA), or start it near the answer (--initial-transform, "
             "FiducialPrealign)")  # fmt: skip
    if probe.metric > metric_after + BETTER_NATS:
        return True, (f"{SLAB_POSE}: a fixed slab {thickness_mm:.0f} mm thin; a pose {probe.apart_mm:.0f} mm from "
                      f"the engine's result agrees better ({numbers}) and is returned: {check}")  # fmt: skip
    if probe.metric >= metric_after - LEVEL_NATS:
        return False, (f"{SLAB_POSE}: a fixed slab {thickness_mm:.0f} mm thin; a pose {probe.apart_mm:.0f} mm from "
                       f"the result agrees about as well ({numbers}), so either may be wrong: {check}")  # fmt: skip
    return False, None
