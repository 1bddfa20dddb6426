"""Where the scale-aware search looks for the moving / fixed size ratio (isotropic scale).

Each image's foreground on the search grid (Otsu, gaps closed and holes filled: a T2 head's dark
skull and white matter fall below Otsu, the solid outline is what scales), or the user's mask
instead when given, gives a volume V and principal extents L1 >= L2 >= L3 (sqrt(12 x eigenvalue)
of the points' covariance). Seeds: (Vm / Vf)^(1/3) and the ratios of the two largest extents (a
partial stack cuts one axis short, not all three).

The seeds are biased when one image shows more than the other: a brain-only image against a
whole head reads ~0.8 of the true scale, a 65% stack ~0.87 on the volume ratio. So the search
scores a geometric grid of scales (steps of 2^(1/8), ~9%) bracketing the seeds widely, and mutual
information decides; with a mask the seeds compare like with like, and the bracket is narrow.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ...core.extents import principal_extents
from .coarse import CoarseImage

SCALE_STEP = 2 ** (1 / 8)
# The grid spans [low x the smallest seed, high x the largest]: without masks, and with one.
WIDE_BRACKET, MASK_BRACKET = (0.67, 1.5), (0.85, 1.2)
DISSECTED_RATIO = 0.8


class Solid(NamedTuple):
    """A coarse foreground with gaps closed and holes filled (or the user's mask): its voxel count, volume (mm³) and
    principal extents (mm, largest first)."""

    count: int
    volume: float
    extents: np.ndarray


def solid(coarse: CoarseImage) -> Solid:
    """The :class:`Solid` of ``coarse``'s foreground, or of the user's mask when given."""
    if coarse.mask is not None:
        filled = coarse.mask
    else:
        image = sitk.BinaryMorphologicalClosing(sitk.GetImageFromArray(coarse.foreground.astype(np.uint8)), [1, 1, 1])
        filled = sitk.GetArrayFromImage(sitk.BinaryFillhole(image)).astype(bool)
    small = coarse.image
    index = np.argwhere(filled)[:, ::-1].astype(float)
    to_physical = np.asarray(small.GetDirection()).reshape(3, 3) * np.asarray(small.GetSpacing())
    points = index @ to_physical.T + np.asarray(small.GetOrigin())
    extents = principal_extents(np.cov(points.T))[1] if len(points) >= 10 else np.zeros(3)
    return Solid(len(points), float(len(index) * np.prod(small.GetSpacing())), extents)


def scale_seeds(fixed: Solid, moving: Solid) -> dict[str, float]:
    """Moving / fixed size ratios: ``volume`` (cube root of the volume ratio), ``extent_1`` and ``extent_2``."""
    if fixed.count < 10 or moving.count < 10:
        return {"volume": 1.0}
    return {
        "volume": float((moving.volume / fixed.volume) ** (1 / 3)),
        "extent_1": float(moving.extents[0] / max(fixed.extents[0], 1e-6)),
        "extent_2": float(moving.extents[1] / max(fixed.extents[1], 1e-6)),
    }


def looks_dissected(fixed: Solid, moving: Solid) -> bool:
    """Whether one image's tissue is shorter than the other's along one principal axis than along the others,
    beyond what one size explains: the smallest ratio of the sorted principal extents (moving / fixed) is below
    DISSECTED_RATIO times the largest (a hemisphere against a whole head: 0.50-0.55; a 65% stack: 0.59-0.77; whole
    brains: 0.88-0.97, with or without a brain mask). The grid then slides the moving tissue where it is the
    shorter (:func:`.grid.candidate_poses`); a partial fixed image gains nothing from it."""
    if fixed.count < 10 or moving.count < 10:
        return False
    ratios = moving.extents / np.maximum(fixed.extents, 1e-6)
    return bool(ratios.min() < DISSECTED_RATIO * ratios.max())


def scale_grid(seeds: dict[str, float], masked: bool = False) -> np.ndarray:
    """Scales to search (ascending, powers of SCALE_STEP) bracketing the seeds, narrowly when ``masked``."""
    low_factor, high_factor = MASK_BRACKET if masked else WIDE_BRACKET
    low, high = low_factor * min(seeds.values()), high_factor * max(seeds.values())
    steps = np.arange(np.floor(np.log(low) / np.log(SCALE_STEP)), np.ceil(np.log(high) / np.log(SCALE_STEP)) + 1)
    return SCALE_STEP**steps


def scale_about(scale: float, center: np.ndarray) -> np.ndarray:
    """4x4: isotropic scaling by ``scale`` about ``center`` (LPS mm)."""
    matrix = np.eye(4)
    matrix[:3, :3] *= scale
    matrix[:3, 3] = np.asarray(center, float) * (1.0 - scale)
    return matrix
