"""Where a NIfTI or Analyze 7.5 file keeps its voxels: the header's dims, bitpix and vox_offset, and the data file.

A single file (``.nii``, ``.nii.gz``) keeps them after its header, from ``vox_offset``; a pair keeps them in the
``.img`` (or ``.img.gz``) beside its ``.hdr``, from ``vox_offset`` (0 as a rule), and either of the two may be given.
ITK's reader opens a ``.nii.gz`` that is not gzip as it is, so the bytes, not the name, say whether it is compressed.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

from .file_headers import file_suffix, parse_nifti_header

# Data files of a .hdr, in the order ITK's reader (nifti_findimgname) tries them.
_DATA_SUFFIXES = (".img", ".img.gz", ".IMG", ".IMG.gz")
_HEADER_SUFFIXES = (".hdr", ".HDR")


@dataclass
class NiftiLayout:
    """What a NIfTI or Analyze header says about its voxels (bytes), and which file holds them."""

    header: Path  # the file holding the header (the .hdr of a given .img)
    data: Path  # the file holding the voxels (the header itself for a single file)
    gzip: bool  # ``data`` is gzip-compressed; the offsets count in the unpacked stream
    dims: tuple[int, ...]  # voxels per axis
    expected: int  # voxel bytes the header promises
    vox_offset: int  # bytes before the voxels in ``data``, as written
    first: int  # the smallest vox_offset ITK reads right (348 for a NIfTI-1 single file, else 0)


def is_gzip(path: Path) -> bool:
    """Whether ``path`` starts with the gzip magic."""
    with open(path, "rb") as file:
        return file.read(2) == b"\x1f\x8b"


def _head(path: Path) -> bytes:
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as file:
            return file.read(540)
    except (OSError, EOFError, zlib.error):
        return b""


def _beside(path: Path, suffixes: tuple[str, ...]) -> Path | None:
    stem = path.name[: -len(path.suffix)]
    return next((path.with_name(stem + s) for s in suffixes if path.with_name(stem + s).is_file()), None)


def nifti_layout(path: Path) -> NiftiLayout | None:
    """Where the voxels of a ``.nii``, ``.nii.gz``, ``.hdr`` or ``.img`` are; None where this is left to ITK
    (another name, a header that is not NIfTI or Analyze, an ``.img`` with no ``.hdr``, a pair named ``.nii``)."""
    suffix = file_suffix(path)
    header = _beside(path, _HEADER_SUFFIXES) if suffix == ".img" else path
    if suffix not in (".nii", ".nii.gz", ".hdr", ".img") or header is None:
        return None
    parsed = parse_nifti_header(_head(header))
    if parsed is None:
        return None
    dims, single, offset = tuple(int(n) for n in parsed.dims), parsed.single, parsed.vox_offset
    if parsed.bitpix <= 0 or min(dims) <= 0 or not math.isfinite(offset) or single != (suffix in (".nii", ".nii.gz")):
        return None  # a .hdr holding its own voxels, a .nii whose voxels are elsewhere: ITK's reader says
    if single:
        data = path
    else:
        data = path if suffix == ".img" else _beside(path, _DATA_SUFFIXES) or path.with_name(path.stem + ".img")
    expected = math.prod(dims) * parsed.bitpix // 8
    # A single file's voxels start after its header at the earliest. The standard asks for 4 extension bytes more
    # (352, 544), but ITK reads a file without them right, and such a file is refused nowhere else.
    first = parsed.header_bytes if single else 0
    return NiftiLayout(header, data, data.is_file() and is_gzip(data), dims, expected, int(offset), first)
