"""``--json -``: a command's JSON record on standard output, its human-readable lines on standard error."""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO

STDOUT = "-"


def to_stdout(path: str | None) -> bool:
    """Whether ``--json`` asked for standard output."""
    return path == STDOUT


def file_or_none(path: str | None) -> str | None:
    """The JSON file to write, None when there is none or the record goes to standard output."""
    return None if to_stdout(path) else path


def human_stream(path: str | None) -> TextIO:
    """Where the human-readable lines go: standard error when standard output carries the JSON."""
    return sys.stderr if to_stdout(path) else sys.stdout


def stdout_to_nowhere() -> None:
    """After a reader closed standard output (a broken pipe): point it at the null device, since Python flushes it
    again at exit and that flush would raise once more."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # a stream without a file descriptor (a test's, Slicer's)
        pass


def emit_json(path: str | None, record: dict) -> None:
    """Print ``record`` to standard output when ``--json -`` asked for it."""
    if not to_stdout(path):
        return
    try:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `... --json - | true`: a traceback and exit 1 had come after the outputs were written
        stdout_to_nowhere()
        print("warning: the JSON record was not printed: the reader of standard output had closed it; the "
              "outputs were written", file=sys.stderr)
