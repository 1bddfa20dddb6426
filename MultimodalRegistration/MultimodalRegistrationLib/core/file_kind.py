"""What a file holds, from its first bytes, whatever its name says, and the refusal of a file ITK cannot read with
what to do (a sound NRRD named .nii had been called damaged; a helper's file-system sweep)."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from .errors import InputError
from .file_headers import nifti_header
from .files import VOLUME_SUFFIXES, suffix_of

DICOM_ADVICE = ("mmreg reads one file per image: load the series in Slicer (DICOM module) and save the volume as "
                ".nrrd, or convert it with dcm2niix, and give that file")  # fmt: skip
_NIFTI_MAGIC_AT = 344  # NIfTI-1: "n+1\0" or "ni1\0"; NIfTI-2 puts "n+2\0" at 4
_READ = 352


def _nifti(head: bytes) -> bool:
    return head[_NIFTI_MAGIC_AT : _NIFTI_MAGIC_AT + 4] in (b"n+1\0", b"ni1\0") or head[4:8] == b"n+2\0"


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file ("DICM" after its 128-byte preamble)."""
    return content_suffix(path) == ".dcm"


def content_suffix(path: str | os.PathLike) -> str | None:
    """The extension that names what ``path`` holds (``.nrrd``, ``.nii``, ``.nii.gz``, ``.mha``/``.mhd``,
    ``.dcm``, ``.png``, ``.tif``, ``.h5``), or None when its first bytes do not tell."""
    try:
        with open(path, "rb") as file:
            head = file.read(_READ)
    except OSError:
        return None
    if head.startswith(b"NRRD000"):
        return ".nrrd"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as unpacked:
                inner = unpacked.read(_READ)
        except (OSError, EOFError, zlib.error):
            return None
        return ".nii.gz" if _nifti(inner) else None
    if _nifti(head):  # "ni1": a header whose voxels are in a .img beside it
        return ".hdr" if head[_NIFTI_MAGIC_AT : _NIFTI_MAGIC_AT + 4] == b"ni1\0" else ".nii"
    if head.startswith(b"ObjectType") or b"\nElementDataFile" in head:
        return ".mha"
    if head[128:132] == b"DICM":
        return ".dcm"
    if head.startswith(b"\x89PNG"):
        return ".png"
    if head[:4] in (b"II*\0", b"MM\0*"):
        return ".tif"
    if head.startswith(b"\x89HDF"):
        return ".h5"
    return None


def misnamed(path: Path, suffix: str) -> str | None:
    """Advice when ``path`` (named ``suffix``) holds another format: rename it; None when it does not, or when the
    content does not tell."""
    held = content_suffix(path)
    same = ({".mha", ".mhd"}, {".tif", ".tiff"}, {".nrrd", ".nhdr"})  # one format; a header with its data apart
    if held is None or held == suffix or any({held, suffix} <= names for names in same):
        return None
    if held == ".dcm":
        return f"it is a DICOM file: {DICOM_ADVICE}"
    return f"it holds {held} data under a {suffix or 'missing'} name: rename it to end in {held}"


def _sound_but_unread(path: Path, suffix: str) -> str | None:
    """Advice for a sound file ITK does not read as it is named or stored (a helper's sweep: each had been called
    damaged, or told to be saved as NRRD); None otherwise."""
    if suffix in (*VOLUME_SUFFIXES, ".hdr") and not path.name.endswith(suffix):
        return f"ITK knows a {suffix} file only by its lower-case extension: rename it to end in {suffix}"
    if suffix == ".gz":
        try:
            with gzip.open(path, "rb") as unpacked:
                inner = unpacked.read(64)
        except (OSError, EOFError, zlib.error):
            return None
        if inner.startswith((b"NRRD000", b"ObjectType")):
            return f"it is a whole file compressed with gzip: unpack it (gunzip {path.name}) and give the file inside"
    if suffix in (".nrrd", ".nhdr"):
        with open(path, "rb") as file:
            head = file.read(4096).split(b"\n\n", 1)[0].lower()
        if b"\nencoding: bz" in head:
            return ("ITK reads no bzip2-encoded NRRD: save it again with gzip or raw encoding (Slicer's Save, or "
                    "unu save -e gzip)")  # fmt: skip
        if any(f"\ndimension: {n}".encode() in head for n in range(4, 17)):  # time last: ITK reads no such NRRD
            return "it is 4D (a time series or several volumes): save the one 3D volume to register (unu slice)"
    header = nifti_header(path) if suffix in (".nii", ".nii.gz") else None
    if header is not None and header.header_bytes == 540:
        return ("it is NIfTI-2, which ITK 5.4 (and so this extension) does not read: save it as NIfTI-1 "
                "(nibabel's Nifti1Image, or FSL with FSLOUTPUTTYPE=NIFTI_GZ)")  # fmt: skip
    if header is not None and header.bitpix == 1:
        return "it stores 1 bit per voxel (NIfTI's DT_BINARY), which ITK does not read: save it with 8-bit voxels"
    return None


def unreadable_advice(path: Path) -> str:
    """What to do with a file ITK cannot read: rename a file named for another format, convert an unsupported
    format, or replace a damaged file."""
    path = Path(path)
    renamed = misnamed(path, suffix_of(path)) or _sound_but_unread(path, suffix_of(path))
    if renamed is not None:
        return renamed
    if suffix_of(path) in VOLUME_SUFFIXES:
        return "the file is damaged or not what its name says: export it again from the scanner or from Slicer"
    return "save it as NRRD, NIfTI or MHA"


def unreadable_error(path: Path, role: str, error: Exception) -> InputError:
    """The refusal of a file ITK could not read, with ITK's last line and what to do."""
    text = str(error).strip()
    last_line = text.splitlines()[-1] if text else ""
    return InputError(f"{role} file {path} could not be read ({last_line}): {unreadable_advice(path)}")
