"""No output may equal, or be written into the place of, any input (issue 25): the one rule every command applies.

A file is compared by the place it resolves to (symbolic links followed, hard links by device and inode),
and an image with a detached header (``.nhdr``, ``.mhd``) also by its data file: the one its header names
for an input, the ones ITK writes beside it (``.raw``, ``.raw.gz``, ``.zraw``) for an output. Two outputs
in one place are refused too (the second would silently replace the first). Nothing is read but headers.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import InputError
from .files import stem_of, suffix_of

# The data files ITK writes beside a detached header, by the header's extension.
_DATA_FILES = {".nhdr": (".raw", ".raw.gz"), ".mhd": (".raw", ".zraw")}

PathLike = str | os.PathLike


_CASE_BLIND = sys.platform == "darwin" or os.name == "nt"  # their usual file systems: Reg.h5 is reg.h5
_ACCENT_BLIND = sys.platform == "darwin"  # APFS and HFS+ also take a composed and a decomposed é for one


def _folded(path: Path) -> str:
    """As the disk compares names: capitals ignored; on macOS also how an accent is stored (NFC or NFD)."""
    return (unicodedata.normalize("NFC", str(path)) if _ACCENT_BLIND else str(path)).lower()


def _resolved(path: PathLike) -> Path:
    return resolved_path(path)


def resolved_path(path: PathLike, role: str = "", output: bool = False) -> Path:
    """``path`` made absolute with its symbolic links followed. Refused: a link that leads back to itself (it had
    ended in a traceback), and an ``output`` link to a file of another format (``T.h5`` -> ``ct.nrrd`` had been
    refused by the target's name alone; a helper's file-system sweep)."""
    given = Path(path).expanduser()
    named = f"{role} {given}".strip()
    try:
        resolved = given.resolve()
    except (RuntimeError, OSError):  # RuntimeError before Python 3.13, OSError (ELOOP) after
        raise InputError(f"{named}: its path goes through a symbolic link that leads back to itself (a loop): point "
                         "the link at a file or folder, or give the path without it") from None  # fmt: skip
    if output and suffix_of(resolved) != suffix_of(given):
        raise InputError(f"{named} is a link to {resolved}, a file of another kind: give the output a path of its "
                         "own (a link is written through, to the file it leads to)")  # fmt: skip
    return resolved


def input_places(path: PathLike) -> list[Path]:
    """Where an input's bytes are: the file and, for a detached header, the data file it names."""
    places = [_resolved(path)]
    if suffix_of(path) in _DATA_FILES and places[0].is_file():
        from .file_bytes import voxel_bytes

        try:
            layout = voxel_bytes(places[0])
        except OSError:
            layout = None
        if layout is not None and layout.data != places[0]:
            places.append(_resolved(layout.data))
    return places


def _output_places(path: PathLike) -> list[Path]:
    """Where an output's bytes go: the file and, for a detached header, the data files ITK may write."""
    place = _resolved(path)
    stem = stem_of(place)
    return [place] + [place.with_name(stem + suffix) for suffix in _DATA_FILES.get(suffix_of(place), ())]


def file_id(stat: os.stat_result) -> tuple[int, int] | None:
    """The entry's (device, file id), or None on a disk that gives no file ids (st_ino 0: sshfs-win, WebDAV and some
    network shares on Windows), where ``os.path.samefile`` takes every pair for one entry (CPython gh-78116)."""
    return (stat.st_dev, stat.st_ino) if stat.st_ino else None


def one_entry(a: PathLike, b: PathLike) -> bool:
    """Whether two existing paths are one entry on disk (a hard link, a second spelling); without file ids only the
    names tell (a Windows review)."""
    try:
        first, second = file_id(os.stat(a)), file_id(os.stat(b))
    except (OSError, ValueError):
        return False
    return first is not None and first == second


def same_place(a: Path, b: Path) -> bool:
    """Whether two paths name one file or folder: equal, equal as this system's disks compare names, or one entry."""
    return a == b or (_CASE_BLIND and _folded(a) == _folded(b)) or one_entry(a, b)


def spellings(name: str) -> set[str]:
    """The ways of writing ``name`` that this system's disks take for one (macOS: é composed or decomposed), for a
    glob, which compares the names as stored."""
    return {name, unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)} if _ACCENT_BLIND else {name}


def _given(paths: Mapping[str, PathLike | None] | Iterable[tuple[str, PathLike | None]]) -> list[tuple[str, str]]:
    items = paths.items() if isinstance(paths, Mapping) else paths
    return [(role, str(path)) for role, path in items if path not in (None, "")]


def check_outputs_apart(
    inputs: Mapping[str, PathLike | None] | Iterable[tuple[str, PathLike | None]],
    outputs: Mapping[str, PathLike | None] | Iterable[tuple[str, PathLike | None]],
    fix: str | None = None,
) -> None:
    """Refuse (:class:`InputError`) an output that would overwrite an input or another output.

    ``inputs`` and ``outputs`` map how a message names each file ("moving image", "--output-volume")
    to its path; None or "" means not given; ``fix`` replaces the advice (default: write it elsewhere).
    Call it before any work: nothing is written.
    """
    given_inputs, given_outputs = _given(inputs), _given(outputs)
    places = [(role, path, place) for role, path in given_inputs for place in input_places(path)]
    claimed: list[tuple[str, str, Path]] = []
    for out_role, out_path in given_outputs:
        for place in _output_places(out_path):
            for in_role, in_path, in_place in places:
                if same_place(place, in_place):
                    where = "is" if place == _resolved(out_path) else f"would write {place.name}, a part of"
                    raise InputError(
                        f"the {out_role} {out_path} {where} the {in_role} ({in_path}): writing it would destroy "
                        f"an input; {fix or f'write the {out_role} to another file or folder'}"
                    )
            for other_role, other_path, other_place in claimed:
                if other_role != out_role and same_place(place, other_place):
                    capitals = place != other_place and _folded(place) == _folded(other_place)
                    spelled = f" and {other_path}, to a disk that ignores capitals" if capitals else ""
                    raise InputError(
                        f"the {out_role} and the {other_role} are the same file ({out_path}{spelled}): one would "
                        f"replace the other; give the {out_role} a name of its own"
                    )
            claimed.append((out_role, out_path, place))
