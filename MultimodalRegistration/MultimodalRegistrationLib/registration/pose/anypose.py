"""Any-pose initialisation: find a registration's starting pose from anywhere on the rotation sphere.

1. At 7 mm voxels, score 400 rotations spread over the whole sphere plus the principal-axis
   matches by mutual information (:mod:`.scorer`), each translated so that the foreground
   centres meet; where one image's field of view cuts the anatomy short (a CT cropped top and
   bottom, a head MR against a neck-to-vertex CT), also slide it along that axis (:mod:`.grid`).
   Fixed samples beyond a face of the moving image that cuts its anatomy are left out, not counted
   as background (:mod:`.overlap_scorer`): nothing is known there (not for a slab: its faces leave
   too few samples).
2. Refine the best few distinct poses, and the image-centre start, by a pattern search at 7 mm
   (:mod:`.pose_search`).
3. Polish the best two at 4 mm on samples in and around the fixed foreground; the best proper
   pose is the start. The users' masks count from here on (steps 1 and 2 see whole images).
Mirrored (improper) poses go through the same steps, and each side also tries the other's best
pose reflected through the fixed anatomy's planes (a nearly symmetric head fits both). When a
mirrored pose still explains the images better than every rotation by a margin well above this
pair's metric noise, an image header is probably flipped: the search stops and says which axis
(:mod:`.mirror`); within the noise (a low-information pair: ultrasound, a small field of view), it
warns and goes on with the best rotation. A slab (thinner than 40 mm) is exempt,
and its search keeps near the images' own orientation, since intensities cannot fix its tilt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ...core.choices import FULL_ROTATION_DEG
from ...core.errors import InputError
from ...core.rotations import rotation_angle_deg
from ...core.transforms import Transform
from .centres import centre_alignment
from .coarse import CoarseImage
from .grid import candidate_poses
from .local_search import distinct_poses, local_search
from .mirror import MirrorMargin, mirror_margin, mirror_twins, mirror_verdict
from .overlap_scorer import overlap_scorer
from .scorer import PoseScorer

SEARCH_SPACING_MM, POLISH_SPACING_MM = 7.0, 4.0
KEEP_PROPER, KEEP_MIRRORED, POLISH_PROPER = 6, 2, 2
POLISH_SAMPLES = 15000
# A foreground thinner than this (mm) is a slab: it fits its mirror image through its plane as
# well as itself (no mirror check), and its tilt is not fixed by the intensities (an oblique cut
# through a head can match it better than the true one): the search keeps within SLAB_ROTATION_DEG.
SLAB_MM, SLAB_ROTATION_DEG = 40.0, 30.0
# A slab's start turned this close to SLAB_ROTATION_DEG, or beyond it, may be a turn the limit cut short: warned.
SLAB_EDGE_DEG = 5.0
SLAB_LIMIT_WARNING = "the start may lie beyond the search's limit"
# A pose turned more than max_rotation_deg plus this is not chosen (refinement may turn a little further).
ROTATION_SLACK_DEG = 15.0
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
    mirror: MirrorMargin | None = None  # the mirrored pose's margin over the best rotation, when judged
    warnings: list[str] = field(default_factory=list)  # e.g. a mirrored pose winning within the noise
    # The scale-aware search (:mod:`.scale_search`) only: the start's isotropic scale (moving / fixed
    # size), the seeds it came from and the scales searched; None for the rigid search.
    scale: float | None = None
    scale_seeds: dict | None = None
    scales: list | None = None
    # When sample seeds found distinct starts (:mod:`.scale_consensus`): the kept start's score over the best distinct
    # one's; near 1, the search could not tell them apart.
    seed_margin: float | None = None

    def summary(self) -> dict:
        """JSON-ready numbers for provenance."""
        scaled = {}
        if self.scale is not None:
            scaled = {"scale": round(self.scale, 4), "scale_seeds": self.scale_seeds, "scales_searched": self.scales}
            if self.seed_margin is not None:
                scaled["seed_margin"] = round(self.seed_margin, 4)
        elif self.scales is not None:  # a slab's sizes searched, its own kept (:mod:`.slab_size`)
            scaled = {"scales_searched": self.scales}
        return {
            **scaled,
            "matrix_lps": np.round(self.transform.matrix, 6).tolist(),
            "metric": round(self.metric, 6),
            "mirrored_metric": round(self.mirrored_metric, 6) if np.isfinite(self.mirrored_metric) else None,
            "candidates": self.candidates,
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 3),
            "mirror_checked": self.mirror_checked,
            "mirror": self.mirror.summary() if self.mirror is not None else None,
            "warnings": list(self.warnings),
        }


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
    Raises :class:`InputError` when a mirrored pose explains the images better than any rotation
    by a margin well above this pair's metric noise (``check_mirror``; never for a slab thinner
    than SLAB_MM, which fits its mirror image as well; a slab's search also keeps within
    SLAB_ROTATION_DEG). A mirrored pose that wins within the noise leaves a warning in the
    result's ``warnings``, and the best rotation is the start.
    """
    started = time.perf_counter()
    if prior is not None and not prior.is_linear:
        raise InputError("the any-pose search needs a linear initial transform: use --init auto or none with it")
    base = np.eye(4) if prior is None else prior.matrix
    to_virtual = np.linalg.inv(base)  # moving space -> the prior-mapped frame the searched pose maps into

    def total(poses: np.ndarray) -> np.ndarray:
        return base @ poses

    fixed_coarse = CoarseImage.of(fixed, SEARCH_SPACING_MM, None, centred=True)
    moving_coarse = CoarseImage.of(moving, SEARCH_SPACING_MM, None, centred=True)
    # A slab is its own mirror image through its plane: mirrored and proper poses fit it alike, so
    # mirrored poses still serve the search (through their proper twins) but prove nothing.
    thickness = {"fixed": fixed_coarse.thickness(), "moving": moving_coarse.thickness()}
    slab = min(thickness.values()) < SLAB_MM
    judge_mirror = check_mirror and not slab
    capped = slab and max_rotation_deg > SLAB_ROTATION_DEG
    if slab:
        max_rotation_deg = min(max_rotation_deg, SLAB_ROTATION_DEG)
    fixed_center = fixed_coarse.points.mean(axis=0)
    radius = float(np.sqrt(((fixed_coarse.points - fixed_center) ** 2).sum(axis=1).mean()))
    score = _search_scorer(fixed_coarse, moving_coarse, slab, seed)

    # 1. Every rotation of the grid (and its mirror images), centres on top of each other, slid where cut.
    proper_poses, mirrored_poses = candidate_poses(
        fixed, moving, fixed_coarse, moving_coarse, to_virtual, max_rotation_deg, check_mirror
    )
    proper_values = score(total(proper_poses))
    mirrored_values = score(total(mirrored_poses))

    # 2. Refine the best distinct poses and the image-centre start at 7 mm.
    centre = to_virtual @ centre_alignment(fixed, moving, prior, "geometry").matrix
    proper_starts = proper_poses[distinct_poses(proper_poses, proper_values, KEEP_PROPER, fixed_center)]
    mirrored_starts = mirrored_poses[distinct_poses(mirrored_poses, mirrored_values, KEEP_MIRRORED, fixed_center)]
    starts = np.concatenate([proper_starts, mirrored_starts, centre[None]])
    refined, refined_values = local_search(lambda p: score(total(p)), starts, fixed_center, radius, 16.0, 2.0)
    proper_count = len(proper_starts)
    proper_rows = np.r_[0:proper_count, len(refined) - 1]  # the proper starts and the centre start
    chosen = proper_rows[
        distinct_poses(refined[proper_rows], refined_values[proper_rows], POLISH_PROPER, fixed_center, 5.0, 5.0)
    ]

    # 3. Polish at 4 mm on the fixed foreground and a rim of background, where mirror images differ.
    def polish_scorer(fixed_region: sitk.Image | None, moving_region: sitk.Image | None) -> PoseScorer:
        fine_fixed = CoarseImage.of(fixed, POLISH_SPACING_MM, fixed_region, centred=True)
        fine_moving = CoarseImage.of(moving, POLISH_SPACING_MM, moving_region, centred=True)
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
        polish_starts += [best_mirrored[None], mirror_twins(refined[chosen[0]], fixed, fixed_center)]
    polished, polished_values = polish(np.concatenate(polish_starts))
    proper, proper_values = polished[: len(chosen)], polished_values[: len(chosen)]
    mirrored, mirrored_metric = None, -np.inf
    if len(polished) > len(chosen):
        best = len(chosen) + int(np.argmax(polished_values[len(chosen) :]))
        mirrored, mirrored_metric = polished[best], float(polished_values[best])
    if mirrored_metric > proper_values.max():
        # And the other way round before calling the images mirrored.
        twins, twin_values = polish(mirror_twins(mirrored, fixed, fixed_center))
        proper, proper_values = np.concatenate([proper, twins]), np.concatenate([proper_values, twin_values])
    turns = rotation_angle_deg(proper[:, :3, :3])
    allowed = turns <= max_rotation_deg + ROTATION_SLACK_DEG
    beyond_won = not allowed.all() and proper_values[~allowed].max() > proper_values[allowed].max(initial=-np.inf)
    if not allowed.any():
        # All turned beyond the limit while refined: the limit holds (the centres at the prior's turn), and the
        # mirrored poses, never limited, are no measure of a proper pose the limit left out.
        proper, proper_values = (
            np.concatenate([proper, centre[None]]),
            np.r_[proper_values, fine_score(total(centre[None]))],
        )
        allowed, judge_mirror = np.r_[allowed, True], False
    winner = int(np.argmax(np.where(allowed, proper_values, -np.inf)))
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
    if capped:
        found = None
        if winner >= len(turns):
            found = "no pose within it matched, so the image centres are the start"
        elif turns[winner] >= SLAB_ROTATION_DEG - SLAB_EDGE_DEG:
            found = f"its best pose lies at that limit (turned {turns[winner]:.0f} degrees)"
        elif beyond_won:
            found = "a pose turned further matched the images better than any within it"
        if found:
            result.warnings.append(slab_limit_warning(min(thickness, key=thickness.get), found))
    if judge_mirror and mirrored is not None:
        mirrored_pose = total(mirrored[None])[0]
        result.mirror = mirror_margin(
            fine_score, mirrored_pose, result.transform.matrix, mirrored_metric, result.metric
        )
        if result.mirror.clear or result.mirror.doubtful:
            refuse_if_turned_beyond(proper, proper_values, ~allowed, result.mirror, max_rotation_deg)
        result.warnings += mirror_verdict(result.mirror, mirrored_pose, moving)
    return result


def _search_scorer(fixed: CoarseImage, moving: CoarseImage, slab: bool, seed: int) -> PoseScorer:
    """The 7 mm search's scorer: where a face of the moving image cuts its anatomy, the samples beyond it are left
    out (:mod:`.overlap_scorer`): counted as background, they made the truth score below false poses (the MNI head
    cut to 60%: 53-88 mm off, unwarned). Elsewhere, in the polish and for a slab (whose few samples within its faces
    told no pose apart: the Visible Human CT slab's start scored 0.02) the plain scorer, whose scores the mirror and
    symmetry rules were measured on."""
    if not slab and moving.cut_axes():
        return overlap_scorer(fixed, moving, None, seed=seed)
    return fixed.scorer(moving, None, seed=seed)


def slab_limit_warning(role: str, found: str) -> str:
    """The warning on a slab's start that its search's limit may have cut short (``found``: what the search found
    at the limit). A slab of MNI's brain 24 mm thick, turned 50, 90 and 180 degrees, had started 31-71 mm off
    without a word."""
    return (f"{SLAB_LIMIT_WARNING}: the {role} image is a slab (thinner than {SLAB_MM:.0f} mm), whose tilt its "
            f"intensities do not fix, so the search for a start keeps within {SLAB_ROTATION_DEG:.0f} degrees of the "
            f"orientation it starts from (the headers', or the initial transform's), and {found}: if the images are "
            "turned further apart, place the moving image nearer first (an initial transform, e.g. from "
            "FiducialPrealign), and check the result")


def refuse_if_turned_beyond(
    proper: np.ndarray, values: np.ndarray, beyond: np.ndarray, margin: MirrorMargin, max_rotation_deg: float
) -> None:
    """Raise :class:`InputError` when a rotation beyond ``max_rotation_deg`` (``beyond``, of the polished ``proper``
    poses and their ``values``) matches the images as well as the mirrored pose that beat the allowed ones: a head
    turned further than the limit (prone against supine) looks mirrored within it. A reviewer's walkthrough: the MNI
    head turned 150 degrees, --max-rotation-deg 30, was refused as mirrored; without the limit it lands 0.06 mm."""
    if not beyond.any():
        return
    best = int(np.argmax(np.where(beyond, values, -np.inf)))
    if values[best] < margin.mirrored_metric - margin.needed:
        return
    turned = float(rotation_angle_deg(proper[best][None, :3, :3])[0])
    raise InputError(
        f"the best rotation within --max-rotation-deg {max_rotation_deg:g} is beaten by a mirror image of the moving "
        f"image, but a rotation of {turned:.0f} degrees, beyond that limit, matches as well (mutual information "
        f"{values[best]:.3f} against {margin.mirrored_metric:.3f}): the images are likely turned further than the "
        "limit, not mirrored. Raise --max-rotation-deg, or drop it to search every rotation"
    )
