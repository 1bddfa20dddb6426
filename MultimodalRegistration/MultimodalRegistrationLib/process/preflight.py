"""The one check of a registration job before any work: every entry point (``mmreg``, the worker,
the node-level API, the Slicer batch script) calls :func:`preflight_registration` before an engine
is imported, so bad input is refused in about a second with exit code 2 and nothing is written.
"""

from __future__ import annotations

from ..core.errors import InputError
from .jobs import RegistrationJob


def preflight_registration(job: RegistrationJob) -> RegistrationJob:
    """Refuse a job whose inputs, preset or outputs are wrong; return it with absolute paths.

    Checks, in order: every input file exists; every output can be written (extension, folder);
    the preset loads and names only parameters its engine knows.
    """
    from ..engines.presets import load_preset  # SimpleITK, not needed to build a job

    job = job.resolved()
    for name, path in job.missing_inputs():
        raise InputError(f"{name.replace('_', ' ')} file not found: {path}: check the path")
    job.check_outputs()
    load_preset(job.engine, job.preset)
    return job
