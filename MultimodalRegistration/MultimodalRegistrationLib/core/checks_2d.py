"""What a 2D image must hold to be registered, checked before any engine runs (InputError naming the fix): some
tissue, finite values, no transparency, a size comparable with the other image's, a mask the engines can sample.
Images as :mod:`.images2d` reads them (mm)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .content import too_little_content
from .errors import InputError
from .images2d import Image2D, working_bin
from .plausible_spacing import MAX_PLAUSIBLE_EXTENT_MM


def check_not_uniform(image2d: Image2D, role: str = "image") -> None:
    """Refuse an image with one value everywhere (a blank page): no engine can register it ("Too many samples map
    outside moving image buffer", exit 1, with advice about the start)."""
    values = sitk.GetArrayFromImage(image2d.gray)  # a copy: a view would outlive the temporary image
    if not values.size:
        return
    lowest = float(values.min())
    content = int(np.count_nonzero(values != lowest))
    if content == 0:
        raise InputError(f"{role} {image2d.path} is uniform ({lowest:g} everywhere): it holds no tissue "
                         "to register; check that the right file (or page) was given")  # fmt: skip
    # A blank slide with one bright pixel, or a few specks of dust: elastix stopped with "Too many samples map
    # outside", ANTs returned a turn of 164 degrees (a helper's sweep). The 3D rule (core.images.validate_image).
    if too_little_content(content, values.size):
        raise InputError(f"{role} {image2d.path} holds only {content} pixel{'s' * (content != 1)} above its lowest "
                         f"value ({lowest:g}), too few to register: is it a blank slide, a mask or a "
                         "label image? Give the image of the tissue itself")  # fmt: skip


def check_finite(image2d: Image2D, role: str = "image") -> None:
    """Refuse an image holding NaN or infinite values: the engines' masks and histograms fail on them."""
    values = sitk.GetArrayViewFromImage(image2d.image)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        count = int(values.size - np.isfinite(values).sum())
        raise InputError(f"{role} {image2d.path} holds {count} NaN or infinite pixel value(s): replace them (with the "
                         "background value) and save it again")  # fmt: skip


MIN_OTHER_PIXELS = 8  # an image narrower than this many of the other's pixels cannot be registered against it
LARGEST_SECTION_MM = 500.0  # wider than any slice or slide: its pixel size is in another unit


def _extent_text(image: Image2D) -> str:
    """"<file> is W x H mm (columns x rows pixels of P mm, as given / from its file)"."""
    size = np.asarray(image.image.GetSize(), float)
    width, height = size * image.pixel_mm
    return (f"{image.path.name} is {width:.4g} x {height:.4g} mm ({int(size[0])} x {int(size[1])} pixels of "
            f"{image.pixel_mm:g} mm, {'as given' if image.pixel_source == 'given' else 'from its file'})")


def check_sizes_comparable(fixed: Image2D, moving: Image2D) -> None:
    """Refuse a pair in which one image is narrower than MIN_OTHER_PIXELS of the other's pixels: a pixel size wrong
    by a unit (0.00075 for 0.75 mm) crashed the engines' smoothing with "this is a bug". Both images are named; the
    one wider than LARGEST_SECTION_MM is the suspect, else the narrow one (3.25 typed for 3.25 um had been blamed on
    the right 13 um fixed image)."""
    roles = {"fixed image": (fixed, "--fixed-pixel-size"), "moving image": (moving, "--moving-pixel-size")}
    for (role, (image, _)), (other_role, (other, _)) in (tuple(roles.items()), tuple(roles.items())[::-1]):
        if float(min(image.image.GetSize())) * image.pixel_mm >= MIN_OTHER_PIXELS * other.pixel_mm:
            continue
        wide = float(max(other.image.GetSize())) * other.pixel_mm > LARGEST_SECTION_MM
        suspect, (pixel, option) = (other_role, roles[other_role]) if wide else (role, roles[role])
        if pixel.pixel_source != "given":
            unit = f"its file may state a wrong one: give its true size with {option}"
        elif wide:
            unit = f"if it is in micrometres, give {option} {pixel.pixel_mm / 1000:g}"
        else:
            unit = f"{option} {pixel.pixel_mm:g} means {pixel.pixel_mm * 1000:g} micrometres"
        raise InputError(
            f"the {role} {_extent_text(image)}, under {MIN_OTHER_PIXELS} pixels across of the {other_role} "
            f"({_extent_text(other)}): too small to register against it. "
            f"A pixel size is probably wrong, most likely the {suspect}'s: pixel sizes are in mm ({unit})"
        )


def check_opaque(image2d: Image2D, role: str = "image") -> None:
    """Refuse an image whose alpha channel is not fully opaque: its see-through pixels hold no tissue value."""
    image = image2d.image
    if image.GetNumberOfComponentsPerPixel() not in (2, 4):
        return
    alpha = sitk.GetArrayViewFromImage(image)[..., -1]
    if alpha.min() < alpha.max() or alpha.max() == 0:
        channels = image.GetNumberOfComponentsPerPixel()
        raise InputError(
            f"{role} {image2d.path} has {channels} channels and the last varies: if it is transparency (alpha), "
            "flatten it onto the slide's background and save it without transparency (RGB); if they are "
            "fluorescence channels, save the one to register as a grey image"
        )


def check_channels(image2d: Image2D, role: str = "image") -> None:
    """Refuse an image of more than 4 channels (multiplexed fluorescence): its first three were mixed as RGB and
    the others dropped without a word (a helper's sweep)."""
    channels = image2d.image.GetNumberOfComponentsPerPixel()
    if channels > 4:
        raise InputError(
            f"{role} {image2d.path} has {channels} channels: a 2D registration takes a grey picture or a colour one "
            "(RGB): save the channel to register (the one that shows the tissue best, e.g. DAPI) as a grey image"
        )


MIN_SIDE_PIXELS = 8  # the engines' smoothing needs 4 pixels a side at their coarsest level, which halves them twice


def check_enough_pixels(image2d: Image2D, role: str = "image") -> None:
    """Refuse an image under MIN_SIDE_PIXELS pixels along a side (a strip one pixel wide crashed the start search's
    smoothing with a traceback, a helper's sweep)."""
    size = image2d.image.GetSize()
    if min(size) < MIN_SIDE_PIXELS:
        raise InputError(
            f"{role} {image2d.path} is {size[0]} x {size[1]} pixels: under {MIN_SIDE_PIXELS} pixels along a side, too "
            "few to register: give the whole slice or section, not a strip or a line of it"
        )


MASK_COARSE_PIXELS = 64  # a mask needs this many pixels of the engines' coarsest level (4 working pixels a side)
COARSEST_SHRINK = 4  # every 2D preset's first level (Presets/*_2d)


def check_mask_size_2d(mask: sitk.Image, image2d: Image2D, other: Image2D, role: str) -> None:
    """Refuse a mask smaller than MASK_COARSE_PIXELS pixels of the engines' coarsest level (InputError naming the
    fix): a 3 x 3 pixel mask had stopped elastix (an index of -9.2e18) and ANTs ("All samples map outside"), exit 1
    with a hint to prealign, and 8 x 8 or 16 x 16 ended 4.6-6.8 mm off (a helper's sweep). The working pixel is the
    image's own, or the bins :func:`..registration.two_d.working_resolution` averages it into."""
    working = image2d.pixel_mm * working_bin(image2d.pixel_mm, other.pixel_mm)
    coarse = COARSEST_SHRINK * working
    area = float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) * image2d.pixel_mm**2
    if area >= MASK_COARSE_PIXELS * coarse**2:
        return
    raise InputError(
        f"the {role} covers {area:.3g} mm^2, under "
        f"{MASK_COARSE_PIXELS} pixels of the registration's coarsest level ({coarse:.3g} mm: "
        f"{MASK_COARSE_PIXELS * coarse**2:.3g} mm^2): too small to register by; enlarge it to the tissue around "
        "the region, or leave it out"
    )


def check_plausible_width(image2d: Image2D, role: str, option: str) -> None:
    """Refuse an image wider than any body: micrometre pixels stored as 1 mm (a 2400-pixel slide 2.4 m wide) had
    registered without a word, the transform 1000 times off in mm (a helper's sweep), as mmreg register and stack
    refuse it."""
    width = max(image2d.image.GetSize()) * image2d.pixel_mm
    if width > MAX_PLAUSIBLE_EXTENT_MM:
        source = "as given" if image2d.pixel_source == "given" else "as its file states"
        raise InputError(f"{role} {image2d.path} is {width:.4g} mm wide at {image2d.pixel_mm:g} mm pixels ({source}), "
                         f"wider than any body ({MAX_PLAUSIBLE_EXTENT_MM:g} mm): give its true pixel size in mm with "
                         f"{option} (3.25 um is {option} 0.00325)")  # fmt: skip
