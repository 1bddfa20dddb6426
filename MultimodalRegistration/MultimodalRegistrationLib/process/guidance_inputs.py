"""A registration job's guidance files read into a :class:`..registration.guidance.Guidance`:
labelmaps as images, landmark files (world RAS) paired by label and turned into LPS mm."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.images import read_image
from ..core.pairs import check_pair
from ..core.transforms import lps_ras_points
from ..landmarks.bounds import check_points_inside
from ..landmarks.fit import pair_points
from ..landmarks.points_io import read_points_file
from ..registration.guided.guidance import Guidance
from .jobs import RegistrationJob


def read_guidance_points(
    fixed_path: str, moving_path: str, fixed: sitk.Image, moving: sitk.Image
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Paired landmarks (fixed, moving; LPS mm) from two points files, and the warnings of pairing them.

    Pairs by label when every label matches, else by order; points that all lie outside their image
    are refused (the usual wrong-file or RAS/LPS mistake).
    """
    fixed_file, moving_file = read_points_file(fixed_path), read_points_file(moving_path)
    if len(fixed_file.points_ras) != len(moving_file.points_ras):
        raise InputError(
            f"the landmark files hold {len(fixed_file.points_ras)} fixed and {len(moving_file.points_ras)} moving "
            "points: give the same landmarks in both, with the same labels"
        )
    moving_ras, moving_labels, _, warnings = pair_points(moving_file.points_ras, fixed_file.labels, moving_file.labels)
    fixed_lps, moving_lps = lps_ras_points(fixed_file.points_ras), lps_ras_points(moving_ras)
    warnings += check_points_inside(fixed_lps, fixed, fixed_file.labels, "fixed", fixed_file.system)
    warnings += check_points_inside(moving_lps, moving, moving_labels, "moving", moving_file.system)
    return fixed_lps, moving_lps, warnings


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
        guidance.fixed_points_lps, guidance.moving_points_lps, warnings = read_guidance_points(
            job.guidance_fixed_points, job.guidance_moving_points, fixed, moving
        )
    return guidance, warnings
