"""Raster files whose tags ITK's reader does not apply are read as a viewer shows them (core/pillow_raster.py): a
tiled 16-bit grey TIFF, a TIFF of grey and alpha, a min-is-white TIFF and an 8-bit palette
TIFF had each been read wrongly with exit 0, or refused for a reason that was not true (a helper's 2D sweep)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images2d import read_header_2d, read_image_2d
from PIL import Image
from tiff_writer import write_tiff

HALF_MM = {282: (5, [(508, 10)]), 283: (5, [(508, 10)]), 296: (3, [2])}  # 50.8 dots per inch: 0.5 mm pixels


def _grey(dtype=np.uint8, top: int = 250) -> np.ndarray:
    return np.random.default_rng(2).integers(0, top, (40, 50)).astype(dtype)


def test_a_tiled_16_bit_grey_tiff_is_read_at_16_bits_with_every_tile_right(tmp_path):
    grey = _grey(np.uint16, 60000)
    path = write_tiff(tmp_path / "tiled.tif", grey, tile=16, extra=HALF_MM)  # ITK: 8-bit RGBA, edge tiles wrong
    read = read_image_2d(path)
    assert np.array_equal(sitk.GetArrayFromImage(read.image), grey) and read.pixel_mm == 0.5
    assert read_header_2d(path).component_type == "16-bit unsigned integer"  # a stack's check of one pixel type


def test_a_min_is_white_tiff_is_read_as_a_viewer_shows_it(tmp_path):
    grey = _grey()
    read = read_image_2d(write_tiff(tmp_path / "white.tif", grey, photometric=0, extra=HALF_MM))
    assert np.array_equal(sitk.GetArrayFromImage(read.image), 255 - grey)  # ITK had read the stored negative


def test_a_grey_and_alpha_tiff_is_read_by_pillow_with_its_pixel_size(tmp_path):
    grey = _grey()
    opaque = np.stack([grey, np.full_like(grey, 255)], axis=-1)
    path = write_tiff(tmp_path / "la.tif", opaque, extra={**HALF_MM, 338: (3, [2])})  # unassociated alpha
    read = read_image_2d(path)
    assert read.pixel_mm == 0.5 and np.array_equal(sitk.GetArrayFromImage(read.gray), grey.astype(np.float32))
    assert read_header_2d(path).components == 2


def test_a_turned_tiff_is_read_as_itk_and_slicer_read_it(tmp_path):
    """A TIFF Orientation is not applied: Slicer reads the file through ITK, and the outputs, masks and landmarks must
    meet the pixels it shows (a review: turned upright, the 3D transform fitted pixels Slicer does not show)."""
    grey = _grey()
    Image.fromarray(grey).save(tmp_path / "six.tif", tiffinfo={274: 6}, dpi=(50.8, 50.8))
    assert read_image_2d(tmp_path / "six.tif").image.GetSize() == sitk.ReadImage(str(tmp_path / "six.tif")).GetSize()


def test_a_big_endian_tiled_16_bit_tiff_is_read_at_16_bits(tmp_path):
    """Pillow reads it as I;16B: handed to SimpleITK as big-endian numbers, it had ended in a traceback (a review)."""
    grey = _grey(np.uint16, 60000)
    path = write_tiff(tmp_path / "motorola.tif", grey, tile=16, extra=HALF_MM, big_endian=True)
    assert np.array_equal(sitk.GetArrayFromImage(read_image_2d(path).image), grey)


def test_an_8_bit_palette_tiff_is_read_as_8_bit_colour(tmp_path):
    indexed = (np.arange(40 * 50).reshape(40, 50) % 4).astype(np.uint8)
    picture = Image.fromarray(indexed, "P")
    picture.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 200, 200] + [0] * (3 * 252))
    picture.save(tmp_path / "palette.tif", dpi=(50.8, 50.8))
    read = read_image_2d(tmp_path / "palette.tif")
    assert read.image.GetPixelID() == sitk.sitkVectorUInt8  # ITK had read 16-bit colours, refused beside 8-bit PNGs
    assert np.array_equal(sitk.GetArrayFromImage(read.image), np.asarray(picture.convert("RGB")))
    assert read_header_2d(tmp_path / "palette.tif").component_type == "8-bit unsigned integer"


def test_a_given_pixel_size_that_replaces_the_files_own_is_named_with_both(tmp_path):
    """--moving-pixel-size 0.5 for a file stating 0.625 mm: 12 mm off, and no warning named the file's size."""
    from MultimodalRegistrationLib.process.register2d_job import _given_size_warnings

    Image.fromarray(_grey()).save(tmp_path / "m.png", dpi=(25.4 / 0.625, 25.4 / 0.625))
    Image.fromarray(_grey()).save(tmp_path / "f.png")  # states nothing
    fixed, moving = read_image_2d(tmp_path / "f.png", pixel_mm=0.5), read_image_2d(tmp_path / "m.png", pixel_mm=0.5)
    assert (fixed.stated_mm, round(moving.stated_mm, 6)) == (None, 0.625)
    assert _given_size_warnings(fixed, moving) == [
        "--moving-pixel-size 0.5 mm replaces the 0.625 mm pixels m.png states (0.8 times): check which is right; "
        "leave the option out to use the file's"]
    assert _given_size_warnings(fixed, read_image_2d(tmp_path / "m.png", pixel_mm=0.625)) == []


def test_a_bmp_states_its_pixel_size_in_pixels_per_metre(tmp_path):
    """ITK reads no BMP resolution: a BMP stating 0.625 mm pixels had been refused as stating none (a helper's sweep)."""
    Image.fromarray(_grey()).save(tmp_path / "slide.bmp", dpi=(25.4 / 0.625, 25.4 / 0.625))
    assert abs(read_image_2d(tmp_path / "slide.bmp").pixel_mm - 0.625) < 1e-3
