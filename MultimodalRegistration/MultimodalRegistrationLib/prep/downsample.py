"""Downsampling with anti-aliasing, from memory or streamed from a file slab by slab.

Method: block-average by whole factors (a box filter, so nothing aliases from the blocks),
a Gaussian on the small image to reach the anti-aliasing width of the target spacing
(sigma = (target - spacing) / 2, like scikit-image's rescale), then linear resampling onto a
grid of exactly the target spacing covering the same physical box.

Memory: only the block sums (the small output) and one chunk of at most ``CHUNK_BYTES`` of
input are held, so a file read slab by slab never needs the whole input in memory. Streaming
works for MetaImage (.mha, .mhd) and NIfTI (.nii, .nii.gz) through ITK, for NRRD (.nrrd, .nhdr,
raw or gzip) through a sequential reader here, and for multi-page TIFF when Pillow is installed.
Other files (and TIFF without Pillow) are read whole: the peak is then the input plus the output.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.file_checks import MIN_VOXELS_PER_AXIS, check_image_data, read_image_file_info
from ..core.file_kind import unreadable_error
from ..core.files import suffix_of
from ..core.images import non_finite_error, read_image, validate_image
from ..core.plausible_spacing import reads_as_no_spacing

CHUNK_BYTES = 64 * 1024**2

NUMPY_TYPES = {
    sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16, sitk.sitkInt16: np.int16,
    sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32, sitk.sitkUInt64: np.uint64, sitk.sitkInt64: np.int64,
    sitk.sitkFloat32: np.float32, sitk.sitkFloat64: np.float64,
}  # fmt: skip


@dataclass
class Header:
    """What a file's header says, read without its voxels."""

    path: Path
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    pixel_id: int
    components: int
    dimension: int

    @property
    def bytes(self) -> int:
        item = np.dtype(NUMPY_TYPES.get(self.pixel_id, np.float64)).itemsize
        return int(np.prod(self.size, dtype=float) * self.components * item)


def read_header(path: str | os.PathLike, role: str = "image", spacing_given: bool = False) -> Header:
    """The header of an image file (size, spacing, ...) without reading its voxels.

    Runs the header checks of ``core.file_checks`` (file exists and is readable, spacing as written,
    direction a rotation); the voxel bytes are checked by whoever reads them. ``spacing_given``: the
    caller replaces the header's spacing, so it is not checked.
    """
    info = read_image_file_info(path, role, spacing_given)
    return Header(info.path, info.size, info.spacing, info.origin, info.direction,
                  info.pixel_id, info.components, info.dimension)  # fmt: skip


def factors_for(spacing, target_mm: float, size=None) -> np.ndarray:
    """Whole block factors per axis (x, y, z) that stay at or below ``target_mm`` (and the axis' size)."""
    factors = np.maximum(1, np.floor(float(target_mm) / np.asarray(spacing, float) + 1e-6)).astype(int)
    return factors if size is None else np.minimum(factors, np.asarray(size[:3], int))


# Under --downsample-to auto, the finer image keeps at least this many voxels along its longest axis.
AUTO_MIN_VOXELS = 24


def check_downsampled_size(size, spacing, target_mm: float, role: str, auto: bool = False) -> None:
    """Refuse a --downsample-to that leaves an image under MIN_VOXELS_PER_AXIS along an axis it shrinks: it had been
    refused as a thumbnail of the input (a helper's prep sweep: --downsample-to 60 on a 196 mm MR). Under ``auto``,
    also one that leaves it under AUTO_MIN_VOXELS along its longest axis: the other image's voxels are then
    likely a spacing stated wrong (a mouse MRI at 0.1 mm had been brought to a 1 mm stack's voxels, 16 across)."""
    factors = factors_for(spacing, target_mm, size)
    # the voxels the resampling onto the target grid keeps (:func:`_finish`), not those the block means keep: 6 slices
    # of 0.55 mm at 1 mm had been refused later as a thumbnail, "give the whole volume" (a helper's prep sweep)
    extent = np.asarray(size[:3], float) * np.asarray(spacing[:3], float)
    kept = np.maximum(1, np.round(extent / np.maximum(float(target_mm), np.asarray(spacing[:3], float)))).astype(int)
    longest = int(np.argmax(np.asarray(size[:3], float) * np.asarray(spacing[:3], float)))
    if auto and factors[longest] > 1 and kept[longest] < AUTO_MIN_VOXELS:
        extent = float(size[longest] * spacing[longest])
        other = "moving" if role == "fixed" else "fixed"
        default = " (1 mm is also what a file that stores none reads as)" if reads_as_no_spacing(target_mm) else ""
        raise InputError(
            f"--downsample-to auto would bring the {role} image ({extent:.3g} mm across) to the {other} image's "
            f"{target_mm:g} mm voxels, {int(kept[longest])} across: too coarse to register. The {other} image's spacing "
            f"is probably wrong{default}: give it with --spacing-{other}; if it "
            f"is right, give --downsample-to a size in mm (at most {extent / AUTO_MIN_VOXELS:.3g} mm here)"
        )
    short = (kept < np.asarray(size[:3], int)) & (kept < MIN_VOXELS_PER_AXIS)
    if short.any():
        largest = float((extent[short] / MIN_VOXELS_PER_AXIS).min())
        raise InputError(
            f"--downsample-to {target_mm:g} mm would leave the {role} image {int(kept[short].min())} voxel(s) across "
            f"({extent[short].min():.3g} mm); a registration needs {MIN_VOXELS_PER_AXIS} or more along every axis: "
            f"give at most {largest:.3g} mm (2-3 mm suits a head, 'auto' matches the two images' voxels)"
        )


def _bin_chunks(chunks: Iterator[tuple[int, np.ndarray]], size, factors, role: str = "image") -> np.ndarray:
    """Block means (z, y, x float32) from (first slice, array[z, y, x]) chunks covering the image in order.

    Trailing voxels that do not fill a block are dropped, as by ``sitk.BinShrink``. A NaN or infinite voxel is
    refused as :func:`..core.images.validate_image` refuses it: averaged, it had reached prep's and register's
    outputs as 3.4e38 with no word (a helper's sweep).
    """
    fx, fy, fz = (int(f) for f in factors)
    nx, ny, nz = (int(s) // int(f) for s, f in zip(size, factors))
    sums = np.zeros((nz, ny, nx), np.float32)
    for first, chunk in chunks:
        if chunk.dtype.kind == "f" and not np.isfinite(chunk).all():
            raise non_finite_error(role)
        depth = chunk.shape[0]
        plane = chunk[:, : ny * fy, : nx * fx].reshape(depth, ny, fy, nx, fx).sum(axis=(2, 4), dtype=np.float32)
        slices = np.arange(first, first + depth) // fz
        keep = slices < nz
        np.add.at(sums, slices[keep], plane[keep])
    return sums / np.float32(fx * fy * fz)


def _finish(sums: np.ndarray, origin, spacing, direction, factors, target_mm: float) -> sitk.Image:
    """Anti-alias the block means and resample them onto the exact target grid."""
    spacing = np.asarray(spacing, float)
    factors = np.asarray(factors, int)
    direction_matrix = np.asarray(direction, float).reshape(3, 3)
    binned = sitk.GetImageFromArray(sums)
    binned.SetSpacing(tuple(spacing * factors))
    binned.SetOrigin(tuple(np.asarray(origin, float) + direction_matrix @ (spacing * (factors - 1) / 2)))
    binned.SetDirection(tuple(direction_matrix.ravel()))
    target = np.maximum(float(target_mm), spacing)
    # Variances add: the box of f voxels already smoothed by (f^2 - 1) s^2 / 12.
    wanted = ((target - spacing) / 2) ** 2
    done = ((factors * spacing) ** 2 - spacing**2) / 12
    extra = np.maximum(wanted - done, 0.0)
    if np.any(extra > 0):
        binned = sitk.DiscreteGaussian(binned, [float(v) for v in extra], 32, 0.01, True)
    extent = np.asarray(sums.shape[::-1], float) * factors * spacing
    reference = sitk.Image([int(n) for n in np.maximum(1, np.round(extent / target))], sitk.sitkFloat32)
    reference.SetSpacing(tuple(target))
    reference.SetOrigin(tuple(np.asarray(origin, float) + direction_matrix @ ((target - spacing) / 2)))
    reference.SetDirection(tuple(direction_matrix.ravel()))
    return sitk.Resample(binned, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32, True)


def array_chunks(array: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first slice, array[z, y, x]) views of at most ``CHUNK_BYTES`` each, in order."""
    depth = max(1, CHUNK_BYTES // max(1, array[0].nbytes))
    for first in range(0, array.shape[0], depth):
        yield first, array[first : first + depth]


def downsample(image: sitk.Image, target_mm: float, role: str = "image") -> sitk.Image:
    """``image`` at ``target_mm`` voxels (float32, same physical box), anti-aliased; axes already coarser stay.

    Works through the voxels without copying them, so the extra memory is about the output's size.
    """
    factors = factors_for(image.GetSpacing(), target_mm, image.GetSize())
    if np.all(np.asarray(image.GetSpacing()) >= target_mm - 1e-9):
        return sitk.Cast(image, sitk.sitkFloat32)
    sums = _bin_chunks(array_chunks(sitk.GetArrayViewFromImage(image)), image.GetSize(), factors, role)
    return _finish(sums, image.GetOrigin(), image.GetSpacing(), image.GetDirection(), factors, target_mm)


# --------------------------------------------------------------------------- streamed reading
def _itk_chunks(header: Header) -> Iterator[tuple[int, np.ndarray]]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(header.path))
    nx, ny, nz = header.size
    depth = max(1, CHUNK_BYTES // max(1, header.bytes // nz))
    for first in range(0, nz, depth):
        count = min(depth, nz - first)
        reader.SetExtractIndex([0, 0, first])
        reader.SetExtractSize([nx, ny, count])
        yield first, sitk.GetArrayFromImage(reader.Execute())


def _nrrd_layout(path: Path) -> dict | None:
    """Where a NRRD file's voxels are and how they are encoded; None if this reader cannot stream it."""
    fields, data_offset = {}, None
    with open(path, "rb") as handle:
        if not handle.readline().startswith(b"NRRD"):
            return None
        while True:
            line = handle.readline()
            if not line or line in (b"\n", b"\r\n"):
                data_offset = handle.tell()
                break
            text = line.decode("latin-1").strip()
            if text.startswith("#") or ":" not in text:
                continue
            key, _, value = text.partition(":")
            fields[key.strip().lower()] = value.lstrip("=").strip()
    encoding = fields.get("encoding", "raw").lower()
    if encoding not in ("raw", "gzip", "gz") or int(fields.get("line skip", 0)) != 0:
        return None
    skip = int(fields.get("byte skip", 0))
    if skip < 0:
        return None
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if data_file.upper().startswith("LIST") or " " in data_file.strip():
            return None
        data_path, offset = (path.parent / data_file), 0
    else:
        data_path, offset = path, data_offset
    return {"data": data_path, "offset": offset, "skip": skip, "gzip": encoding != "raw",
            "big_endian": fields.get("endian", "little").lower() == "big"}  # fmt: skip


def _nrrd_chunks(header: Header, layout: dict) -> Iterator[tuple[int, np.ndarray]]:
    nx, ny, nz = header.size
    dtype = np.dtype(NUMPY_TYPES[header.pixel_id]).newbyteorder(">" if layout["big_endian"] else "<")
    slice_bytes = nx * ny * dtype.itemsize
    depth = max(1, CHUNK_BYTES // slice_bytes)
    with open(layout["data"], "rb") as raw:
        raw.seek(layout["offset"])
        stream = gzip.GzipFile(fileobj=raw) if layout["gzip"] else raw
        stream.read(layout["skip"])
        for first in range(0, nz, depth):
            count = min(depth, nz - first)
            buffer = stream.read(count * slice_bytes)
            if len(buffer) != count * slice_bytes:
                missing = first + len(buffer) // slice_bytes
                raise InputError(f"{header.path} ends early (slice {missing} of {nz}): the file is truncated")
            yield first, np.frombuffer(buffer, dtype).reshape(count, ny, nx)


def _tiff_chunks(header: Header, image_module) -> Iterator[tuple[int, np.ndarray]]:
    with image_module.open(header.path) as pages:
        for index in range(header.size[2]):
            pages.seek(index)
            page = np.asarray(pages)
            if page.shape != (header.size[1], header.size[0]):
                raise InputError(f"{header.path}: page {index} is {page.shape}, not a stack of equal slices")
            yield index, page[None]


def streaming_reader(header: Header) -> tuple[Callable[[], Iterator[tuple[int, np.ndarray]]] | None, str]:
    """A function yielding the file's voxels in chunks of slices, and how; (None, why) if it cannot stream."""
    suffix = suffix_of(header.path)
    if header.dimension != 3 or header.components != 1 or header.pixel_id not in NUMPY_TYPES:
        return None, "not a 3D scalar image"
    if suffix in (".mha", ".mhd", ".nii", ".nii.gz"):
        return (lambda: _itk_chunks(header)), "streamed by ITK (MetaImage/NIfTI)"
    if suffix in (".nrrd", ".nhdr"):
        layout = _nrrd_layout(header.path)
        if layout is None:
            return None, "NRRD with an encoding or layout this reader cannot stream"
        return (lambda: _nrrd_chunks(header, layout)), "streamed NRRD (" + ("gzip" if layout["gzip"] else "raw") + ")"
    if suffix in (".tif", ".tiff"):
        try:
            from PIL import Image as image_module
        except ImportError:
            return None, "TIFF without Pillow installed (pip install pillow to stream it)"
        return (lambda: _tiff_chunks(header, image_module)), "streamed TIFF pages (Pillow)"
    return None, f"ITK reads {header.path.suffix or 'this'} files whole"


Chunks = Iterator[tuple[int, np.ndarray]]


def sampled_chunks(chunks: Chunks, stride: int, into: list) -> Chunks:
    """The chunks, passed on unchanged, with every ``stride``-th voxel of the whole image (in file order,
    the sample ``masks.voxel_sample`` takes of it in memory) appended to ``into``."""
    for first, chunk in chunks:
        start = first * chunk.shape[1] * chunk.shape[2]
        into.append(np.array(chunk.ravel()[(-start) % stride :: stride]))
        yield first, chunk


def read_downsampled(
    path: str | os.PathLike,
    target_mm: float,
    spacing_mm=None,
    role: str = "image",
    sample: list | None = None,
    sample_stride: Callable[[int], int] | None = None,
) -> tuple[sitk.Image, dict]:
    """Read an image file straight into ``target_mm`` voxels, streaming when the format allows.

    ``spacing_mm`` replaces the header's spacing first (the file stores none or a wrong one).
    Returns the downsampled float32 image and a record of how it was read. With ``sample`` (a list), every
    ``sample_stride(voxels)``-th full-resolution voxel is appended to it on the way (arrays), for what must be
    judged on the whole image (is it CT, its HU offset), not on the averaged copy.
    """
    given = spacing_mm is not None
    header = read_header(path, role, given)
    if header.dimension != 3 or header.components != 1:
        validate_image(read_image(path, role, given), role)  # raises the 4D / vector / 2D message with its fix
    spacing = tuple(float(s) for s in (spacing_mm if spacing_mm is not None else header.spacing))
    factors = factors_for(spacing, target_mm, header.size)
    chunks, how = streaming_reader(header)
    record = {"source": str(path), "input_bytes": header.bytes, "factors": factors.tolist(), "read": how}
    stride = sample_stride(int(np.prod(header.size, dtype=float))) if sample_stride is not None else 1
    if np.all(np.asarray(spacing) >= target_mm - 1e-9) or chunks is None:
        image = read_image(path, role, given)
        if spacing_mm is not None:
            image.SetSpacing(spacing)
        if sample is not None:
            sample.append(np.array(sitk.GetArrayViewFromImage(image).ravel()[::stride]))
        record["read"] = "whole file" + ("" if chunks is None else " (no downsampling needed)") + f": {how}"
        return downsample(image, target_mm, role), record
    # A file shorter than its header says would stream zeros (NIfTI) or fail inside ITK with a stray
    # "No such file or directory" (MetaImage): count its bytes before the first slab.
    check_image_data(path, role)
    try:
        stream = chunks() if sample is None else sampled_chunks(chunks(), stride, sample)
        sums = _bin_chunks(stream, header.size, factors, role)
    except RuntimeError as error:  # ITK failing part-way through a file that passed the checks
        raise unreadable_error(Path(path), role, error) from None
    return _finish(sums, header.origin, spacing, header.direction, factors, target_mm), record
