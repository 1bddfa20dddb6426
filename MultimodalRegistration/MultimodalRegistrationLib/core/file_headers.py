"""Image file headers exactly as written: the text fields of MetaImage and NRRD, the binary NIfTI header.

No voxel is read. ITK reports some of these values changed (NaN spacing as 0, a negative spacing as a
flipped axis), so the checks that must see the written value read it here.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .files import suffix_of

_HEADER_LIMIT = 1 << 20  # no image header is longer than 1 MB; stop before reading voxels as text
_LINE_LIMIT = 1 << 16


file_suffix = suffix_of  # the lower-case extension, ``.nii.gz`` counted as one


def check_not_empty(path: Path, subject: str, fix: str) -> None:
    """Refuse a file of 0 bytes, saying so (a reader's own refusal names another cause: damaged, no columns);
    ``subject`` names it in the message ("moving image file", "manifest"), ``fix`` says what to do."""
    if Path(path).stat().st_size == 0:
        raise InputError(f"{subject} {path}: the file is empty (0 bytes): {fix}")


def _lines(path: Path, stop) -> tuple[list[str], int]:
    """Header lines up to and including the one ``stop(line)`` accepts (or EOF), and the byte offset after it."""
    lines, offset = [], 0
    with open(path, "rb") as handle:
        while offset < _HEADER_LIMIT:
            raw = handle.readline(_LINE_LIMIT)
            if not raw:
                break
            offset += len(raw)
            text = raw.decode("latin-1").rstrip("\r\n")
            lines.append(text)
            if stop(text):
                break
    return lines, offset


def metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """MetaImage fields (``Key = Value``, keys as written) and the byte offset just after ``ElementDataFile``,
    where the voxels of ``ElementDataFile = LOCAL`` begin."""
    lines, offset = _lines(path, lambda line: line.split("=", 1)[0].strip() == "ElementDataFile")
    fields = {}
    for line in lines:
        key, equals, value = line.partition("=")
        if equals:
            fields[key.strip()] = value.strip()
    return fields, offset


def metaimage_data_file(path: Path, location: str) -> Path | None:
    """The one detached data file a MetaImage header at ``path`` names in ``ElementDataFile`` (``location``,
    spaces allowed: MetaIO reads ``my scan.raw`` as one name); None for ``LOCAL``, a ``LIST`` or a file pattern
    (``slice%03d.raw 1 40 1``: MetaIO's mark of one is the %)."""
    location = location.strip()
    if not location or location.upper() == "LOCAL" or location.upper().startswith("LIST") or "%" in location:
        return None
    return path.parent / location


def nrrd_header(path: Path) -> tuple[dict[str, str], int] | None:
    """NRRD fields (lower-case keys) and the byte offset after the blank line ending the header; None if not NRRD."""
    with open(path, "rb") as handle:
        if handle.read(4) != b"NRRD":
            return None
    lines, offset = _lines(path, lambda line: line == "")
    fields = {}
    for line in lines[1:]:
        key, colon, value = line.partition(":")
        if line.startswith("#") or not colon or value.startswith("="):
            continue  # comments and key/value pairs (key:=value)
        fields[key.strip().lower()] = value.strip()
    return fields, offset


@dataclass
class NiftiHeader:
    """The fields of a NIfTI-1 or NIfTI-2 header that say where the voxels are and how many."""

    dims: list[int]  # voxels per axis, dim[1..dim[0]]
    bitpix: int  # bits per voxel
    vox_offset: float  # bytes before the voxels (in the decompressed stream for .nii.gz), as written: NaN possible
    pixdim: list[float]  # spacing of the first three axes, mm as written (sign included)
    qform_code: int = 0
    sform_code: int = 0
    srow: list[float] | None = None  # the sform's three rows (voxel index -> RAS, in unit_mm), 12 values
    unit_mm: float = 1.0  # the spatial unit (xyzt_units) in mm: ITK and Slicer scale by it, FSL and nibabel do not
    header_bytes: int = 348  # 348 (NIfTI-1, Analyze 7.5) or 540 (NIfTI-2)
    single: bool = False  # the magic of a single file (n+1, n+2): its voxels follow the header, not in an .img
    qoffset: list[float] | None = None  # the qform's translation (qoffset_x, y, z), as written


# NIfTI's xyzt_units spatial codes -> mm; unknown (0) is read as mm, as ITK reads it.
NIFTI_UNITS_MM = {1: 1000.0, 2: 1.0, 3: 0.001}


def nifti_header(path: Path) -> NiftiHeader | None:
    """The NIfTI header of a ``.nii`` or ``.nii.gz`` file; None if it is not one or is cut inside the header."""
    opener = gzip.open if file_suffix(path) == ".nii.gz" else open
    try:
        with opener(path, "rb") as file:
            return parse_nifti_header(file.read(540))
    except (OSError, EOFError, zlib.error):  # a .nii.gz damaged near its start: refused where it is read
        return None


def parse_nifti_header(header: bytes) -> NiftiHeader | None:
    """:class:`NiftiHeader` of a NIfTI-1, NIfTI-2 or Analyze 7.5 header's bytes (either byte order), else None."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            ndim = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = struct.unpack(order + "f", header[108:112])[0]
            pixdim = struct.unpack(order + "8f", header[76:108])
            codes, srow = struct.unpack(order + "2h", header[252:256]), struct.unpack(order + "12f", header[280:328])
            qoffset = struct.unpack(order + "3f", header[268:280])
            units, size, single = header[123], 348, header[344:348] == b"n+1\0"  # Analyze: no magic
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            ndim = struct.unpack(order + "8q", header[16:80])
            pixdim = struct.unpack(order + "8d", header[104:168])
            offset = struct.unpack(order + "q", header[168:176])[0]
            codes, srow = struct.unpack(order + "2i", header[344:352]), struct.unpack(order + "12d", header[400:496])
            qoffset = struct.unpack(order + "3d", header[376:400])
            units, size, single = struct.unpack(order + "i", header[500:504])[0], 540, header[4:8] == b"n+2\0"
            break
    else:
        return None
    count = max(1, min(int(ndim[0]), 7))
    return NiftiHeader(list(ndim[1 : 1 + count]), int(bitpix), offset, list(pixdim[1 : 1 + min(count, 3)]),
                       int(codes[0]), int(codes[1]), list(srow), NIFTI_UNITS_MM.get(units & 0x07, 1.0), size,
                       single, list(qoffset))  # fmt: skip


def numbers(text: str) -> list[float]:
    """The numbers of a header value; a token that is not a number becomes NaN (it stays visible)."""
    values = []
    for token in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
        try:
            values.append(float(token))
        except ValueError:
            values.append(math.nan)
    return values


def header_spacing(path: Path) -> list[float] | None:
    """The spacing (mm) exactly as the header writes it, for MetaImage, NRRD ``spacings`` and NIfTI; else None."""
    suffix = file_suffix(path)
    if suffix in (".mha", ".mhd"):
        fields, _ = metaimage_header(path)
        value = fields.get("ElementSpacing", fields.get("ElementSize"))
        return None if value is None else numbers(value)
    if suffix in (".nrrd", ".nhdr"):
        parsed = nrrd_header(path)
        if parsed is None or "spacings" not in parsed[0]:
            return None
        return numbers(parsed[0]["spacings"])
    if suffix in (".nii", ".nii.gz"):
        header = nifti_header(path)
        return None if header is None else header.pixdim
    return None


def spacing_error(path: Path, role: str, axis: int, value: float) -> InputError:
    """The refusal of one bad spacing value, naming the axis and the fix."""
    kind = "negative (ITK would flip that axis without a word)" if value < 0 else "not a positive number"
    # mmreg prep can replace a MetaImage's spacing as it reads it; other formats refuse to be read first.
    option = " (or set it with mmreg prep --spacing-fixed/--spacing-moving)" if file_suffix(path) in (".mha", ".mhd") else ""
    return InputError(
        f"{role} file {path} gives spacing {value:g} along axis {axis}, which is {kind}: "
        f"correct the spacing in the file's header{option}"
    )


def check_spacing_as_written(path: Path, role: str) -> None:
    """Refuse a header spacing that is NaN, infinite, zero or negative, naming the value and the axis."""
    spacing = header_spacing(Path(path))
    # NIfTI readers take the size of pixdim (its sign belongs to the orientation); MetaImage and NRRD do not.
    signed = file_suffix(Path(path)) not in (".nii", ".nii.gz")
    for axis, value in enumerate(spacing or []):
        if not math.isfinite(value) or value == 0 or (signed and value < 0):
            raise spacing_error(path, role, axis, value)


def header_origin(path: Path) -> list[float] | None:
    """The origin (mm) exactly as the header writes it: MetaImage ``Offset``, NRRD ``space origin``, NIfTI-1
    ``qoffset`` and ``srow`` (translations and rows); None when the header gives none."""
    suffix = file_suffix(path)
    if suffix in (".mha", ".mhd"):
        fields, _ = metaimage_header(path)
        value = next((fields[key] for key in ("Offset", "Origin", "Position") if key in fields), None)
        return None if value is None else numbers(value)
    if suffix in (".nrrd", ".nhdr"):
        parsed = nrrd_header(path)
        if parsed is None or "space origin" not in parsed[0]:
            return None
        return numbers(parsed[0]["space origin"])
    if suffix in (".nii", ".nii.gz"):
        header = nifti_header(path)
        if header is None:
            return None
        # ITK reads neither unless its code is set: a NaN there (an unused sform) places nothing
        return [*(header.qoffset if header.qform_code > 0 else ()), *(header.srow if header.sform_code > 0 else ())]
    return None


def check_origin_as_written(path: Path, role: str) -> None:
    """Refuse a header origin that is NaN or infinite: ITK reads NaN as 0 and the image silently moves."""
    origin = header_origin(Path(path))
    if origin and not all(math.isfinite(value) for value in origin):
        raise InputError(
            f"{role} file {path} gives an origin or position ({' '.join(f'{v:g}' for v in origin[:3])}"
            f"{' ...' if len(origin) > 3 else ''}) that is not a number: ITK would read it as 0 and place the image "
            "wrongly; "
            "set the true origin in the file's header (or export the image again)"
        )
