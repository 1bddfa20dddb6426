"""The ``mmreg`` command's entry point (``python -m MultimodalRegistrationLib.cli`` too): a Ctrl-C while the library
loads or the arguments are read (about the first half second) ends as a later stop does, with exit 130 and one line,
where it had printed a traceback (a helper's sweep)."""

from __future__ import annotations

import sys

from ..core.errors import EXIT_INTERRUPTED
from ..core.files import signals_held


def main(argv: list[str] | None = None) -> int:
    """Load :func:`.main.main` and run it with ``argv`` (the command line's when None); its exit code."""
    command = None
    try:
        # Held while the commands and SimpleITK load, then raised: SimpleITK's loading swallows a KeyboardInterrupt
        # raised inside it, and the run went on to write everything (a sweep: Ctrl-C at 0.16-0.19 s).
        with signals_held():
            import SimpleITK  # noqa: F401

            from . import main as command
        return command.main(argv)
    except KeyboardInterrupt:  # before main() handles it: loading, reading the arguments
        said = command._what_was_written() if command is not None else "nothing was written"  # noqa: SLF001
        print(f"error: interrupted; {said}", file=sys.stderr)
        return EXIT_INTERRUPTED
