"""A scaled result (similarity, affine) whose size left the start search's far behind, where the images confirm the
start: the engine fitted outlines of anatomy only one image holds.

Measured (the thirty-ninth session's reviewer: the skull-stripped MNI T1 against a pseudo-CT of the same head with
its skull, shrunk 0.9): the scaled start search found 0.901 (0.15 mm off); elastix similarity grew it to 1.043 and
ended 8.5 mm off, exit 0, no warning, its mutual information over the overlap rising 0.447 -> 0.631. Over the whole
fixed image (bias-corrected, :func:`.size_check.images_confirm`) the start scored 0.91 and the result 0.16. On 26
right similarity results of that session's sweeps (MNI contrasts at scales 0.55-1.2, cleared-tissue cases, mouse
size; some cases run twice) the result's size stayed within 0.983-1.008 of its start's; results wrong for other
reasons within 0.93-1.03.

A one-scale (similarity) result that drifted further (WARN_DRIFT) where the images do not confirm the start over it
is warned (:func:`size_drift_warning`). Measured (forty-sixth session): elastix similarity on the real SCT
spinal-cord pair (T1w fixed) went from the search's 1.18 to 0.62 and ended 34 mm off, Dice 0, unwarned; a helper's 14
right similarity results on cleared-tissue stacks drifted 0.971-0.990, and another helper's on the phantom's
anisotropic grids 0.914-0.917 (none of 40 right results of that sweep warned). Affine results drift further when
right (0.84-0.98 there: their isotropic part is not the search's one scale), so they are not warned. Transforms
map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import SimpleITK as sitk

from ...core.rotations import isotropic_scale
from ...core.transforms import Transform
from .masks import anatomy_center
from .size_check import images_confirm
from .uneven_size import is_one_scale

MAX_DRIFT = 1.10  # a result this many times larger or smaller than its start is questioned
SCALE_DRIFT = "the engine moved the size"  # how the warning starts
SIZE_DRIFTED = "the result's size left the start search's"  # how the warning on a result kept starts
# A result kept is warned only beyond this drift: on the phantom's anisotropic grids the search found 1.083-1.085
# where the right result is 0.993 (a helper's sweep, 8.6%).
WARN_DRIFT = 1.25


def _sizes(start: Transform, result: Transform) -> tuple[float, float, float]:
    """(the start's isotropic size, the result's, how many times one is the other's: at least 1)."""
    before, after = isotropic_scale(start.matrix[:3, :3]), isotropic_scale(result.matrix[:3, :3])
    return before, after, max(after / before, before / after)


def scale_drift_reason(
    fixed: sitk.Image, moving: sitk.Image, start: Transform, result: Transform, fixed_mask: sitk.Image | None = None
) -> str | None:
    """Why the start is returned instead of ``result`` (both linear, fixed -> moving), or None: the result's
    isotropic size differs from the start's over MAX_DRIFT times and the images confirm the start over it (their
    decoys turned about the fixed mask's or foreground's centre, found only then)."""
    if not (start.is_linear and result.is_linear):
        return None
    before, after, drift = _sizes(start, result)
    if drift <= MAX_DRIFT:
        return None
    if not images_confirm(fixed, moving, result, start.matrix, anatomy_center(fixed, fixed_mask)):
        return None
    return (
        f"{SCALE_DRIFT} from the start search's {before:.2f} to {after:.2f} ({after / before - 1:+.0%}; right results "
        "stay within a few percent of it), and over the whole fixed image the images confirm the start far better: "
        "returned the start. The images probably hold different anatomy (a skull-stripped brain against a head with "
        "its skull, a cut field of view), whose outlines the engine fitted: check the result"
    )


def size_drift_warning(start: Transform, result: Transform) -> str | None:
    """The warning on a one-scale ``result`` whose size differs from the start search's (``start``) over WARN_DRIFT
    times (both fixed -> moving), else None: call it when the images did not confirm the start either."""
    if not (start.is_linear and is_one_scale(result)):
        return None
    before, after, drift = _sizes(start, result)
    if drift <= WARN_DRIFT:
        return None
    return (
        f"{SIZE_DRIFTED} {before:.2f} for {after:.2f} ({after / before - 1:+.0%}; a right similarity result stays "
        "within a few percent of it), and the images do not confirm the search's size over it: the result is probably "
        "wrong. Check it; for two scans of one subject use --preset rigid, else start near the answer (mmreg "
        "prealign, or an initial transform)"
    )
