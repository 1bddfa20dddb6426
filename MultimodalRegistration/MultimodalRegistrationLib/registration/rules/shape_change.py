"""A result that changes the anatomy's shape more than scans or tissue do: its linear part (a deformable result's
affine part, :func:`.weak_result.linear_part`) scales one axis over MAX_ANISOTROPY times another.

An affine stage can squash small or self-similar anatomy to raise its mutual information. Measured on the real SCT
spinal-cord pair (T1w and T2 of one subject, forty-fifth session), elastix, unguided: the deformable preset ended
9.8 mm (T2 fixed, cord Dice 0.31) and 34 mm (T1w fixed, Dice 0) from the right rigid result, unwarned, their affine
parts scaled 1.12 : 0.39 : 0.30 and 0.91 : 0.58 : 0.42 (2.2 to 3.7 times); the affine preset 0.90 : 0.60 : 0.33.
Cleared tissue that shrank unevenly (clearing's 0.7, 0.7, 0.55 and 0.75, 0.75, 0.5: the project's generated stacks)
stays at 1.3-1.5. Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.transforms import Transform
from .weak_result import linear_or_part

MAX_ANISOTROPY = 2.0  # largest over smallest scale of a result's linear part
SHAPE_CHANGE = "the result changes the anatomy's shape"  # how the warning begins (a batch's triage looks for it)


def changed_scales(result: Transform, fixed: sitk.Image) -> tuple[np.ndarray, str] | None:
    """(the scales of ``result``'s linear part, how a warning names that part) when one is over MAX_ANISOTROPY times
    another, else None."""
    linear, whose = linear_or_part(result, fixed)
    scales = np.linalg.svd(linear.matrix[:3, :3], compute_uv=False)
    if scales.min() <= 0 or scales.max() <= MAX_ANISOTROPY * scales.min():  # 0: collapsed, refused by the keep rule
        return None
    return scales, whose


def shape_change_warning(result: Transform, fixed: sitk.Image) -> str | None:
    """The warning when ``result``'s linear part scales one axis over MAX_ANISOTROPY times another, else None."""
    changed = changed_scales(result, fixed)
    if changed is None:
        return None
    scales, whose = changed
    return (
        f"{SHAPE_CHANGE}: {whose} scales ({listed_scales(scales)}) stretch one axis {scales.max() / scales.min():.1f} "
        "times more than another, more than two scans or shrunken tissue differ; an affine stage can squash small or "
        "repetitive anatomy (a spinal cord) to raise the mutual information. Check it; for two scans of one subject "
        "use --preset rigid, for tissue that shrank evenly --preset similarity (or check the slice spacing)"
    )


def listed_scales(scales: np.ndarray) -> str:
    """Scales as the messages give them: "1.12, 0.39, 0.30"."""
    return ", ".join(f"{scale:.2f}" for scale in scales)
