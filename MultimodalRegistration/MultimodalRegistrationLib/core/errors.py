"""The exception types of the library and the exit codes every entry point uses. Every message names the fix."""

from __future__ import annotations

# Exit codes of mmreg, the worker processes and the Slicer batch script.
EXIT_OK, EXIT_ENGINE, EXIT_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # Ctrl-C (SIGINT); SIGTERM or SIGHUP


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (a scheduler, ``timeout``, a closed terminal): stop and clean up like Ctrl-C."""


class InputError(ValueError):
    """Bad input: the message says what is wrong and how to fix it (exit code 2)."""


class FileInUseError(InputError):
    """A file another program holds open (Windows): refused as bad input is (exit code 2), but the same run may
    pass once it is closed, so a batch runs the case again (worker kind "busy")."""


class ImagesApartError(InputError):
    """No start puts enough of the fixed image inside the moving image to register (exit code 2)."""


class EngineError(RuntimeError):
    """The registration engine failed (exit code 1).

    ``str(error)`` is the engine's own error; ``hint`` is advice a user can act on, ``log`` the
    engine's log text and ``log_path`` the file it was kept in, each a field from the engine to the user.
    """

    kind = "engine"  # the worker's error kind (process.worker)

    def __init__(self, message: str, hint: str = "", log: str = "", log_path: str | None = None):
        super().__init__(message)
        self.hint = hint
        self.log = log
        self.log_path = log_path


class DiskError(EngineError):
    """A file could not be written: the disk is full, a quota is used up or a file-size limit was reached (exit
    code 1, worker kind "disk"). Not a bug, and the same run may pass once there is room (a batch redoes it)."""

    kind = "disk"
