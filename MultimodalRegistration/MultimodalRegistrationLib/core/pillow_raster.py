"""Raster files read with Pillow where ITK's reader does not apply what their tags say (a helper's sweep of 2D
files; each had been read wrongly with exit 0, or refused for a reason that was not true):

* a file ITK cannot read (a grey + alpha PNG) is read by Pillow, its pixel size from the resolution Pillow reads;
* a TIFF of grey and alpha, which ITK reads interleaved as one channel, is read by Pillow; one of two other channels
  (fluorescence) is refused;
* a tiled 16-bit grey TIFF, which ITK reads through its 8-bit RGBA fallback (its edge tiles wrong), is read by
  Pillow at 16 bits;
* not applied, as Slicer does not apply it either (the outputs and landmarks must meet the pixels Slicer shows): a
  TIFF Orientation of 5 to 8, which ITK reads as a mirror image, and a JPEG's EXIF orientation, which ITK ignores;
* a TIFF stored min-is-white (photometric 0), which ITK reads as its negative, is inverted back;
* an 8-bit palette TIFF, which ITK expands to 16-bit RGB, is scaled back to 8 bits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .files import RASTER_SUFFIXES, suffix_of

TIFF = (".tif", ".tiff")
# Pillow's modes as ITK names their pixel types (Header2D.component_type)
KINDS = {"1": "8-bit unsigned integer", "L": "8-bit unsigned integer", "LA": "8-bit unsigned integer",
         "P": "8-bit unsigned integer", "RGB": "8-bit unsigned integer", "RGBA": "8-bit unsigned integer",
         "I;16": "16-bit unsigned integer", "I;16B": "16-bit unsigned integer", "F": "32-bit float"}  # fmt: skip


def _tags(path: Path) -> dict:
    """A TIFF's tags that ITK misreads (bits, photometric, samples, tile width, extra samples); {} when Pillow cannot
    open the file."""
    try:
        from PIL import Image

        if suffix_of(path) not in TIFF:
            return {}
        with Image.open(path) as opened:
            return {key: opened.tag_v2.get(key) for key in (258, 262, 277, 322, 338)}
    except Exception:  # not a raster file Pillow opens: ITK's reading stands
        return {}


def pillow_reads(path: Path, role: str = "section") -> bool:
    """Whether ``path`` is read by Pillow rather than ITK (see the module notes); refuses two channels per pixel."""
    tags = _tags(Path(path))
    samples = tags.get(277) or 1
    if samples == 2 and tuple(tags.get(338) or ()) not in ((1,), (2,)):
        raise InputError(f"{role} {path} holds two channels per pixel, which ITK reads interleaved as one: save the "
                         "channel to register on its own (ImageJ: Image > Color > Split Channels), or as RGB")
    tiled_16 = samples == 1 and bool(tags.get(322)) and tuple(tags.get(258) or ()) == (16,)
    return samples == 2 or tiled_16


def with_pillow(path: Path, read):
    """``read(opened)`` of a raster file opened with Pillow; None when it is no raster file, Pillow is missing or
    cannot open it. A file over Pillow's pixel limit is an :class:`InputError` naming the fix."""
    if suffix_of(path) not in RASTER_SUFFIXES:
        return None
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(path) as opened:
            return read(opened)
    except (OSError, ValueError):
        return None
    except Image.DecompressionBombError as error:  # Pillow's limit: about 179 million pixels
        raise InputError(f"{path} is too large for Pillow, which reads it because ITK cannot ({error}): save it as "
                         "an RGB or grey PNG or TIFF without transparency (ITK reads those), or downsample it") from None


def _dpi(opened) -> tuple[float, float] | None:
    """The dots per inch (columns, rows) Pillow reads (a PNG's pHYs, a BMP's pixels per metre, a TIFF's resolution
    tags), or None when none or not positive."""
    dpi = opened.info.get("dpi")
    return (float(dpi[0]), float(dpi[1])) if dpi and min(float(dpi[0]), float(dpi[1])) > 0 else None


def _spacing(opened) -> tuple[float, float]:
    """mm per pixel (columns, rows) from the resolution Pillow reads; 1 when none."""
    dpi = _dpi(opened)
    return (25.4 / dpi[0], 25.4 / dpi[1]) if dpi else (1.0, 1.0)


def pillow_header(path: Path) -> tuple[tuple, int, tuple, str | None] | None:
    """(size, channels, spacing in mm, pixel type as ITK names it) as Pillow reads ``path``; None when it cannot."""
    return with_pillow(path, lambda opened: (tuple(opened.size), len(opened.getbands()), _spacing(opened),
                                             KINDS.get(opened.mode)))  # fmt: skip


def _pixels(opened) -> tuple[np.ndarray, tuple] | None:
    """One page's pixels, channels kept (palette, 1-bit and CMYK images converted) in this machine's byte order, and
    their spacing; None for several pages."""
    if getattr(opened, "n_frames", 1) != 1:
        return None
    kept = ("L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F")
    converted = {"P": "RGBA" if "transparency" in opened.info else "RGB", "1": "L"}.get(opened.mode)
    converted = converted or (None if opened.mode in kept else "RGB")
    pixels = np.asarray(opened.convert(converted) if converted else opened)
    return pixels.astype(pixels.dtype.newbyteorder("="), copy=False), _spacing(opened)  # I;16B: big-endian


def read_with_pillow(path: Path) -> sitk.Image | None:
    """The pixels of a one-page raster file as Pillow reads them (see the module notes), channels kept, its spacing
    from its resolution (else 1); None when Pillow is missing or cannot read it."""
    read = with_pillow(path, _pixels)
    if read is None or read[0].ndim not in (2, 3):
        return None
    image = sitk.GetImageFromArray(read[0], isVector=read[0].ndim == 3)
    image.SetSpacing(read[1])
    return image


def pillow_dpi(path: Path) -> tuple[float, float] | None:
    """:func:`_dpi` of the file at ``path``."""
    return with_pillow(path, _dpi)


def as_shown(path: Path, image: sitk.Image) -> sitk.Image:
    """``image`` as ITK read it from ``path``, with what ITK left out applied: a min-is-white TIFF inverted, an 8-bit
    palette TIFF's 16-bit colours taken to 8 bits (their high byte: writers scale by 256 or 257)."""
    tags = _tags(Path(path))
    kind = image.GetPixelID()
    if tags.get(262) == 0 and image.GetNumberOfComponentsPerPixel() == 1 and kind in (sitk.sitkUInt8, sitk.sitkUInt16):
        return sitk.InvertIntensity(image, 255 if kind == sitk.sitkUInt8 else 65535)
    if tags.get(262) == 3 and tuple(tags.get(258) or ()) == (8,) and kind == sitk.sitkVectorUInt16:
        return sitk.Compose([sitk.Cast(sitk.VectorIndexSelectionCast(image, channel) / 256, sitk.sitkUInt8)
                             for channel in range(image.GetNumberOfComponentsPerPixel())])  # fmt: skip
    return image


def shown_kind(path: Path, kind: str | None) -> str | None:
    """The pixel type name ITK gives ``path``'s header, as :func:`as_shown` reads the pixels (8 bits for a palette)."""
    tags = _tags(Path(path)) if kind and "16-bit" in kind else {}
    if tags.get(262) == 3 and tuple(tags.get(258) or ()) == (8,):
        return kind.replace("16-bit", "8-bit")
    return kind
