"""Does an image file hold as many voxel bytes as its header promises? Checked before ITK reads it.

ITK's NIfTI reader fills a short ``.nii`` or ``.nii.gz`` with zeros or garbage without a word, and its
MetaImage reader fails with a stray "No such file or directory". So the bytes are counted here:

* uncompressed data (``.nii``, a ``.hdr`` + ``.img`` pair, ``.mha``/``.mhd`` + ``.raw``, NRRD ``encoding: raw``):
  the file size against product(size) x components x bytes per component after the header, which costs nothing;
* ``.nii.gz``: decompressed to its end (ITK would zero-fill it), counting the bytes (one that is not gzip, which
  ITK reads as it is, is counted as uncompressed); a single file's ``vox_offset`` must leave room for its header;
* NRRD gzip: the length in the gzip trailer first (cheap); only when it disagrees is the stream
  decompressed to decide (a file of several gzip members);
* MetaImage ``CompressedData``: the ``CompressedDataSize`` bytes must be present and unpack to the voxels (ITK
  unpacks only those and zero-fills the rest), and they must be zlib (or gzip) data; NRRD bzip2 is decompressed to
  its end.

ASCII and hex encodings and data split over several files (``LIST``, file patterns) are left to ITK.
"""

from __future__ import annotations

import bz2
import gzip
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .file_headers import file_suffix, metaimage_data_file, metaimage_header, nrrd_header
from .memory import format_bytes
from .nifti_layout import nifti_layout

_CHUNK = 1 << 22
# Bytes per component of MetaImage's element types (MetaIO's MET_ValueTypeSize: MET_LONG is 4 bytes).
_MET_BYTES = {"CHAR": 1, "UCHAR": 1, "SHORT": 2, "USHORT": 2, "INT": 4, "UINT": 4, "LONG": 4, "ULONG": 4,
              "LONG_LONG": 8, "ULONG_LONG": 8, "FLOAT": 4, "DOUBLE": 8}  # fmt: skip


@dataclass
class VoxelBytes:
    """Where a file's voxels are and how many bytes the header promises."""

    data: Path  # the file holding the voxels (the header itself, or a detached .raw)
    start: int  # where the stored (possibly compressed) stream begins in ``data``
    skip: int  # bytes before the voxels inside the (decompressed) stream
    expected: int  # voxel bytes the header promises
    encoding: str = "raw"  # raw, gzip, zlib or bzip2
    at_end: bool = False  # the voxels are the last bytes of ``data`` (MetaImage HeaderSize -1, NRRD byte skip -1)
    compressed_size: int | None = None  # MetaImage CompressedDataSize
    quick: bool = False  # gzip: trust the trailer's length when it agrees
    sizes: tuple[int, ...] = ()
    header: Path | None = None  # the file holding the header when it is not the one given (an .img's .hdr)
    first: int = 0  # the smallest ``skip`` ITK reads right (a .nii's voxels start after its 348-byte header)


def _product(values) -> int:
    total = 1
    for value in values:
        total *= int(value)
    return total


def _nrrd_component_bytes(kind: str) -> int | None:
    name = kind.lower().replace("_t", "")
    if "long" in name or "64" in name or "double" in name:
        return 8
    if "short" in name or "16" in name:
        return 2
    if "char" in name or name.endswith("int8"):
        return 1
    if "float" in name or "int" in name:
        return 4
    return None  # block


def _metaimage(path: Path) -> VoxelBytes | None:
    fields, offset = metaimage_header(path)
    kind = fields.get("ElementType", "").upper().replace("MET_", "").replace("_ARRAY", "")
    location = fields.get("ElementDataFile", "")
    if kind not in _MET_BYTES or not location or fields.get("BinaryData", "True").lower() == "false":
        return None
    sizes = [int(v) for v in fields.get("DimSize", "").split()]
    expected = _product(sizes) * int(fields.get("ElementNumberOfChannels", "1")) * _MET_BYTES[kind]
    header_size = int(float(fields.get("HeaderSize", "0")))
    if location.upper() == "LOCAL":
        if header_size > 0:
            return None  # a skip inside the same file: rare, left to ITK
        data, start = path, offset
    elif (detached := metaimage_data_file(path, location)) is None:
        return None  # one file per slice: ITK reports the missing ones
    else:
        data, start = detached, 0  # a name with spaces is one file, as MetaIO reads it
    if fields.get("CompressedData", "False").lower() == "true":
        size = fields.get("CompressedDataSize")
        return VoxelBytes(
            data, start, 0, expected, "zlib", compressed_size=int(size) if size else None, sizes=tuple(sizes)
        )
    return VoxelBytes(data, start, max(header_size, 0), expected, at_end=header_size == -1, sizes=tuple(sizes))


def _nrrd(path: Path) -> VoxelBytes | None:
    parsed = nrrd_header(path)
    if parsed is None:
        return None
    fields, offset = parsed
    component = _nrrd_component_bytes(fields.get("type", ""))
    encoding = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}.get(
        fields.get("encoding", "").lower()
    )
    location = fields.get("data file", fields.get("datafile"))
    if component is None or encoding is None or int(fields.get("line skip", fields.get("lineskip", "0"))) != 0:
        return None
    if location and (location.upper().startswith("LIST") or len(location.split()) > 1):
        return None
    sizes = [int(v) for v in fields.get("sizes", "").split()]
    skip = int(fields.get("byte skip", fields.get("byteskip", "0")))
    data = (path.parent / location) if location else path
    return VoxelBytes(data, 0 if location else offset, max(skip, 0), _product(sizes) * component, encoding,
                      at_end=skip == -1, quick=True, sizes=tuple(sizes))  # fmt: skip


def _nifti(path: Path) -> VoxelBytes | None:
    layout = nifti_layout(path)
    if layout is None:
        return None
    # A pair's negative vox_offset puts the voxels at the end of the .img (nifti1_io); a single file's is refused.
    at_end = layout.vox_offset < 0 and layout.first == 0
    return VoxelBytes(layout.data, 0, 0 if at_end else layout.vox_offset, layout.expected,
                      "gzip" if layout.gzip else "raw", at_end=at_end, sizes=layout.dims,
                      header=layout.header if layout.header != path else None, first=layout.first)  # fmt: skip


def voxel_bytes(path: Path) -> VoxelBytes | None:
    """Where the header says the voxels are, and how many bytes; None where this is left to ITK."""
    suffix = file_suffix(path)
    try:
        if suffix in (".mha", ".mhd"):
            return _metaimage(path)
        if suffix in (".nrrd", ".nhdr"):
            return _nrrd(path)
        if suffix in (".nii", ".nii.gz", ".hdr", ".img"):
            return _nifti(path)
    except ValueError:
        return None  # a field that is not a number: ITK's reader says what is wrong
    return None


def _unpacked(decoder, raw, limit: int | None) -> int:
    """Bytes a zlib or bzip2 stream unpacks to, reading at most ``limit`` stored bytes, _CHUNK of output at a time
    (a mask's zeros unpack a thousandfold)."""
    total, left = 0, limit
    while not decoder.eof and (left is None or left > 0):
        data = raw.read(_CHUNK if left is None else min(_CHUNK, left))
        if not data:
            break
        left = None if left is None else left - len(data)
        while data is not None and not decoder.eof:
            total += len(decoder.decompress(data, _CHUNK))
            if isinstance(decoder, bz2.BZ2Decompressor):
                data = None if decoder.needs_input else b""
            else:
                data = decoder.unconsumed_tail or None
    if not isinstance(decoder, bz2.BZ2Decompressor):
        total += len(decoder.flush())
    return total


def _decoded_length(layout: VoxelBytes, path: Path, role: str, limit: int | None = None) -> tuple[int, bool]:
    """Decompress the stored stream (its first ``limit`` bytes if given) and count its bytes; returns the count and
    whether the stream ended. Without a limit, a stream that ends early is refused."""
    if layout.encoding == "gzip":
        decoder = None
    else:  # zlib: MetaIO's inflateInit2(47) takes a zlib or a gzip wrapper
        decoder = zlib.decompressobj(47) if layout.encoding == "zlib" else bz2.BZ2Decompressor()
    total = 0
    with open(layout.data, "rb") as raw:
        raw.seek(layout.start)
        try:
            if decoder is None:
                with gzip.GzipFile(fileobj=raw) as stream:
                    while chunk := stream.read(_CHUNK):
                        total += len(chunk)
                return total, True
            total = _unpacked(decoder, raw, limit)
            if not decoder.eof and limit is None:
                raise EOFError("the compressed stream has no end")
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
            raise InputError(
                f"{role} file {path} is truncated or damaged: its compressed data ends early ({error}); "
                "copy or download the file again"
            ) from None
    return total, decoder.eof


def _gzip_trailer_agrees(layout: VoxelBytes, wanted: int) -> bool:
    """The gzip trailer stores the decompressed length modulo 2**32: a cut file ends in other bytes."""
    with open(layout.data, "rb") as raw:
        raw.seek(0, os.SEEK_END)
        if raw.tell() - layout.start < 18:
            return False
        raw.seek(-4, os.SEEK_END)
        return struct.unpack("<I", raw.read(4))[0] == wanted % 2**32


def check_voxel_bytes(path: Path, role: str) -> VoxelBytes | None:
    """Refuse a file (or its detached data file) holding fewer voxel bytes than its header promises.

    Returns where the voxels are, or None for a layout left to ITK (nothing was checked).
    """
    path = Path(path)
    layout = voxel_bytes(path)
    if layout is None:
        return None
    if not layout.data.is_file():
        raise InputError(
            f"{role} file {path} keeps its voxels in {layout.data.name}, which is not at {layout.data.absolute()}: "
            "copy the data file beside its header (a .mhd, .nhdr or .hdr and its data file travel together)"
        )
    sizes = "×".join(str(s) for s in layout.sizes)
    holder = layout.data.name if layout.data != path or layout.header else "the header"
    stored = layout.data.stat().st_size - layout.start

    def after(found: str) -> str:
        return f"only {found} follow the header" if holder == "the header" else f"{holder} holds only {found}"

    if layout.skip < layout.first:
        raise InputError(
            f"{role} file {path}: its vox_offset {layout.skip} is below {layout.first}, the end of a "
            f"{file_suffix(path)} file's header (ITK would read header bytes as voxels and shift the image): save the "
            "file again"
        )
    if layout.encoding == "raw":
        present = stored if layout.at_end else stored - layout.skip
        if present < layout.expected:
            promised, found = _amounts(layout.expected, present)
            raise InputError(
                f"{role} file {path} is shorter than its header says: the header describes {sizes} voxels "
                f"({promised}) but {after(found)}: the file was cut short in a copy or download "
                "(or by a failed export); "
                "copy or export it again"
            )
        return layout
    if layout.encoding == "zlib":
        _check_zlib_fields(layout, path, role, stored, after)
    wanted = layout.skip + layout.expected
    if layout.quick and layout.encoding == "gzip" and _gzip_trailer_agrees(layout, wanted):
        return layout
    limit = layout.compressed_size if layout.encoding == "zlib" else None
    decoded, ended = _decoded_length(layout, path, role, limit)
    if decoded < wanted and not ended:  # ITK unpacks only CompressedDataSize bytes and zero-fills the rest
        promised, found = _amounts(layout.expected, decoded)
        raise InputError(
            f"{role} file {path} is damaged: its CompressedDataSize ({limit:,} bytes) ends the zlib stream early: "
            f"it unpacks to {found} of the {promised} the header describes ({sizes} voxels): export it again"
        )
    if decoded < wanted:
        promised, found = _amounts(layout.expected, decoded - layout.skip)
        raise InputError(
            f"{role} file {path} holds fewer voxels than its header says: the header describes {sizes} voxels "
            f"({promised}) but the compressed data in {holder} unpacks to only {found}: copy or export the file again"
        )
    return layout


def _check_zlib_fields(layout: VoxelBytes, path: Path, role: str, stored: int, after: Callable[[str], str]) -> None:
    """Refuse a MetaImage ``CompressedData`` that ITK would misread: its stated size not all there (``stored`` bytes
    are, ``after`` words that), a LOCAL stream with no size, or voxels that start with no zlib or gzip header."""
    if layout.compressed_size is not None and stored < layout.compressed_size:
        promised, found = _amounts(layout.compressed_size, stored)
        raise InputError(
            f"{role} file {path} is shorter than its header says: the header promises {promised} of compressed "
            f"voxels but {after(found)}: the file was cut short in a copy or download; copy or download the file again"
        )
    if layout.compressed_size is None and layout.data == path:  # ITK's MetaIO then fails to inflate: noise
        raise InputError(
            f"{role} file {path} gives no CompressedDataSize: ITK reads compressed voxels kept in the header file "
            f"(ElementDataFile = LOCAL) only with it, else as noise: add the line 'CompressedDataSize = {stored}' "
            "before ElementDataFile, or export the file again"
        )
    with open(layout.data, "rb") as raw:
        raw.seek(layout.start)
        first = raw.read(2)
    # RFC 1950: deflate (CM 8) with a window of at most 32 kB, and a check making the two bytes a multiple of 31.
    zlib_header = len(first) == 2 and first[0] & 0x0F == 8 and first[0] >> 4 <= 7
    if first != b"\x1f\x8b" and not (zlib_header and int.from_bytes(first, "big") % 31 == 0):
        where = f"in {layout.data.name}" if layout.data != path else "after the header"
        raise InputError(
            f"{role} file {path}: its voxels are not zlib-compressed though the header says CompressedData = True "
            f"(the bytes {where} begin with no zlib header): if they are raw, set CompressedData = False and remove "
            "CompressedDataSize; else export the file again"
        )


def _amounts(expected: int, present: int) -> tuple[str, str]:
    """Both byte counts for a message, exact when rounding would make them look equal."""
    present = max(present, 0)
    if format_bytes(expected) == format_bytes(present):
        return f"{expected:,} bytes", f"{present:,} bytes"
    return format_bytes(expected), format_bytes(present)


def check_compressed_data_complete(path: Path, role: str) -> None:
    """Read a gzip-compressed file to its end: a truncated one is refused instead of zero-filled."""
    path = Path(path)
    with open(path, "rb") as file:
        if file.read(2) != b"\x1f\x8b":
            return
    _decoded_length(VoxelBytes(path, 0, 0, 0, "gzip"), path, role)
