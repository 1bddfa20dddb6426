"""The ``mmreg register`` command line equivalent to a registration job, recorded in every summary.

Run as printed (POSIX shell quoting), it repeats the registration: the same inputs, choices and seed give
the same transform. The options are the job's own (its fields' ``cli`` metadata). Choices that decide the
result (engine, preset, start, seed: ``always``) are always written, so a later change of a default does not
change what the command does; the others only when they are set.
"""

from __future__ import annotations

import shlex

from ..prep.options import PrepOptions
from .jobs import RegistrationJob, log_beside, option_flag

PROGRAM = "mmreg"


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


def _text(value) -> str:
    """An option's value as typed: a list comma-separated, a float that reads back to itself."""
    if isinstance(value, list):
        return ",".join(value)
    return _number(value) if isinstance(value, float) else str(value)


def register_arguments(job: RegistrationJob) -> list[str]:
    """The ``mmreg register`` arguments (without the program name) that run ``job`` again: each of the job's
    options that is set (a choice marked ``always`` even at its default), then ``--keep-log`` and the
    preparation."""
    argv = ["register"]
    for field in RegistrationJob.option_fields():
        value = getattr(job, field.name)
        if value is None or value == [] or (value == field.default and not field.metadata["cli"].get("always")):
            continue
        argv += [option_flag(field), _text(value)]
    if job.log and job.output_transform and job.log == log_beside(job.output_transform):
        argv.append("--keep-log")
    if job.prep is not None:
        argv += _prep_arguments(job.prep)
    return argv


def register_command(job: RegistrationJob, program: str = PROGRAM) -> str:
    """The command line, quoted for a POSIX shell, that repeats ``job``."""
    return shlex.join([program, *register_arguments(job)])
