"""``--json -``: a command's JSON record on standard output, its human-readable lines on standard error."""

from __future__ import annotations

import json
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


def emit_json(path: str | None, record: dict) -> None:
    """Print ``record`` to standard output when ``--json -`` asked for it."""
    if to_stdout(path):
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        sys.stdout.flush()
