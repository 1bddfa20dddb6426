"""Names a file system cannot hold: one over NAME_MAX_BYTES, or one whose file written beside it would be."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePath

from .errors import InputError
from .file_headers import file_suffix
from .files import NAME_MAX_BYTES

# The longest name a run writes beside an output, past its stem: a detached header's R.raw.gz, a record T.json.
BESIDE_SUFFIXES = (".raw.gz", ".json", ".log", ".zraw")
_WINDOWS = os.name == "nt"
# Names Windows gives to devices, in any case and with any extension: no file or folder can take them.
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                   *(f"{port}{i}" for port in ("COM", "LPT") for i in (*range(1, 10), "¹", "²", "³"))}  # fmt: skip
_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*\x00-\x1f]')


def name_length(name: str) -> int:
    """A name's length as its file system counts it against NAME_MAX_BYTES: UTF-8 bytes (ext4, APFS), UTF-16 code units
    on Windows (NTFS): a valid name of 86 CJK characters had been refused there (a helper's Windows review)."""
    return len(name.encode("utf-16-le")) // 2 if _WINDOWS else len(os.fsencode(name))


def check_name_lengths(path: Path, role: str) -> None:
    """Refuse a name (or a name a run writes beside it) over the NAME_MAX_BYTES a file system holds: a 255-byte
    T.h5 had run, then failed writing its 257-byte T.json with a traceback (a helper's sweep)."""
    stem = path.name[: len(path.name) - len(file_suffix(path))]
    beside = max((stem + suffix for suffix in BESIDE_SUFFIXES), key=name_length)
    too_long = [part for part in (*path.parts, beside) if name_length(part) > NAME_MAX_BYTES]
    if too_long:
        name = path.name if too_long[0] == beside else too_long[0]
        said = ", with the files written beside it (a .json record, a .raw.gz data file)," if name == path.name and (
            name_length(path.name) <= NAME_MAX_BYTES) else ""
        unit = "characters" if _WINDOWS else "bytes"
        raise InputError(
            f"cannot write the {role}: the name '{name[:40]}...'{said} is {name_length(too_long[0])} {unit} "
            f"long, over the {NAME_MAX_BYTES} a file system allows: choose a shorter name"
        )


def windows_name_trouble(name: str) -> str | None:
    """Why Windows cannot hold ``name`` as the name of a file or folder, or None."""
    forbidden = _WINDOWS_FORBIDDEN.search(name)
    if forbidden:  # ':' silently writes to a hidden stream of the file named before it ('MR 10' for 'MR 10:30.nrrd')
        return f"it holds {forbidden.group()!r}, which Windows does not allow in a name"
    if name.endswith((".", " ")):
        return "Windows drops a name's final dot or space, so it would be written under another name"
    if name.split(".")[0].rstrip().upper() in WINDOWS_DEVICES:
        return "it is a device name on Windows"
    return None


def check_windows_names(path: PurePath, role: str) -> None:
    """On Windows, refuse an output path with a name Windows cannot hold, among the folders and file it would make
    (one that exists holds its name): it had failed only after the registration, as 'this is a bug' (a Windows
    review)."""
    if not _WINDOWS:
        return
    path = path if isinstance(path, PurePath) else Path(path)
    first = 1 if path.anchor else 0
    if isinstance(path, Path):  # an existing folder 'data ' is the user's, and usable: only what is to be made
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        first = max(first, len(existing.parts)) if existing.exists() else first
    for part in path.parts[first:]:
        why = windows_name_trouble(part) if part not in (".", "..") else None
        if why:
            raise InputError(f"cannot write the {role} to {path}: the name '{part}' cannot be written, {why}: "
                             "rename it")  # fmt: skip
