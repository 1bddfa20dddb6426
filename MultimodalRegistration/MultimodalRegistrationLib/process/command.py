"""The ``mmreg register`` command line equivalent to a registration job, recorded in every summary.

Run as printed (quoted for this machine's shell: :mod:`..core.command_line`), it repeats the registration: the same inputs, choices and seed give
the same transform. The options are the job's own (its fields' ``cli`` metadata). Choices that decide the
result (engine, preset, start, seed: ``always``) are always written, so a later change of a default does not
change what the command does; the others only when they are set.
"""

from __future__ import annotations

from ..core import command_line
from ..prep.options import PrepOptions, option_text
from .beside import log_beside, summary_beside
from .jobs import RegistrationJob, option_fields, option_flag
from .preflight import rotation_limit_applies

PROGRAM = "mmreg"


def _prep_arguments(prep: PrepOptions) -> list[str]:
    """The step options that make ``mmreg register`` prepare the pair as ``prep`` says: each option of
    :class:`PrepOptions` not at its default, typed as its ``text`` writes it."""
    defaults = PrepOptions()
    argv = ["--prep"]
    for field in option_fields(PrepOptions):
        value = getattr(prep, field.name)
        if value is None or value == getattr(defaults, field.name):
            continue
        if value is True:  # a switch
            argv.append(option_flag(field))
        else:
            argv += [option_flag(field), field.metadata["cli"].get("text", option_text)(value)]
    return argv


def register_arguments(job: RegistrationJob) -> list[str]:
    """The ``mmreg register`` arguments (without the program name) that run ``job`` again: each of the job's
    options that is set (a choice marked ``always`` even at its default), then ``--keep-log`` and the
    preparation."""
    argv = ["register"]
    for field in option_fields(RegistrationJob):
        value = getattr(job, field.name)
        if value is None or value == [] or (value == field.default and not field.metadata["cli"].get("always")):
            continue
        if field.name == "max_rotation_deg" and not rotation_limit_applies(job):  # a panel's greyed-out box
            continue
        if field.name == "summary" and value == summary_beside(job):  # written there without --json too
            continue
        argv += [option_flag(field), option_text(value)]
    if job.log and job.output_transform and job.log == log_beside(job.output_transform):
        argv.append("--keep-log")
    if job.prep is not None:
        argv += _prep_arguments(job.prep)
    return argv


def register_command(job: RegistrationJob, program: str = PROGRAM) -> str:
    """The command line, quoted for this machine's shell, that repeats ``job``."""
    return command_line.join([program, *register_arguments(job)])
