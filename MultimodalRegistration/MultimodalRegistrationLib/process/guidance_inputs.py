"""A registration job's guidance files read into a :class:`..registration.guidance.Guidance`:
labelmaps as images, landmark files (world RAS) paired by label and turned into LPS mm."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.images import read_image
from ..core.pairs import check_pair
from ..core.transforms import lps_ras_points
from ..landmarks.bounds import PointBounds
from ..landmarks.checks import check_not_one_position, undetermined
from ..landmarks.fit import pair_landmarks
from ..landmarks.frames import frame_warnings, refuse_turned_and_flipped
from ..landmarks.models import fit_model
from ..landmarks.pairing import pairing_warnings
from ..landmarks.points_io import read_point_lists
from ..registration.guided.guidance import Guidance
from .jobs import RegistrationJob


def read_guidance_points(
    fixed_path: str, moving_path: str, fixed: sitk.Image, moving: sitk.Image, initial_transform: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """:func:`paired_guidance_points` without the labels and the pairing."""
    return paired_guidance_points(fixed_path, moving_path, fixed, moving, initial_transform)[:3]


def paired_guidance_points(
    fixed_path: str, moving_path: str, fixed: sitk.Image, moving: sitk.Image, initial_transform: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str]:
    """Paired landmarks (fixed, moving; LPS mm) from two points files, and the warnings of pairing them.

    Pairs by label when every label matches, else by order; a point whose label the other file lacks is left out
    with a warning (lists of different lengths), and so is a point marked skipped, with its partner. Points that
    all lie outside their image are refused (the usual wrong-file or RAS/LPS mistake); pairs that look swapped,
    mirrored or off, and a list that looks read in the other coordinate system (:mod:`..landmarks.frames`; unless
    ``initial_transform``, the headers are the prior), are warned about, as ``mmreg prealign`` does. Also returns
    each pair's label (the fixed point's, or its number) and how they paired.
    """
    fixed_file, moving_file, skipped = read_point_lists(fixed_path, moving_path)
    fixed_ras, moving_ras, labels, paired_by, warnings = pair_landmarks(
        fixed_file.points_ras, moving_file.points_ras, fixed_file.labels, moving_file.labels
    )
    warnings[:0] = skipped
    fixed_lps, moving_lps = lps_ras_points(fixed_ras), lps_ras_points(moving_ras)
    if len(fixed_lps) >= 3:
        check_not_one_position("rigid", fixed_lps, moving_lps)
        check_not_one_position("rigid", moving_lps, fixed_lps, "fixed")
    moving_names = labels if paired_by == "label" else (moving_file.labels or labels)  # by order: their own names
    outside = PointBounds(fixed, moving, fixed_file.system, moving_file.system).check(fixed_lps, moving_lps, labels,
                                                                                       moving_names)  # fmt: skip
    warnings += outside
    if len(fixed_lps) >= 3 and undetermined("rigid", fixed_lps) is None:
        warnings += pairing_warnings("rigid", fit_model("rigid", fixed_lps, moving_lps), fixed_lps, moving_lps,
                                     labels, paired_by)  # fmt: skip
        turned = [] if initial_transform else frame_warnings(fixed_lps, moving_lps, fixed_file.system,
                                                             moving_file.system, warnings)  # fmt: skip
        refuse_turned_and_flipped(turned, outside)  # as mmreg prealign refuses it
        warnings += turned
    return fixed_lps, moving_lps, warnings, list(labels), paired_by


def guidance_from_job(job: RegistrationJob, fixed: sitk.Image, moving: sitk.Image) -> tuple[Guidance | None, list[str]]:
    """The job's guidance (None when it has none) and the warnings met while reading it."""
    if not (job.fixed_segmentation or job.moving_segmentation or job.guidance_fixed_points
            or job.guidance_moving_points or job.metric != "intensity"):  # fmt: skip
        return None, []
    check_pair(job.guidance_fixed_points, job.guidance_moving_points, "landmark guidance", "--fixed-points",
               "--moving-points")  # fmt: skip
    guidance = Guidance(
        fixed_segmentation=read_image(job.fixed_segmentation, "fixed segmentation") if job.fixed_segmentation else None,
        moving_segmentation=read_image(job.moving_segmentation, "moving segmentation")
        if job.moving_segmentation
        else None,
        segments=list(job.segments) if job.segments else None,
        weight=job.guidance_weight,
        metric=job.metric,
    )
    warnings: list[str] = []
    if job.guidance_fixed_points:
        (guidance.fixed_points_lps, guidance.moving_points_lps, warnings, guidance.point_labels,
         guidance.points_paired_by) = paired_guidance_points(job.guidance_fixed_points, job.guidance_moving_points,
                                                             fixed, moving, bool(job.initial_transform))  # fmt: skip
    return guidance, warnings
