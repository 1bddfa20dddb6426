"""Whether a result of one scale (similarity) fits tissue that shrank more along one axis: clearing and fixation
often shrink a stack's cutting axis more than its plane, and one scale then ends off without a word.

From the result, the moving image is stretched along each of its own axes by STRETCHES and rotation, shift and
isotropic scale are refined again (:func:`.size_check.preferred_size`'s search and scoring rule). The result is
warned when a stretch scores clearly better (the size check's MIN_GAIN and MIN_GAIN_SHARE) and the images confirm
it as they confirm a size (:func:`.size_check.images_confirm`).

Measured (a helper's cleared-tissue sweep, thirty-ninth session; MNI T1 against a light-sheet-like rendering of
its grey and white matter, exact truth): shrinks of 0.7, 0.7, 0.55 and 0.75, 0.75, 0.5 had ended 6.8 and 13 mm off
under similarity, exit 0; affine 0.14-0.15 mm. Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ...core.transforms import Transform
from ..pose.local_search import local_search
from ..pose.mirror import axis_name
from .size_check import MIN_GAIN, MIN_GAIN_SHARE, SEARCH_START_MM, images_confirm, search_frame

STRETCHES = (0.7, 0.8, 0.9, 1.12, 1.25, 1.43)  # moving sizes along one axis against the other two
ISOTROPIC_SPREAD = 1e-3  # singular values this close: one scale
UNEVEN_WARNING = "the moving image matches best stretched"  # how the warning starts


def is_one_scale(transform: Transform) -> bool:
    """A linear transform whose three scales are equal (rigid or similarity)."""
    if not transform.is_linear:
        return False
    singular = np.linalg.svd(transform.matrix[:3, :3], compute_uv=False)
    return float(singular.max() - singular.min()) <= ISOTROPIC_SPREAD * float(singular.max())


def _stretch_along(direction: np.ndarray, factor: float, center: np.ndarray) -> np.ndarray:
    """4x4: a stretch by ``factor`` along the unit ``direction`` about ``center`` (moving space, LPS mm)."""
    matrix = np.eye(4)
    matrix[:3, :3] += (factor - 1.0) * np.outer(direction, direction)
    matrix[:3, 3] = center - matrix[:3, :3] @ center
    return matrix


@dataclass
class Stretch:
    """A stretch of the moving image along one of its axes that fits clearly better than a result: the axis, the
    moving size along it against the other two, and the search's score before and after."""

    axis: int
    factor: float
    before: float
    after: float


def best_stretch(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None, stretches: tuple[float, ...],
) -> Stretch | None:  # fmt: skip
    """From a result of one scale, the moving image stretched along each of its axes by ``stretches`` and rotation,
    shift and isotropic scale refined again: the stretch that scores clearly better (the size check's MIN_GAIN and
    MIN_GAIN_SHARE) and that the images confirm (:func:`.size_check.images_confirm`), or None."""
    if not is_one_scale(transform):
        return None
    frame = search_frame(fixed, moving, transform, fixed_mask, moving_mask, (0.3, 3.0), max(stretches))
    if frame is None:
        return None
    start, moving_center, center = frame.start, frame.moving_center, frame.center
    directions = np.asarray(moving.GetDirection()).reshape(3, 3).T  # rows: the moving image's axes (LPS)
    stretched = [(axis, factor) for axis in range(3) for factor in stretches]
    starts = np.stack([start] + [_stretch_along(directions[a], f, moving_center) @ start for a, f in stretched])
    poses, values = local_search(frame.score, starts, center, frame.radius, SEARCH_START_MM, 0.5, scale=True)
    before = float(values[0])  # the result refined the same way, so both sides had the same search
    best = 1 + int(np.argmax(values[1:]))
    if values[best] - before < max(MIN_GAIN, MIN_GAIN_SHARE * abs(before)):
        return None
    if not images_confirm(fixed, moving, transform, poses[best], center):
        return None
    axis, factor = stretched[best - 1]
    return Stretch(axis, factor, before, float(values[best]))


def uneven_size_warning(
    fixed: sitk.Image, moving: sitk.Image, transform: Transform, fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
) -> str | None:  # fmt: skip
    """The warning on a result of one scale that fits clearly better stretched along a moving image axis, or None
    (see the module notes)."""
    found = best_stretch(fixed, moving, transform, fixed_mask, moving_mask, STRETCHES)
    if found is None:
        return None
    named = axis_name(moving, found.axis)
    return (
        f"{UNEVEN_WARNING} {found.factor:.2f} times along its {named} axis (image axis {found.axis}) against the other "
        f"two (a search from the result: score {found.before:.2f} -> {found.after:.2f}): the tissue seems to have "
        "shrunk or swollen unevenly, which one scale cannot fit, so the result is likely off: use --preset affine (or "
        "check the slice spacing in the moving image's header)"
    )
