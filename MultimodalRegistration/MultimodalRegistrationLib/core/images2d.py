"""2D images (histology, microscopy, photographs, one MR slice): reading, one channel, pixel size.

Formats: PNG, TIFF, JPEG, BMP (read by ITK; Pillow for a PNG's pHYs resolution, and for the pixels of a raster
file ITK cannot read or misreads, such as a grey + alpha PNG or a turned JPEG: :mod:`.pillow_raster`), and 2D
NRRD, NIfTI and MetaImage (a 3D file with one slice
counts as 2D).

* **One channel:** an RGB(A) image becomes its luminance with the ITU-R BT.601 weights,
  ``Y = 0.299 R + 0.587 G + 0.114 B`` (alpha dropped), as float32. A scalar image is cast to float32.
* **Pixel size (mm):** a size given by the caller wins. Otherwise the file's: NRRD, NIfTI and MetaImage
  headers are trusted; for raster formats ITK reads TIFF and JPEG resolution tags and Pillow reads a PNG's
  pHYs chunk, and 1.0 (ITK's default when the file says nothing) or 72/96 dpi (screen defaults written by
  most editors) count as unknown: :func:`pixel_size_mm` returns None and the caller asks for one.
* **Geometry:** the returned image has origin (0, 0), identity direction and square pixels, so pixel
  (column i, row j) has its centre at ``(i * px, j * px)`` mm (the pixel frame); its pixels are laid out as
  Slicer shows the slice (:mod:`.picture`), and the origin and direction that place them as the file placed its
  own are kept beside it (:meth:`Image2D.frame_to_file`) for the outputs a user loads with the files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .files import RASTER_SUFFIXES, VOLUME_SUFFIXES, suffix_of
from .picture import picture_axes
from .pillow_raster import as_shown, pillow_dpi, pillow_header, pillow_reads, read_with_pillow, shown_kind
from .tiff_description import described_pixel_mm

IMAGE_2D_SUFFIXES = RASTER_SUFFIXES + VOLUME_SUFFIXES
BT601 = (0.299, 0.587, 0.114)  # luminance weights of R, G, B (ITU-R BT.601)
_SCREEN_DPI = (72.0, 96.0)


@dataclass
class Image2D:
    """A 2D image read from ``path``: ``image`` keeps the file's pixels (RGB stays RGB) with the pixel size set."""

    path: Path
    image: sitk.Image
    pixel_mm: float
    pixel_source: str  # "given", "file"
    # The file's own origin (LPS mm, 3 values) and direction (3x3, row-major), a 2D file's with z added (0, and
    # z kept): ``image`` is set to the pixel frame.
    origin: tuple = (0.0, 0.0, 0.0)
    direction: tuple = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    thickness_mm: float | None = None  # a one-slice volume file's spacing along its normal; None for a 2D file
    # How the stored pixels were laid out as the picture (:func:`laid_out`): its masks are laid out the same way.
    layout: tuple = (0, False, False)
    stated_mm: float | None = None  # the pixel size the file states, when another was given

    def frame_to_lps(self) -> np.ndarray:
        """4x4: the pixel frame ``(i px, j px, d)`` (mm; ``d`` along the slice's normal) -> the file's own LPS mm,
        ``p = origin + direction x``, as ITK and Slicer place the file (a PNG, TIFF or JPEG: the identity)."""
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(self.direction, float).reshape(3, 3)
        matrix[:3, 3] = self.origin
        return matrix

    @property
    def is_axial(self) -> bool:
        """Whether the slice lies in an LPS z plane with its rows and columns in it (every 2D file does)."""
        direction = np.asarray(self.direction, float).reshape(3, 3)
        return bool(np.allclose(direction[2, :2], 0.0) and np.allclose(direction[:2, 2], 0.0))

    def frame_to_file(self) -> np.ndarray:
        """3x3: the pixel frame ``(i px, j px)`` (mm) -> the file's own LPS (x, y) mm for an axial slice; the
        identity (the pixel frame itself) for a slice in another plane, which only :meth:`frame_to_lps` places."""
        if not self.is_axial:
            return np.eye(3)
        frame = self.frame_to_lps()
        matrix = np.eye(3)
        matrix[:2, :2], matrix[:2, 2] = frame[:2, :2], frame[:2, 3]
        return matrix

    @property
    def gray(self) -> sitk.Image:
        """The one-channel float32 image (BT.601 luminance for RGB)."""
        return to_gray(self.image)


def working_bin(pixel_mm: float, other_pixel_mm: float) -> int:
    """Whole pixels per side an image is averaged in before a 2D registration: down to about half the other image's
    pixel size when its own are finer than that, else 1 (see :func:`..registration.two_d.working_resolution`)."""
    factor = int(0.5 * other_pixel_mm / pixel_mm)
    return factor if factor >= 2 else 1


def to_gray(image: sitk.Image) -> sitk.Image:
    """One float32 channel: BT.601 luminance of an RGB(A) image, the values of a scalar one. Geometry kept."""
    components = image.GetNumberOfComponentsPerPixel()
    if components == 1:
        return sitk.Cast(image, sitk.sitkFloat32)
    array = sitk.GetArrayViewFromImage(image)
    if components < 3:  # grey + alpha
        gray = array[..., 0].astype(np.float32)
    else:
        gray = array[..., :3].astype(np.float32) @ np.asarray(BT601, np.float32)
    result = sitk.GetImageFromArray(gray)
    result.CopyInformation(image)
    return result


@dataclass(frozen=True)
class Header2D:
    """What a 2D file's header says, read without its pixels: ``size`` (every axis, columns first),
    ``components`` per pixel (3 for RGB), and the pixel size (mm) it states (None: none, see the module notes)."""

    path: Path
    size: tuple
    components: int
    stated_mm: float | None
    square: bool = True  # the header's first two pixel sizes agree
    component_type: str | None = None  # as ITK names it ("8-bit unsigned integer")


def read_header_2d(path: str | os.PathLike) -> Header2D | None:
    """:class:`Header2D` of ``path`` from ITK's header reader, or Pillow's for a raster file ITK refuses (a grey +
    alpha PNG); None when neither can read it."""
    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        if pillow_reads(path):
            raise RuntimeError("read by Pillow")
        reader.ReadImageInformation()
        size, components, spacing = reader.GetSize(), reader.GetNumberOfComponents(), reader.GetSpacing()
        kind = shown_kind(path, sitk.GetPixelIDValueAsString(reader.GetPixelID()).removeprefix("vector of "))
    except (RuntimeError, InputError):  # refused later, when its pixels are read
        opened = pillow_header(path)
        if opened is None:
            return None
        size, components, spacing, kind = opened
    stated = stated_pixel_sizes(path, spacing)
    column, row = stated or (*spacing[:2], *spacing[:1])[:2]
    return Header2D(path, tuple(size), int(components), stated[0] if stated else None,
                    bool(np.isclose(column, row, rtol=1e-4)), kind)  # fmt: skip


def pixel_size_mm(path: str | os.PathLike, image: sitk.Image) -> float | None:
    """The pixel size (mm) the file states, or None when it states none (see the module notes)."""
    stated = stated_pixel_sizes(path, image.GetSpacing())
    return stated[0] if stated else None


def stated_pixel_sizes(path: str | os.PathLike, spacing) -> tuple[float, float] | None:
    """The pixel sizes (mm: columns, rows) the file states, or None when it states none (see the module notes);
    ``spacing``: what ITK read from its header. A TIFF description's or a PNG's pHYs rows had been read as square
    as its columns (a helper's sweep: 0.625 x 1.25 mm pixels registered 27 mm off, exit 0)."""
    path = Path(path)
    suffix = suffix_of(path)
    column, row = (float(spacing[0]), float(spacing[1] if len(spacing) > 1 else spacing[0]))
    if suffix in VOLUME_SUFFIXES:
        return (column, row) if all(math.isfinite(v) and v > 0 for v in (column, row)) else None
    if suffix in (".png", ".bmp") and (dpi := pillow_dpi(path)) is not None:  # ITK reads neither pHYs nor a BMP's
        column, row = 25.4 / dpi[0], 25.4 / dpi[1]  # else ITK's sCAL reading (SimpleITK and Slicer write it)
    if suffix in (".tif", ".tiff") and (described := described_pixel_mm(path)) is not None:
        return described
    # ITK writes 1 mm as 25.4 dpi, a rounded fraction: it reads back as 1.000000015.
    if not all(math.isfinite(v) and v > 0 for v in (column, row)) or abs(column - 1.0) < 1e-6:
        return None
    if any(abs(column * dpi / 25.4 - 1) < 1e-3 for dpi in _SCREEN_DPI):  # PNG stores dots per metre: 72 reads 71.98
        return None
    return column, row


def check_pixel_size(pixel_mm: float | None, what: str = "--pixel-size") -> float:
    """``pixel_mm`` as a float if it is a plausible pixel size (0 < px <= 50 mm), else an InputError."""
    try:
        value = float(pixel_mm)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{what} {pixel_mm!r} is not a number: give the pixel size in mm, e.g. 0.5") from None
    if not (math.isfinite(value) and 0 < value <= 50):
        raise InputError(f"{what} {pixel_mm} mm is not a pixel size: give a positive size in mm, e.g. 0.5")
    return value


def read_image_2d(
    path: str | os.PathLike, pixel_mm: float | None = None, role: str = "section", option: str = "--pixel-size",
    layout: tuple | None = None,
) -> Image2D:
    """Read a 2D image (see the module notes). ``pixel_mm`` overrides the file's pixel size; without it a
    file that states none is refused (InputError naming the fix, the ``option`` that gives it). RuntimeError from ITK for unreadable data
    is turned into an InputError too."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{role} {path} does not exist: check the path")
    pillow = pillow_reads(path, role)  # a TIFF or JPEG whose tags ITK would misread
    try:
        image = read_with_pillow(path) if pillow else as_shown(path, sitk.ReadImage(str(path)))
        if image is None:
            raise RuntimeError("Pillow cannot read it")
    except RuntimeError as error:
        image = None if pillow else read_with_pillow(path)  # a file Pillow was to read is not read again
        if image is None:
            last = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown format"
            # a PNG cut short in copying had been told to be saved as PNG (a helper's sweep)
            fix = ("it may be damaged or cut short: save or copy it again" if suffix_of(path) in IMAGE_2D_SUFFIXES
                   else "save it as PNG, TIFF or NRRD")  # fmt: skip
            if "64-bit samples" in last:  # a sound file: ITK's TIFF reader takes no double pixels, nor does Pillow
                fix = "it holds 64-bit pixels, which ITK reads from no TIFF: save it with 32-bit float or 16-bit pixels"
            raise InputError(f"{role} {path} cannot be read ({last[:160]}): {fix}") from None
    image = _without_opaque_alpha(image)
    origin, direction, thickness = (*image.GetOrigin(), 0.0)[:3], image.GetDirection(), None
    if image.GetDimension() == 3 and 1 in image.GetSize():
        image, direction, thickness = _one_slice(image)
    elif image.GetDimension() == 2:
        direction = (*direction[:2], 0.0, *direction[2:], 0.0, 0.0, 0.0, 1.0)
    if image.GetDimension() != 2:
        raise InputError(f"{role} {path} is {image.GetDimension()}D {image.GetSize()}: give one 2D image per section "
                         "(two volumes register with mmreg register)")  # fmt: skip
    stated = None
    if pixel_mm is not None:
        size, source, stated = check_pixel_size(pixel_mm, option), "given", pixel_size_mm(path, image)
    else:
        column, row = stated_pixel_sizes(path, image.GetSpacing()) or image.GetSpacing()
        if not np.isclose(column, row, rtol=1e-4):
            raise InputError(f"{role} {path} has {column:g} x {row:g} mm pixels: 2D registration needs square pixels; "
                             f"resample it to one pixel size (Slicer: Resample Scalar Volume), or give {option} if "
                             "the file's sizes are wrong")  # fmt: skip
        size, source = pixel_size_mm(path, image), "file"
        if size is None:
            raise InputError(f"{role} {path} does not state its pixel size: give it in mm ({option})")
    if layout is None:
        image, origin, direction, layout = _as_picture(image, np.asarray(origin, float), np.asarray(direction, float),
                                                       size)  # fmt: skip
    else:  # laid out as another image (a mask on it), whatever its own header says
        image = laid_out(image, layout)
    image.SetSpacing((size, size))
    image.SetOrigin((0.0, 0.0))
    image.SetDirection((1.0, 0.0, 0.0, 1.0))
    return Image2D(path, image, size, source, tuple(origin), tuple(direction), thickness, tuple(layout), stated)


def _without_opaque_alpha(image: sitk.Image) -> sitk.Image:
    """An RGBA (or grey and alpha) image whose alpha is one value, not 0, as RGB (or grey): ITK reads tiled, planar
    and 1-bit TIFFs as RGBA, and that alpha had made a stack's sections grey and half see-through and given
    register2d's output volume an alpha channel (a helper's sweep). A varying alpha is left for check_opaque."""
    channels = image.GetNumberOfComponentsPerPixel()
    if channels not in (2, 4):
        return image
    alpha = sitk.GetArrayViewFromImage(image)[..., -1]
    if alpha.min() != alpha.max() or alpha.max() == 0:
        return image
    kept = [sitk.VectorIndexSelectionCast(image, index) for index in range(channels - 1)]
    colour = sitk.Compose(kept) if len(kept) > 1 else kept[0]
    colour.CopyInformation(image)
    return colour


def _as_picture(image: sitk.Image, origin: np.ndarray, direction: np.ndarray, pixel_mm: float) -> tuple:
    """``image``'s pixels as :func:`.picture.picture_axes` lays them out, the origin (LPS mm) and direction (3x3
    row-major; the normal keeps the file's handedness) that place the picture where the file placed its pixels,
    and the layout (across axis, leftward, upward). A file storing its rows bottom-up (a NIfTI or NRRD slice with
    direction (1, 0, 0, -1)) met a PNG mirrored: 59 mm off, silently."""
    columns = direction.reshape(3, 3)
    (across, leftward), (downward, upward) = picture_axes(columns)
    layout = (across, leftward, upward)
    if layout == IN_ORDER:
        return image, tuple(origin), tuple(direction), layout
    size = image.GetSize()
    frame = np.zeros((3, 3))
    for picture_axis, (axis, reversed_) in enumerate(((across, leftward), (downward, upward))):
        frame[:, picture_axis] = -columns[:, axis] if reversed_ else columns[:, axis]
        if reversed_:
            origin = origin + columns[:, axis] * pixel_mm * (size[axis] - 1)
    frame[:, 2] = columns[:, 2] * np.sign(np.linalg.det(columns) * np.linalg.det(np.c_[frame[:, :2], columns[:, 2]]))
    return laid_out(image, layout), tuple(origin), tuple(frame.ravel()), layout


IN_ORDER = (0, False, False)  # a layout that leaves the stored pixels as they are


def laid_out(image: sitk.Image, layout: tuple) -> sitk.Image:
    """A 2D image's stored pixels rearranged by ``layout`` ((the stored axis that runs across, across reversed,
    down reversed): :attr:`Image2D.layout`); no geometry."""
    if tuple(layout) == IN_ORDER:
        return image
    across, leftward, upward = layout
    pixels = sitk.GetArrayFromImage(image)  # (rows, columns[, components])
    pixels = np.swapaxes(pixels, 0, 1) if across == 1 else pixels
    pixels = pixels[:, ::-1] if leftward else pixels
    pixels = pixels[::-1] if upward else pixels
    picture = sitk.GetImageFromArray(np.ascontiguousarray(pixels), isVector=image.GetNumberOfComponentsPerPixel() > 1)
    return sitk.Cast(picture, image.GetPixelID())


def as_stored(picture: sitk.Image, image2d: Image2D) -> sitk.Image:
    """An image on ``image2d``'s picture grid (RGB too) back on its file's own grid: the stored pixel order, origin
    and direction, a one-slice volume's third axis (where it lies) and thickness, the pixel size read (or given).
    The registered slide had been written in the picture's order and placement: a fixed NRRD with direction
    (-1, -1) got an output at origin (-98, -98) with the identity, its pixels reversed on both axes against the
    fixed file's (a helper's sweep)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image2d.path))
    reader.ReadImageInformation()
    across, leftward, upward = image2d.layout
    pixels = sitk.GetArrayFromImage(picture)
    pixels = pixels[::-1] if upward else pixels
    pixels = pixels[:, ::-1] if leftward else pixels
    pixels = np.ascontiguousarray(np.swapaxes(pixels, 0, 1) if across == 1 else pixels)
    spacing = [image2d.pixel_mm] * 2
    if reader.GetDimension() == 3:
        thin = reader.GetSize().index(1) if reader.GetSize()[2] != 1 else 2
        pixels = np.expand_dims(pixels, 2 - thin)  # numpy's axes run z, y, x
        spacing.insert(thin, reader.GetSpacing()[thin])
    stored = sitk.GetImageFromArray(pixels, isVector=picture.GetNumberOfComponentsPerPixel() > 1)
    stored.SetSpacing(spacing)
    stored.SetOrigin(reader.GetOrigin())
    stored.SetDirection(reader.GetDirection())
    return stored


def _one_slice(volume: sitk.Image) -> tuple[sitk.Image, tuple, float]:
    """The 2D image of a volume one slice thick along any axis (a coronal slice cropped from a volume: y), the
    direction (3x3, row-major) whose first two columns are its pixel axes and whose third, the normal, keeps the
    file's handedness, and its spacing along that normal (mm)."""
    size = volume.GetSize()
    axis = 2 if size[2] == 1 else size.index(1)
    kept = [a for a in range(3) if a != axis]
    index = [slice(None)] * 3
    index[axis] = 0
    columns = np.asarray(volume.GetDirection(), float).reshape(3, 3)
    frame = columns[:, [*kept, axis]]
    if np.linalg.det(frame) * np.linalg.det(columns) < 0:
        frame[:, 2] *= -1
    return volume[tuple(index)], tuple(frame.ravel()), float(volume.GetSpacing()[axis])


def read_mask_2d(path: str | os.PathLike, image2d: Image2D, role: str = "mask") -> sitk.Image:
    """A 2D mask (nonzero: inside) on ``image2d``'s pixel grid, given that image's geometry, its stored pixels laid
    out as the image's were; refused when its size differs."""
    # Laid out as its image, not by its own header: a PNG mask drawn over a bottom-up NRRD's stored pixels (a
    # reviewer: it covered the wrong tissue, mean 5 for 100, after the image was turned upright alone).
    mask = read_image_2d(path, image2d.pixel_mm, role, layout=image2d.layout).image
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{role} {path} has {mask.GetNumberOfComponentsPerPixel()} channels: give a one-channel mask")
    if mask.GetSize() != image2d.image.GetSize():
        raise InputError(
            f"{role} {path} is {mask.GetSize()} pixels but its image {image2d.path} is {image2d.image.GetSize()}: "
            "draw the mask on that image"
        )
    mask = sitk.Cast(sitk.GetImageFromArray((sitk.GetArrayViewFromImage(mask) > 0).astype(np.uint8)), sitk.sitkUInt8)
    mask.CopyInformation(image2d.image)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InputError(f"{role} {path} is empty: draw the region that holds tissue")
    return mask
