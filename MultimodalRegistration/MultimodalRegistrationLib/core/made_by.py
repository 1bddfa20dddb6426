"""How a record was made, for the records a command writes beside its outputs (prep.json, a stack's and a QA's
JSON): the versions of mmreg, SimpleITK and Python, the command line as typed and the folder it was typed in
(its relative paths are relative to that folder)."""

from __future__ import annotations

import os
import platform

from . import command_line
from .version import __version__


def made_by(arguments=None) -> dict:
    """Versions, and the command (``arguments.argv`` as mmreg's main keeps it) with its working folder."""
    import SimpleITK as sitk

    record = {"mmreg": __version__, "simpleitk": sitk.Version.VersionString(), "python": platform.python_version()}
    argv = getattr(arguments, "argv", None)
    if argv:
        record["command"] = command_line.join(["mmreg", *argv])
        record["working_folder"] = os.getcwd()
    return record
