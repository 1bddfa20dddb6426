"""A command line as text, as records keep it and "Copy as command" gives it: quoted for the user's shell.

POSIX shells read ``shlex`` quoting; cmd.exe and PowerShell do not take its single quotes (``'C:\\x y\\ct.nrrd'``
reached mmreg with its quotes), so on Windows every argument but a plain word or path is put in double quotes, as
the Microsoft C runtime reads them (``subprocess.list2cmdline`` quotes only blanks, and left ``H&E.nrrd`` to cmd.exe,
which ran ``E.nrrd``), and :func:`split` reads them back by the same rules. ``%NAME%`` is still expanded by cmd.exe.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable


def join(argv: Iterable[str], windows: bool | None = None) -> str:
    """One line that the user's shell (``windows``: default this machine's) splits back into ``argv``."""
    windows = os.name == "nt" if windows is None else windows
    argv = [str(argument) for argument in argv]
    return " ".join(_quote_windows(argument) for argument in argv) if windows else shlex.join(argv)


def _quote_windows(argument: str) -> str:
    if argument and re.fullmatch(r"[\w\-.:/\\=+]+", argument):
        return argument
    argument = re.sub(r'(\\*)"', lambda match: 2 * match.group(1) + '\\"', argument)  # n backslashes and a quote
    return '"' + re.sub(r"(\\+)\Z", lambda match: 2 * match.group(1), argument) + '"'  # before the closing quote


def split(text: str, windows: bool | None = None) -> list[str]:
    """The arguments of a line :func:`join` made."""
    windows = os.name == "nt" if windows is None else windows
    return _split_windows(text) if windows else shlex.split(text)


def _split_windows(text: str) -> list[str]:
    # The C runtime's rules: 2n backslashes before a quote are n and the quote opens or closes; 2n+1 are n and a
    # literal quote; other backslashes are literal; blanks outside quotes separate arguments.
    arguments: list[str] = []
    current: list[str] = []
    quoted = started = False
    i = 0
    while i < len(text):
        character = text[i]
        if character == "\\":
            end = i
            while end < len(text) and text[end] == "\\":
                end += 1
            count = end - i
            if end < len(text) and text[end] == '"':
                current.append("\\" * (count // 2) + ('"' if count % 2 else ""))
                i = end + 1 if count % 2 else end
            else:
                current.append("\\" * count)
                i = end
            started = True
        elif character == '"':
            quoted, started, i = not quoted, True, i + 1
        elif character in " \t" and not quoted:
            if started:
                arguments.append("".join(current))
            current, started, i = [], False, i + 1
        else:
            current.append(character)
            started, i = True, i + 1
    if started:
        arguments.append("".join(current))
    return arguments
