"""Checks of an image file before its voxels are trusted: a header's spacing as written, and a
compressed file read to its end. ITK would otherwise fill a truncated ``.nii.gz`` with zeros, turn a
negative spacing into a flipped axis, and report NaN spacing as spacing 0."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

from .errors import InputError

SUPPORTED = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
LINEAR_SUFFIXES = (".tfm", ".txt", ".mat")
TRANSFORM_SUFFIXES = (".h5", ".hdf5") + LINEAR_SUFFIXES
_CHUNK = 1 << 22


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _text_header(path: Path, limit: int = 65536) -> str:
    with open(path, "rb") as file:
        return file.read(limit).split(b"\n\n", 1)[0].decode("latin-1", errors="replace")


def _numbers(text: str) -> list[float]:
    values = []
    for token in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
        try:
            values.append(float(token))
        except ValueError:
            values.append(math.nan)
    return values


def header_spacing(path: Path) -> list[float] | None:
    """The spacing (mm) exactly as the header writes it, for MetaImage, NRRD ``spacings`` and NIfTI; else None."""
    suffix = _suffix(path)
    if suffix in (".mha", ".mhd"):
        for line in _text_header(path).splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("ElementSpacing", "ElementSize"):
                return _numbers(value)
    elif suffix in (".nrrd", ".nhdr"):
        for line in _text_header(path).splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "spacings":
                return [v for v in _numbers(value)]
    elif suffix in (".nii", ".nii.gz"):
        opener = gzip.open if suffix == ".nii.gz" else open
        try:
            with opener(path, "rb") as file:
                header = file.read(348)
        except (OSError, EOFError):
            return None
        if len(header) < 348:
            return None
        order = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
        dimensions = struct.unpack(order + "8h", header[40:56])[0]
        pixdim = struct.unpack(order + "8f", header[76:108])
        return list(pixdim[1 : 1 + max(1, min(dimensions, 3))])
    return None


def check_spacing_as_written(path: Path, role: str) -> None:
    """Refuse a header spacing that is NaN, infinite, zero or negative, naming the value and the axis."""
    spacing = header_spacing(path)
    # NIfTI readers take the size of pixdim (its sign belongs to the orientation); MetaImage and NRRD do not.
    signed = _suffix(path) not in (".nii", ".nii.gz")
    for axis, value in enumerate(spacing or []):
        if not math.isfinite(value) or value == 0 or (signed and value < 0):
            kind = "negative (ITK would flip that axis without a word)" if value < 0 else "not a positive number"
            raise InputError(
                f"{role} file {path} gives spacing {value:g} along axis {axis}, which is {kind}: "
                "correct the spacing in the file's header (or set it with mmreg prep --spacing-fixed/--spacing-moving)"
            )


def check_compressed_data_complete(path: Path, role: str) -> None:
    """Read a gzip-compressed file to its end: a truncated one is refused instead of zero-filled."""
    with open(path, "rb") as file:
        if file.read(2) != b"\x1f\x8b":
            return
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(_CHUNK):
                pass
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise InputError(
            f"{role} file {path} is truncated or damaged: its compressed data ends early ({error}); "
            "copy or download the file again"
        ) from None


def unreadable_advice(path: Path) -> str:
    """What to do with a file ITK cannot read: convert an unsupported format, or replace a damaged file."""
    if _suffix(path) in SUPPORTED:
        return "the file is damaged or not what its name says: export it again from the scanner or from Slicer"
    return "save it as NRRD, NIfTI or MHA"


def check_output_path(path: str | os.PathLike, role: str, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output whose extension cannot be written or whose folder cannot be made.

    Nothing is created: the nearest existing folder must be a writable folder.
    """
    path = Path(path)
    if suffixes and _suffix(path) not in suffixes:
        raise InputError(f"cannot write the {role} to '{path.name}': use one of {', '.join(suffixes)}")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write the {role} {path}: {folder} is a file, not a folder: choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write the {role} {path}: {folder} is not writable: choose another folder")
