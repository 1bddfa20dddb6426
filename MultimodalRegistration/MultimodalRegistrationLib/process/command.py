"""The ``mmreg register`` command line equivalent to a registration job, recorded in every summary.

Run as printed (POSIX shell quoting), it repeats the registration: the same inputs, choices and seed give
the same transform. Choices that decide the result (engine, preset, start, seed) are always written, so a
later change of a default does not change what the command does; the others only when they are set.
"""

from __future__ import annotations

import shlex

from ..core.choices import FULL_ROTATION_DEG
from ..prep.options import PrepOptions
from .jobs import RegistrationJob, log_beside

PROGRAM = "mmreg"

# RegistrationJob field -> its mmreg register option, for the fields that take a value.
_VALUE_OPTIONS = (
    ("fixed", "--fixed"),
    ("moving", "--moving"),
    ("engine", "--engine"),
    ("preset", "--preset"),
    ("fixed_mask", "--fixed-mask"),
    ("moving_mask", "--moving-mask"),
    ("initial_transform", "--initial-transform"),
    ("init", "--init"),
    ("seed", "--seed"),
    ("threads", "--threads"),
    ("fixed_segmentation", "--fixed-segmentation"),
    ("moving_segmentation", "--moving-segmentation"),
    ("guidance_fixed_points", "--fixed-points"),
    ("guidance_moving_points", "--moving-points"),
    ("guidance_weight", "--guidance-weight"),
    ("output_transform", "--output-transform"),
    ("output_inverse", "--output-inverse"),
    ("output_volume", "--output-volume"),
    ("summary", "--json"),
)


def _number(value: float) -> str:
    """A number as the command line reads it back to the same float (``repr`` round-trips)."""
    return repr(float(value)) if float(value) != int(value) else str(int(value))


def _prep_arguments(prep: PrepOptions) -> list[str]:
    """The step options that make ``mmreg register`` prepare the pair as ``prep`` says."""
    defaults = PrepOptions()
    argv = ["--prep"]
    if prep.crop_common:
        argv.append("--crop-common")
    if prep.margin_mm != defaults.margin_mm:
        argv += ["--margin", _number(prep.margin_mm)]
    if prep.roi_lps is not None:
        from ..core.transforms import lps_ras_points

        corners = lps_ras_points([list(corner) for corner in prep.roi_lps])  # the option takes RAS corners
        argv += ["--roi", ",".join(_number(value) for value in corners.ravel())]
    for role in ("fixed", "moving"):
        mask = getattr(prep, f"mask_{role}")
        if mask is not None:
            argv += [f"--mask-{role}", str(mask)]
        modality = getattr(prep, f"modality_{role}")
        if modality != defaults.modality_fixed:
            argv += [f"--modality-{role}", modality]
        spacing = getattr(prep, f"spacing_{role}")
        if spacing is not None:
            argv += [f"--spacing-{role}", ",".join(_number(value) for value in spacing)]
    if prep.exclude_above is not None:
        argv += ["--exclude-above", _number(prep.exclude_above)]
        if prep.exclude_margin_mm != defaults.exclude_margin_mm:
            argv += ["--exclude-margin", _number(prep.exclude_margin_mm)]
    if prep.n4 is not None:
        argv += ["--n4", prep.n4]
        if prep.n4_shrink is not None:
            argv += ["--n4-shrink", str(int(prep.n4_shrink))]
    if prep.downsample_to is not None:
        value = prep.downsample_to
        argv += ["--downsample-to", value if isinstance(value, str) else _number(value)]
    return argv


def register_arguments(job: RegistrationJob) -> list[str]:
    """The ``mmreg register`` arguments (without the program name) that run ``job`` again."""
    argv = ["register"]
    for name, option in _VALUE_OPTIONS:
        value = getattr(job, name)
        if value is not None:
            argv += [option, _number(value) if isinstance(value, float) else str(value)]
    if float(job.max_rotation_deg) != FULL_ROTATION_DEG:
        argv += ["--max-rotation-deg", _number(job.max_rotation_deg)]
    if job.segments:
        argv += ["--segments", ",".join(job.segments)]
    if job.metric != "intensity":
        argv += ["--metric", job.metric]
    if job.piecewise:
        argv += ["--piecewise", ",".join(job.piecewise)]
    if job.log and job.output_transform and job.log == log_beside(job.output_transform):
        argv.append("--keep-log")
    if job.prep is not None:
        argv += _prep_arguments(job.prep)
    return argv


def register_command(job: RegistrationJob, program: str = PROGRAM) -> str:
    """The command line, quoted for a POSIX shell, that repeats ``job``."""
    return shlex.join([program, *register_arguments(job)])
