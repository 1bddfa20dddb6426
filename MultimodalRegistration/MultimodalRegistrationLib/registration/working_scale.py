"""Small anatomy registered at the size the registration is built for: a mouse brain (about 10 mm) against its MRI.

The start search (grids of 5-7 mm, shifts of 20-105 mm), the decoys and the engines' presets (smoothing and
shrinking in mm) are set for anatomy of 50 mm or more. On a mouse brain, cleared and shrunk, against a mouse
MRI at 0.1 mm (the cleared-tissue tutorial at mouse size), elastix similarity failed ("Too many samples map
outside moving image buffer") and ANTs shrank the images 80 times; the same images with every spacing and
origin multiplied by 15 registered 0.035 mm off (0.52 mm at that size). Registration is the same problem in
any unit: when both images are smaller than SMALL_EXTENT_MM, they are registered with their geometry scaled by
``k`` (about WORKING_EXTENT_MM across), and the result is brought back, ``T(x) = T_k(k x) / k``.

Named presets only (a custom preset file is tuned for the images as they are), from no or a linear initial
transform. Guidance is scaled with the images (segmentations like images, landmarks times ``k``); its record's
distances come back in the images' own mm. Unscaled, elastix similarity on the cleared mouse brain guided by the
brain masks and six landmarks (1 mm clicks at full size) kept its start, 1.08 mm off at full-size scale; scaled,
0.48 mm. A nonlinear result comes back as the chain of the two scalings around it: the phantom 15 times
smaller, ANTs deformable failed at its own size (Mattes MI error) and ended 0.10 mm off at the working scale;
elastix deformable 0.07 mm either way. Images whose spacing is not plausible mm (metres, no spacing) are left as they are, for the
checks to refuse. Transforms map fixed to moving (LPS mm).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.file_checks import grid_refusal
from ..core.images import physical_extent_mm, scaled_image
from ..core.plausible_spacing import check_spacing
from ..core.transforms import Transform
from .guided.guidance import Guidance
from .outcome import describe_image
from .summary import GuidanceRecord, GuidanceScores

SMALL_EXTENT_MM = 40.0  # both images narrower than this along every axis: small anatomy
WORKING_EXTENT_MM = 200.0  # the larger image is registered about this wide
MAX_SCALE = 1000.0


def working_scale(fixed: sitk.Image, moving: sitk.Image) -> float:
    """The factor (1: none) by which both images' geometry is multiplied for the registration."""
    widest = max(float(physical_extent_mm(image).max()) for image in (fixed, moving))
    if not (0 < widest < SMALL_EXTENT_MM):  # NaN too
        return 1.0
    for image in (fixed, moving):
        if grid_refusal("image", image.GetSize(), image.GetSpacing()) or not check_spacing(image).plausible:
            return 1.0
    return min(float(f"{WORKING_EXTENT_MM / widest:.2g}"), MAX_SCALE)


def scale_for(fixed: sitk.Image, moving: sitk.Image, settings) -> float:
    """:func:`working_scale` for a registration that can run at it (1 otherwise): a named preset, from no or a
    linear initial transform (``settings``: a :class:`.settings.RegistrationSettings`)."""
    k = working_scale(fixed, moving)
    initial = settings.initial_transform
    if k == 1.0 or Path(settings.preset).suffix:
        return 1.0
    if initial is not None and not initial.is_linear:
        return 1.0
    return k


def scaled_guidance(guidance: Guidance | None, k: float) -> Guidance | None:
    """``guidance`` in units ``k`` times larger: its segmentations (and the segments drawn over, whole) scaled like
    images, its landmarks (LPS mm) multiplied by ``k``."""
    if guidance is None:
        return None
    fixed, moving = (scaled_image(image, k) for image in (guidance.fixed_segmentation, guidance.moving_segmentation))
    return replace(
        guidance, fixed_segmentation=fixed, moving_segmentation=moving,
        fixed_points_lps=None if guidance.fixed_points_lps is None else np.asarray(guidance.fixed_points_lps) * k,
        moving_points_lps=None if guidance.moving_points_lps is None else np.asarray(guidance.moving_points_lps) * k,
        fixed_wholes={value: scaled_image(whole, k) for value, whole in guidance.fixed_wholes.items()},
        moving_wholes={value: scaled_image(whole, k) for value, whole in guidance.moving_wholes.items()},
        wholes_of=(fixed, moving),
    )  # fmt: skip


def _mm_back(value: float | None, down: float) -> float | None:
    """A distance measured at the working size, in the images' own mm (None stays None)."""
    return None if value is None else round(value * down, 4)


def _scores_back(scores: GuidanceScores | None, down: float) -> GuidanceScores | None:
    """Guidance scores measured at the working size, their distances in the images' own mm (Dice has no unit)."""
    if scores is None:
        return None
    return replace(
        scores, surface_mm={name: _mm_back(value, down) for name, value in scores.surface_mm.items()},
        points_mm=[_mm_back(value, down) for value in scores.points_mm],
        mean_surface_mm=_mm_back(scores.mean_surface_mm, down), points_rms_mm=_mm_back(scores.points_rms_mm, down),
    )  # fmt: skip


def _guidance_back(record: GuidanceRecord | None, down: float) -> GuidanceRecord | None:
    """A guided run's record with its distances (scores, candidates' surfaces, noise in mm) in the images' mm."""
    if record is None:
        return None
    choice = record.start_choice
    if choice is not None:
        noise = {key: _mm_back(value, down) if key.endswith("_mm") else value for key, value in choice.noise.items()}
        choice = replace(choice, noise=noise)
    candidates = record.start_candidates
    if candidates is not None:
        candidates = [replace(c, surface_mm=_mm_back(c.surface_mm, down)) for c in candidates]
    return replace(
        record, start_candidates=candidates, start_choice=choice,
        **{name: _scores_back(getattr(record, name), down)
           for name in ("score_start", "score_result", "score_centroids", "score_engine")},
    )  # fmt: skip


def scaled_matrix(matrix: np.ndarray | list, k: float) -> np.ndarray:
    """A 4x4 fixed -> moving matrix in units ``k`` times larger: ``S M S^-1`` with ``S = diag(k, k, k, 1)``."""
    scale = np.diag([k, k, k, 1.0])
    return scale @ np.asarray(matrix, float) @ np.linalg.inv(scale)


def scaled_transform(transform: Transform | None, k: float) -> Transform | None:
    """A transform in units ``k`` times larger, ``x -> k T(x / k)`` (None stays None): a matrix for a linear one,
    else the chain of the two scalings around it."""
    if transform is None:
        return None
    if transform.is_linear:
        return Transform.from_matrix(scaled_matrix(transform.matrix, k))
    up, down = (Transform.from_matrix(np.diag([f, f, f, 1.0])) for f in (k, 1.0 / k))
    return Transform.chain([up, transform, down])


def back_to_size(result, k: float, fixed: sitk.Image, moving: sitk.Image):
    """The :class:`.register.RegistrationResult` of the scaled images in the images' own units: the transforms,
    the matrices and distances the provenance records, the images it describes; a note says the rest of the record
    (the warnings, the pose search's details) is at the working size."""
    provenance = result.provenance
    down = 1.0 / k

    def matrix(value):
        return None if value is None else np.round(scaled_matrix(value, down), 9).tolist()

    offset = provenance.start_offset
    search = provenance.any_pose
    provenance = replace(
        provenance,
        start_matrix_lps=matrix(provenance.start_matrix_lps),
        before_matrix_lps=matrix(provenance.before_matrix_lps),
        start_offset=replace(offset, shift_mm=_mm_back(offset.shift_mm, down)) if offset is not None else None,
        any_pose=replace(search, matrix_lps=matrix(search.matrix_lps)) if search is not None else None,
        guidance=_guidance_back(provenance.guidance, down),
        fixed=describe_image(fixed, provenance.fixed.source),
        moving=describe_image(moving, provenance.moving.source),
        working_scale=k,
    )
    note = (
        f"registered at {k:g} times its size: both images are under {SMALL_EXTENT_MM:g} mm across, and the start "
        f"search and presets are built for larger anatomy; the result is in the images' own mm, distances in the "
        "warnings before this one are at the working size"
    )
    return replace(
        result, transform=scaled_transform(result.transform, down), inverse=scaled_transform(result.inverse, down),
        provenance=provenance, warnings=[*result.warnings, note],
    )  # fmt: skip
