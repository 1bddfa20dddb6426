"""Checks of an image file before its voxels are trusted or any engine starts (issue 14).

``check_image_file(path, role)`` is the one entry point for a file: it exists, its spacing as written
is a positive number, its direction is a rotation, it holds the voxel bytes its header promises
(a compressed file read to its end where ITK would zero-fill it), and it returns what the header
says (:class:`ImageFileInfo`). ``check_images_fit_in_memory`` then refuses a registration this
machine cannot hold, from the headers alone. Every refusal is an :class:`InputError` that names the
file, the problem and the fix. Units: bytes, mm, LPS.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import memory
from .errors import InputError
from .file_bytes import check_compressed_data_complete, check_voxel_bytes
from .file_headers import (
    check_not_empty,
    check_origin_as_written,
    check_spacing_as_written,
    file_suffix,
    header_spacing,  # noqa: F401 (re-exported: part of this module's API)
    spacing_error,
)
from .file_kind import DICOM_ADVICE, is_dicom, unreadable_error
from .memory import HEADROOM_BYTES, GuidanceLoad, check_memory, estimate_run_bytes, item_bytes
from .name_lengths import check_name_lengths, check_windows_names
from .nifti_sform import check_sform
from .segment_header import check_not_a_segmentation, header_segments, named_prefix
from .tiff_stack import check_tiff_stack

LINEAR_SUFFIXES = (".tfm", ".txt", ".mat")
TRANSFORM_SUFFIXES = (".h5", ".hdf5") + LINEAR_SUFFIXES
# Largest deviation of a direction matrix from a rotation (column length 1, columns at 90°) accepted.
DIRECTION_TOLERANCE = 1e-3
# The fewest voxels along an axis that a registration can use (the engines' pyramids halve it twice).
MIN_VOXELS_PER_AXIS = 4
# The finest plausible voxel (mm): 0.1 µm, beyond light microscopy; a finer one is a spacing in the wrong units.
MIN_SPACING_MM = 1e-4
# A deformable preset's finest-level shrink factor for the fixed image's finest spacing (mm); None: no such level.
ShrinkAt = Callable[[float], int | None]
# Voxel sizes (mm) offered when an image is too large for this machine.
DOWNSAMPLE_CHOICES_MM = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)

_NAMES = ("UInt8", "Int8", "UInt16", "Int16", "UInt32", "Int32", "UInt64", "Int64", "Float32", "Float64")


def _pixel_type(sitk, pixel_id: int) -> str:
    """One component of a SimpleITK pixel ID, named like numpy ("uint16"); "float64" if unknown."""
    for name in _NAMES:
        if pixel_id in (getattr(sitk, "sitk" + name), getattr(sitk, "sitkVector" + name)):
            return name.lower()
    return {sitk.sitkComplexFloat32: "complex64", sitk.sitkComplexFloat64: "complex128"}.get(pixel_id, "float64")


@dataclass(frozen=True)
class ImageFileInfo:
    """What an image file's header says, read without its voxels (through ITK, so in LPS)."""

    path: Path
    role: str  # "fixed image", "moving mask", ...: how messages name the file
    size: tuple[int, ...]  # voxels per axis (x, y, z[, t])
    spacing: tuple[float, ...]  # mm
    origin: tuple[float, ...]  # LPS mm
    direction: tuple[float, ...]  # row-major direction cosines, LPS
    pixel_type: str  # one component as ITK will hold it, named like numpy: "uint16", "float32"
    components: int  # per voxel: 1 for a scalar image, 3 for RGB
    pixel_id: int  # SimpleITK pixel ID
    segment_names: tuple[str, ...] = ()  # a Slicer .seg.nrrd header's segment names (SegmentN_Name), if any

    @property
    def dimension(self) -> int:
        return len(self.size)

    @property
    def voxels(self) -> int:
        return math.prod(int(n) for n in self.size)

    @property
    def bytes_in_memory(self) -> int:
        """Bytes the whole image takes once read by ITK."""
        return self.voxels * self.components * item_bytes(self.pixel_type)

    def describe(self) -> str:
        """'4000×4000×4000 uint16' (with '× 3 components' for a vector image)."""
        parts = "×".join(str(n) for n in self.size) + f" {self.pixel_type}"
        return parts + (f" × {self.components} components" if self.components != 1 else "")


def direction_problem(direction: Sequence[float]) -> str | None:
    """Why a direction matrix (row-major, as ITK stores it) is not a rotation or reflection; None if it is one."""
    values = np.asarray(direction, float)
    matrix = values.reshape(round(math.sqrt(values.size)), -1)
    if not np.all(np.isfinite(matrix)):
        return "it holds values that are not numbers"
    lengths = np.linalg.norm(matrix, axis=0)
    if np.any(np.abs(lengths - 1) > DIRECTION_TOLERANCE):
        return "its columns have lengths " + ", ".join(f"{v:.4g}" for v in lengths) + " instead of 1"
    cosines = np.abs(np.triu(matrix.T @ matrix, 1))
    if cosines.max(initial=0.0) > DIRECTION_TOLERANCE:
        i, j = np.unravel_index(int(np.argmax(cosines)), cosines.shape)
        angle = math.degrees(math.acos(min(1.0, float(np.dot(matrix[:, i], matrix[:, j])))))
        return f"its axes {i} and {j} are {angle:.2f}° apart instead of 90° (a sheared grid)"
    return None


def direction_error(subject: str, problem: str) -> InputError:
    """The refusal of a direction that is not a rotation; ``subject`` is 'fixed image' or 'fixed image file X'."""
    return InputError(
        f"{subject} has a direction matrix that is not a rotation: {problem}: Slicer and ITK assume orthonormal "
        "axes; reset the orientation in the header (or export the image again from the scanner or from Slicer)"
    )


def complex_error(subject: str) -> InputError:
    """The refusal of complex voxels (raw MR or Fourier data): no metric compares them."""
    return InputError(
        f"{subject} holds complex voxels (raw MR or k-space data): save the magnitude image "
        "(e.g. sitk.ComplexToModulus, or the scanner's magnitude series) and register that"
    )


def read_image_file_info(path: str | os.PathLike, role: str = "image", spacing_given: bool = False) -> ImageFileInfo:
    """The header checks, reading no voxel: the file exists, spacing and direction are sane; returns the header.

    ``spacing_given``: the caller replaces the header's spacing (``--spacing-fixed``), so it is not checked.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{role} file not found: {path}: check the path")
    if path.is_dir():
        if any(is_dicom(entry) for entry in sorted(path.iterdir())[:20] if entry.is_file()):
            raise InputError(f"{role} {path} is a folder of DICOM files: {DICOM_ADVICE}")
        raise InputError(f"{role} {path} is a folder, not an image file: give the image file (NRRD, NIfTI or MHA)")
    if not path.is_file():  # a pipe would block the reader with no word, a device be read forever
        raise InputError(f"{role} {path} is not a regular file (a pipe, socket or device): save the image to a file "
                         "and give that")  # fmt: skip
    if not os.access(path, os.R_OK):
        raise InputError(f"{role} file {path} cannot be opened (permission denied): check the file's permissions")
    check_not_empty(path, f"{role} file", "save or copy the image again (a save or download that was cut off "
                    "leaves an empty file)")  # fmt: skip
    if not spacing_given:
        check_spacing_as_written(path, role)
    check_origin_as_written(path, role)
    import SimpleITK as sitk  # here: the parent process of a worker imports this module without ITK

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        if "orthonormal" in str(error):
            raise direction_error(f"{role} file {path}", "its axes are not at right angles") from None
        check_image_data(path, role)  # a file cut inside its header: say so rather than 'damaged'
        raise unreadable_error(path, role, error) from None
    if (reader.GetDimension() == 2 or reader.GetSize()[2] == 1) and is_dicom(path):  # one slice of a series
        raise InputError(f"{role} file {path} is one DICOM slice: {DICOM_ADVICE}")
    for axis, value in enumerate(reader.GetSpacing()):
        if not spacing_given and (not math.isfinite(value) or value <= 0):
            raise spacing_error(path, role, axis, value)
    problem = direction_problem(reader.GetDirection())
    if problem:
        raise direction_error(f"{role} file {path}", problem)
    if not spacing_given:
        check_tiff_stack(path, role, reader.GetSize())
    # Against the file's own spacing: a spacing given later does not settle which of its two geometries is true.
    check_sform(path, role, reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    if reader.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise complex_error(f"{role} file {path}")
    segment_names = _segment_names(reader)
    check_not_a_segmentation(path, role, segment_names)
    return ImageFileInfo(path, role, tuple(reader.GetSize()), tuple(reader.GetSpacing()), tuple(reader.GetOrigin()),
                         tuple(reader.GetDirection()), _pixel_type(sitk, reader.GetPixelID()),
                         int(reader.GetNumberOfComponents()), int(reader.GetPixelID()), segment_names)  # fmt: skip


def _segment_names(reader) -> tuple[str, ...]:
    """The segment names a Slicer .seg.nrrd header lists (``SegmentN_Name``, every layer), in order; () if none."""
    return tuple(segment.name for segment in named_prefix(header_segments(reader)))


def check_image_data(path: str | os.PathLike, role: str = "image") -> None:
    """The voxel checks: as many bytes as the header promises, compressed data complete (see ``file_bytes``)."""
    path = Path(path)
    try:
        layout = check_voxel_bytes(path, role)
    except OSError:
        layout = None  # unreadable data: ITK's reader says what is wrong
    if layout is None:
        check_compressed_data_complete(path, role)


def check_image_file(path: str | os.PathLike, role: str = "image", spacing_given: bool = False) -> ImageFileInfo:
    """Every check of one image file before its voxels are trusted; returns what its header says.

    Raises :class:`InputError` (problem: fix, naming the file) for a missing or unreadable file, a
    spacing that is NaN, zero or negative as written, a direction that is not a rotation, a file (or
    its detached data file) shorter than its header says, or compressed data that ends early. Reads
    only the header, except for compressed files that must be decompressed to be checked.
    ``spacing_given``: the caller replaces the header's spacing, so it is not checked.
    """
    info = read_image_file_info(path, role, spacing_given)
    check_image_data(path, role)
    return info


def _downsampled(info: ImageFileInfo, voxel_mm: float) -> tuple[tuple[int, ...], str]:
    """Size and pixel type of ``info`` read with ``mmreg prep --downsample-to voxel_mm`` (float32, same box)."""
    if min(info.spacing[:3]) >= voxel_mm:
        return info.size, info.pixel_type
    size = [max(1, round(n * min(s / voxel_mm, 1.0))) for n, s in zip(info.size[:3], info.spacing[:3])]
    return tuple(size) + tuple(info.size[3:]), "float32"


def downsampled(info: ImageFileInfo, voxel_mm: float) -> ImageFileInfo:
    """What ``info`` becomes read with ``--downsample-to voxel_mm`` (mm): its size, spacing and pixel type."""
    size, pixel_type = _downsampled(info, voxel_mm)
    spacing = tuple(max(s, voxel_mm) for s in info.spacing[:3]) + tuple(info.spacing[3:])
    return replace(info, size=size, spacing=spacing, pixel_type=pixel_type)


def field_shrink(images: Sequence[ImageFileInfo], shrink_at: ShrinkAt | None) -> int:
    """The shrink factor that takes the fixed image (the first of ``images``) to a deformable stage's finest level:
    ``shrink_at`` of its finest spacing (mm), the preset's own rule; 1 (full resolution, the most memory) without."""
    if shrink_at is None or not images:
        return 1
    return shrink_at(min(images[0].spacing[:3])) or 1


def suggest_voxel_mm(
    images: Sequence[ImageFileInfo], masks: Sequence[ImageFileInfo] = (), deformable: bool = False,
    guidance: GuidanceLoad | None = None, engine: str = "", shrink_at: ShrinkAt | None = None,
) -> float | None:  # fmt: skip
    """The finest ``--downsample-to`` (mm) with which a registration of these images fits in free memory."""
    free = memory.available_bytes()
    if free is None:
        return None
    for voxel_mm in DOWNSAMPLE_CHOICES_MM:
        smaller = [downsampled(i, voxel_mm) for i in images]
        needed = estimate_run_bytes([(i.size, i.pixel_type) for i in smaller],
                                    [(_downsampled(m, voxel_mm)[0], "uint8") for m in masks], deformable,
                                    guidance, engine, field_shrink(smaller, shrink_at))  # fmt: skip
        if needed <= free - HEADROOM_BYTES:
            return voxel_mm
    return None


def _memory_fix(images: Sequence[ImageFileInfo], masks: Sequence[ImageFileInfo], subject: str,
                deformable: bool = False, guidance: GuidanceLoad | None = None, engine: str = "",
                command: str = "mmreg prep ", shrink_at: ShrinkAt | None = None) -> str:  # fmt: skip
    voxel_mm = suggest_voxel_mm(images, masks, deformable, guidance, engine, shrink_at)
    if voxel_mm is None:
        return f"crop {subject} to the region that matters first ({command}--roi), or use a machine with more memory"
    return f"crop or downsample {subject} first ({command}--downsample-to {voxel_mm:g} reads a file slab by slab)"


def check_image_fits_in_memory(info: ImageFileInfo) -> None:
    """Refuse, from the header alone, reading a whole image that this machine's free memory cannot hold."""
    check_memory(info.bytes_in_memory, info.role, _memory_fix([info], (), "it"), info.describe())


def check_images_fit_in_memory(
    images: Sequence[ImageFileInfo],
    what: str = "the registration",
    masks: Sequence[ImageFileInfo] = (),
    deformable: bool = False,
    guidance: GuidanceLoad | None = None,
    engine: str = "",
    command: str = "mmreg prep ",
    shrink_at: ShrinkAt | None = None,
) -> None:
    """Refuse, from the headers alone, a registration of ``images`` (fixed, moving) with ``masks`` that
    needs more memory than this machine has free (``core.memory.estimate_run_bytes``; ``deformable``
    for a deformable preset, ``shrink_at`` its finest level's shrink factor for a fixed voxel size (mm) if known,
    ``engine``, and ``guidance`` for a guided run),
    suggesting a ``--downsample-to`` voxel size that fits (``command``: what the suggestion's options belong to,
    "" for this command's own)."""
    sizes = [(i.size, i.pixel_type) for i in images]
    needed = estimate_run_bytes(sizes, [(m.size, m.pixel_type) for m in masks], deformable, guidance, engine,
                                field_shrink(images, shrink_at))  # fmt: skip
    detail = ", ".join(f"{i.role} {i.describe()}" for i in images)
    if guidance is not None and guidance.pairs:
        detail += f", {guidance.pairs} segment pair{'s' if guidance.pairs > 1 else ''} guiding"
    fix = _memory_fix(images, masks, "the images", deformable, guidance, engine, command, shrink_at)
    check_memory(needed, what, fix, detail)


def check_read_fits_in_memory(images: Sequence[ImageFileInfo], beside_bytes: int = 0, what: str = "reading the images",
                              command: str = "") -> None:  # fmt: skip
    """Refuse reading ``images`` whole, with ``beside_bytes`` (bytes) held beside them, when free memory cannot hold
    them: a lower bound of a run whose size is known only once they are read (a crop). Suggests the finest
    ``--downsample-to`` (mm) whose copies fit (``command``: as for :func:`check_images_fit_in_memory`)."""
    needed = sum(i.bytes_in_memory for i in images) + beside_bytes
    free = memory.available_bytes()
    if free is None or needed <= free - HEADROOM_BYTES:
        return
    fits = [
        mm
        for mm in DOWNSAMPLE_CHOICES_MM
        if sum(downsampled(i, mm).bytes_in_memory for i in images) + beside_bytes <= free - HEADROOM_BYTES
    ]
    fix = (f"read them downsampled ({command}--downsample-to {fits[0]:g} reads a file slab by slab)" if fits
           else "use a machine with more memory")  # fmt: skip
    check_memory(needed, what, fix, ", ".join(f"{i.role} {i.describe()}" for i in images))


def grid_refusal(role: str, size: Sequence[int], spacing: Sequence[float]) -> InputError | None:
    """Why an image grid cannot be registered (too few voxels along an axis, a spacing too fine to be mm), as
    the refusal naming the fix; None when it can. Sizes in voxels, spacing in mm, first three axes."""
    for axis, (count, step) in enumerate(zip(size[:3], spacing[:3])):
        if count < MIN_VOXELS_PER_AXIS:
            return InputError(
                f"{role} is only {count} voxel{'s' if count != 1 else ''} along axis {axis} "
                f"({'×'.join(str(n) for n in size)}): a registration needs at least {MIN_VOXELS_PER_AXIS} along each "
                "axis; give the whole volume (a single slice or a thumbnail cannot be registered in 3D)"
            )
        if 0 < step < MIN_SPACING_MM:
            return InputError(
                f"{role} has spacing {step:g} mm along axis {axis}, finer than {MIN_SPACING_MM * 1000:g} µm: the spacing is "
                "in the wrong units; set the true spacing in mm (mmreg prep --spacing-fixed/--spacing-moving)"
            )
    return None


def check_output_folder(output_dir: str | os.PathLike, option: str = "--output-dir") -> None:
    """Refuse an output folder that is a file, or lies under one."""
    folder = Path(output_dir)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{option} {output_dir}: {folder} is a file, not a folder: choose another {option}")


# Windows' 260-character limit (MAX_PATH, unless long paths are enabled, which ITK's file writers do not use), less
# what writing adds: a file is staged in a partial folder (.partial-<pid>.<place>-xxxxxxxx\, about 35 characters)
# that may hold another (an image written atomically inside a set of outputs), and a folder may have at most 247;
# less 16 for the longest name a command writes beside the one checked (prep checks prep.json and writes
# moving_mask.nrrd). A helper's imitation of MAX_PATH: at 259 - 36 a prep ran to 100% and then failed.
STAGED_CHARS = 35  # what one staging folder adds to a path: \.partial-<pid>.<place>-xxxxxxxx
WINDOWS_PATH_ROOM = 259 - 2 * STAGED_CHARS - 16
_WINDOWS = os.name == "nt"


def check_windows_path_room(path: Path, role: str, room: int = WINDOWS_PATH_ROOM) -> None:
    """On Windows, refuse a path longer than ``room`` characters, the room MAX_PATH leaves it while it is written."""
    if _WINDOWS and len(str(path.resolve())) > room:
        raise InputError(
            f"cannot write the {role} to {path}: its path is {len(str(path.resolve()))} characters, too long for "
            f"Windows while it is written (at most {room} here): choose a shorter folder or name"
        )


def check_output_path(path: str | os.PathLike, role: str, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output whose extension cannot be written or whose folder cannot be made.

    Nothing is left behind: a file is made and removed in the nearest existing folder, because
    permission bits do not tell (root writes into read-only folders, nobody into /proc).
    """
    path = Path(path)
    check_name_lengths(path, role)  # first: is_dir() itself raises on a name the file system cannot hold
    check_windows_names(path, role)
    if path.is_dir():
        raise InputError(
            f"cannot write the {role} to {path}: it is an existing folder; give a file name inside it "
            f"(e.g. {path / ('result' + (suffixes[0] if suffixes else ''))})"
        )
    if suffixes and file_suffix(path) not in suffixes:
        raise InputError(f"cannot write the {role} to '{path.name}': use one of {', '.join(suffixes)}")
    written = path.name[len(path.name) - len(file_suffix(path)):]
    if suffixes and written != written.lower():  # ITK's writers read it as written: R.MHA had become R.mhd + R.zraw,
        # and R.NII.GZ failed after the registration ("this is a bug"; a helper's sweep)
        lower = path.name[: len(path.name) - len(written)] + written.lower()
        raise InputError(f"cannot write the {role} to '{path.name}': write its extension in lower case ('{lower}')")
    check_windows_path_room(path, role)
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write the {role} {path}: {folder} is a file, not a folder: choose another path")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        raise InputError(f"cannot write the {role} {path}: {folder} is not writable: choose another folder") from None
