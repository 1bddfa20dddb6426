"""Images: reading, writing, validation and geometry. Images are SimpleITK images in LPS mm."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .content import MIN_CONTENT_VOXELS, too_little_content
from .errors import InputError
from .file_checks import (
    check_image_data,
    check_image_fits_in_memory,
    complex_error,
    direction_error,
    direction_problem,
    grid_refusal,
    read_image_file_info,
)
from .file_kind import unreadable_error
from .files import suffix_of, write_atomically
from .images2d import to_gray
from .mask_values import check_mask_geometry, intensity_mask_error
from .plausible_spacing import MAX_PLAUSIBLE_EXTENT_MM, check_spacing

NIFTI_HEADER_BYTES = 348  # a NIfTI-1 header; the voxels follow it (at 352, after the extension flag)
# A mask covering less of its image than this starves the sampler: crop instead.
MIN_MASK_COVERAGE = 0.10


def read_image(path: str | os.PathLike, role: str = "image", spacing_given: bool = False) -> sitk.Image:
    """Read an image file (NRRD, NIfTI, MHA, ...) as a SimpleITK image in LPS.

    The checks of ``file_checks.check_image_file`` run first, and a whole image larger than this
    machine's free memory is refused from its header, before anything is allocated.
    ``spacing_given``: the caller sets the spacing afterwards, so the header's is not checked.
    """
    path = Path(path)
    info = read_image_file_info(path, role, spacing_given)
    check_image_fits_in_memory(info)
    check_image_data(path, role)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise unreadable_error(path, role, error) from None
    return one_component_as_scalar(image)


_VECTOR_TYPES = (sitk.sitkVectorUInt8, sitk.sitkVectorInt8, sitk.sitkVectorUInt16, sitk.sitkVectorInt16,
                 sitk.sitkVectorUInt32, sitk.sitkVectorInt32, sitk.sitkVectorUInt64, sitk.sitkVectorInt64,
                 sitk.sitkVectorFloat32, sitk.sitkVectorFloat64)  # fmt: skip


def one_component_as_scalar(image: sitk.Image) -> sitk.Image:
    """A vector image of one component per voxel as the scalar volume it is, its header entries (Slicer's segment
    names) kept; any other image as it is. ITK reads a NRRD whose list axis holds one entry (a one-layer segmentation
    or a one-frame sequence saved 4D) so, and no filter takes it (a helper's sweep: a traceback in every verb)."""
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetPixelID() not in _VECTOR_TYPES:
        return image
    scalar = sitk.VectorIndexSelectionCast(image, 0)
    for key in image.GetMetaDataKeys():
        scalar.SetMetaData(key, image.GetMetaData(key))
    return scalar


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """Write an image atomically: a cancelled or failed run leaves no half-written file. ``compress=False``
    for a file that only passes an image to a worker (compressing 2 x 47 MB took most of a second)."""
    write_atomically(path, lambda tmp: _write_whole(image, tmp, compress))


def _write_whole(image: sitk.Image, path: str, compress: bool) -> None:
    """``sitk.WriteImage``, then, for NIfTI, a check that every voxel reached the file: ITK's NIfTI writer says
    nothing when the disk fills (a full disk had left a .nii.gz with 31% of its voxels zero, and exit 0; review)."""
    sitk.WriteImage(image, path, compress)
    if suffix_of(path) not in (".nii", ".nii.gz"):
        return
    expected = NIFTI_HEADER_BYTES + sitk.GetArrayViewFromImage(image).nbytes
    try:
        if suffix_of(path) == ".nii":
            written = os.path.getsize(path)
        else:
            with gzip.open(path, "rb") as stream:
                written = sum(len(chunk) for chunk in iter(lambda: stream.read(2**22), b""))
    except (OSError, EOFError, zlib.error) as error:  # a gzip stream cut short
        raise RuntimeError(f"could not write {path} whole ({error})") from None
    if written < expected:
        raise RuntimeError(f"could not write {path} whole: {written} bytes of {expected}")


def physical_extent_mm(image: sitk.Image) -> np.ndarray:
    """Physical length of each image axis (mm): size x spacing."""
    return np.asarray(image.GetSize(), float) * np.asarray(image.GetSpacing(), float)


def index_to_physical_matrix(image: sitk.Image) -> np.ndarray:
    """4x4 matrix mapping continuous voxel index (i, j, k, 1) to LPS mm."""
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), float).reshape(dim, dim)
    matrix = np.eye(4)
    matrix[:3, :3] = direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def corner_points(image: sitk.Image) -> np.ndarray:
    """The 8 corners of the image's voxel-centre box, as an (8, 3) array in LPS mm."""
    size = np.asarray(image.GetSize(), float) - 1.0
    corners = np.array([[i, j, k] for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])])
    matrix = index_to_physical_matrix(image)
    return corners @ matrix[:3, :3].T + matrix[:3, 3]


def physical_center(image: sitk.Image) -> np.ndarray:
    """Centre of the image's voxel-centre box (LPS mm)."""
    return corner_points(image).mean(axis=0)


def scaled_image(image: sitk.Image | None, k: float, center=None) -> sitk.Image | None:
    """A copy of ``image`` ``k`` times larger about ``center`` (LPS mm; the origin of space when None) through its
    header: spacing times ``k``, the origin moved away from ``center`` ``k`` times; the voxels are the same."""
    if image is None:
        return None
    about = np.zeros(3) if center is None else np.asarray(center, dtype=float)
    copy = sitk.Image(image)
    copy.SetSpacing([s * k for s in image.GetSpacing()])
    copy.SetOrigin((about + k * (np.asarray(image.GetOrigin(), dtype=float) - about)).tolist())
    return copy


def sample_grid_points(image: sitk.Image, per_axis: int = 12) -> np.ndarray:
    """A regular grid of points spread over the image box, (N, 3) in LPS mm."""
    size = np.asarray(image.GetSize(), float) - 1.0
    axes = [np.linspace(0.0, s, per_axis) for s in size]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    matrix = index_to_physical_matrix(image)
    return grid @ matrix[:3, :3].T + matrix[:3, 3]


def inside_fraction(points_lps: np.ndarray, image: sitk.Image) -> float:
    """Fraction of the points (LPS mm) that fall inside the image's voxel box."""
    if len(points_lps) == 0:
        return 0.0
    inverse = np.linalg.inv(index_to_physical_matrix(image))
    index = points_lps @ inverse[:3, :3].T + inverse[:3, 3]
    upper = np.asarray(image.GetSize(), float) - 0.5
    inside = np.all((index >= -0.5) & (index <= upper), axis=1)
    return float(inside.mean())


# 8 bits a channel: RGB photographs and stained scans. Three 16-bit channels are likelier fluorescence, which
# BT.601 weights would mix: still refused, naming the channel to pick (a reviewer).
_COLOUR_TYPES = (sitk.sitkVectorUInt8,)


def _is_colour(pixel_id: int, components: int) -> bool:
    return pixel_id in _COLOUR_TYPES and components in (3, 4)


def colour_as_grey(image: sitk.Image, role: str = "image") -> tuple[sitk.Image, str | None]:
    """An RGB(A) image (8 bits a channel: a stack of stained sections, a cryosection photograph) as its BT.601
    luminance, as 2D registration reads a slide, with a note saying so; any other image as it is, and None. It was
    refused, though ``mmreg stack`` writes its RGB sections as an RGB volume (a helper's sweep)."""
    if not _is_colour(image.GetPixelID(), image.GetNumberOfComponentsPerPixel()):
        return image, None
    return to_gray(image), f"the {role} is RGB: its luminance (0.299 R + 0.587 G + 0.114 B) is used"


def colour_source_as_grey(source, role: str = "image", spacing_given: bool = False):
    """:func:`colour_as_grey` for an image or a file: an RGB(A) file is read whole (its header says so first) and
    its luminance returned with the note; any other source is returned as it is (a file not read), and None."""
    if not isinstance(source, sitk.Image):
        info = read_image_file_info(source, role, spacing_given)
        if not _is_colour(info.pixel_id, info.components):
            return source, None
        source = read_image(source, role, spacing_given)
    return colour_as_grey(source, role)


def validate_image(image: sitk.Image, role: str = "image") -> None:
    """Check that an image can be registered: 3D, scalar, sane spacing, not constant.

    Raises :class:`InputError` naming the fix.
    """
    if image.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise complex_error(role)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{role} has {image.GetNumberOfComponentsPerPixel()} components per voxel "
            "(a vector, RGB or multi-volume image): pick one component or volume first, "
            "for example with sitk.VectorIndexSelectionCast(image, 0)"
        )
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        raise InputError(
            f"{role} is a 3D volume saved with a fourth axis of one volume: save it as 3D (for example "
            "sitk.WriteImage(image[:, :, :, 0], path))"
        )
    if image.GetDimension() == 4:
        raise InputError(
            f"{role} is 4D ({image.GetSize()[3]} volumes, a multi-volume or time series): "
            "pick one volume first, for example image[:, :, :, 0]"
        )
    if image.GetDimension() != 3:
        raise InputError(
            f"{role} is {image.GetDimension()}D: this registration needs a 3D volume; register two 2D images with "
            "mmreg register2d (a batch runs 3D cases only), or stack 2D sections into a volume first (mmreg stack)"
        )
    spacing = np.asarray(image.GetSpacing(), float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(
            f"{role} spacing {tuple(spacing)} is not finite and positive: set the true voxel spacing in mm"
        )
    problem = direction_problem(image.GetDirection())
    if problem:
        raise direction_error(role, problem)
    too_small = grid_refusal(role, image.GetSize(), image.GetSpacing())
    if too_small:
        raise too_small
    if not np.all(np.isfinite(image.GetOrigin())):
        raise InputError(f"{role} origin {image.GetOrigin()} is not finite: fix the image origin in its header")
    if physical_extent_mm(image).max() > MAX_PLAUSIBLE_EXTENT_MM:
        side = role.split()[0]
        option = f" (--spacing-{side} sx,sy,sz, on mmreg register or mmreg prep)" if side in ("fixed", "moving") else ""
        raise InputError(check_spacing(image, role=role).message + option)
    if has_nan(image):  # the minimum and maximum skip NaN, so they are looked for here
        raise non_finite_error(role, "NaN")
    statistics = sitk.MinimumMaximumImageFilter()
    statistics.Execute(image)
    low, high = statistics.GetMinimum(), statistics.GetMaximum()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise non_finite_error(role)
    if high <= low and image.GetPixelID() in (sitk.sitkInt64, sitk.sitkUInt64) and _integers_differ(image):
        # uint64 values near 2^63 differ by less than a double can tell: it had been called constant (a sweep)
        raise InputError(f"{role} holds 64-bit integers near {low:.4g} that differ by less than floating point can "
                         "tell apart: subtract its offset (or save it as a 32-bit or float image) first")  # fmt: skip
    if high <= low:
        raise InputError(f"{role} is constant (every voxel is {low:g}): load the right image")
    content = _content_voxels(image, low, MIN_CONTENT_VOXELS)
    # A reviewer's SCT label file (2 of 6.5 million voxels) as the moving image: elastix exit 1, ANTs a transform.
    if too_little_content(content, image.GetNumberOfPixels()):
        raise InputError(
            f"{role} holds only {content} voxel{'s' * (content != 1)} above its lowest value ({low:g}), too few to "
            "register: is it a label, mask or points file given in place of the image? Load the image itself"
        )


def _content_voxels(image: sitk.Image, low: float, enough: int) -> int:
    """How many voxels of a 3D ``image`` differ from ``low``, counted a slab of about a million voxels at a time and
    no further once ``enough`` are found: every registration checks its images, and a whole-image comparison would
    hold a mask as large as the image."""
    array = sitk.GetArrayViewFromImage(image)
    step = max(1, 2**20 // max(1, array[0].size))
    count = 0
    for start in range(0, array.shape[0], step):
        count += int(np.count_nonzero(array[start : start + step] != low))
        if count >= enough:
            break
    return count


def _integers_differ(image: sitk.Image) -> bool:
    """Whether a 64-bit integer image holds two different values (read exactly, not as doubles)."""
    values = sitk.GetArrayViewFromImage(image)
    return bool(values.size) and bool(values.min() != values.max())


def non_finite_error(role: str, what: str = "NaN or infinite") -> InputError:
    """The refusal of an image holding NaN or infinite voxels, naming the fix."""
    return InputError(f"{role} contains {what} voxels: replace them by the background's value (0 on most MR, -1000 "
                      "on a CT) first")  # fmt: skip


def has_nan(image: sitk.Image) -> bool:
    """True when a floating-point image holds a NaN voxel (an integer image cannot)."""
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return False
    return bool(np.isnan(sitk.GetArrayViewFromImage(image)).any())


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """Whether two images share one voxel grid: size, spacing, origin and direction (LPS mm)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
    )


def same_lattice(a: sitk.Image, b: sitk.Image) -> bool:
    """Whether ``b``'s voxel centres lie on ``a``'s lattice: same spacing and direction, origins a whole number of
    voxels apart (a segmentation saved cropped to its contents keeps its image's lattice, not its grid)."""
    if not (np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)):  # fmt: skip
        return False
    offset = np.asarray(a.TransformPhysicalPointToContinuousIndex(b.GetOrigin()))
    return bool(np.all(np.abs(offset - np.round(offset)) < 1e-3))


def validate_mask(mask: sitk.Image, image: sitk.Image, role: str = "mask") -> sitk.Image:
    """Check a mask against its image and return it as a uint8 image on the image's grid.

    A mask on another grid is resampled (nearest neighbour) onto the image grid. An empty mask, one outside its
    image, and an intensity image or probability map given as a mask (:func:`.mask_values.intensity_mask_error`)
    are refused.
    """
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{role} must be a 3D scalar label image: export the segment as a labelmap")
    check_mask_geometry(mask, image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection(), role)
    if has_nan(mask):  # NaN != 0: a NaN background would make the mask the whole image
        raise InputError(f"{role} holds NaN voxels: set them to 0 outside the mask (or export it again as a labelmap)")
    binary = sitk.Cast(mask != 0, sitk.sitkUInt8)
    intensity = intensity_mask_error(mask, binary, role)
    if intensity:
        raise intensity
    if not same_grid(mask, image):
        binary = sitk.Resample(binary, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    coverage = float(sitk.GetArrayViewFromImage(binary).mean())
    if coverage == 0.0:
        if not same_grid(mask, image) and sitk.GetArrayViewFromImage(mask).any():
            raise InputError(f"{role} lies outside its image (none of its set voxels falls inside the image): it was "
                             "drawn on another image, or its origin is wrong; give a mask drawn on this image")  # fmt: skip
        raise InputError(f"{role} is empty (no voxel inside the image is set): draw the mask or drop it")
    return binary


def mask_coverage(mask: sitk.Image) -> float:
    """Fraction of the mask's voxels that are set."""
    return float((sitk.GetArrayViewFromImage(mask) != 0).mean())


def box_grid(image: sitk.Image, spacing_mm: float, max_nodes: int, role: str = "grid") -> sitk.Image:
    """An empty axis-aligned grid (identity direction, LPS) every ``spacing_mm`` mm over ``image``'s box,
    centred on it; the spacing grows by 25% steps until the grid holds at most ``max_nodes`` nodes."""
    if not spacing_mm > 0:
        raise InputError(f"{role} spacing {spacing_mm} mm: give a positive spacing, e.g. 2")
    corners = corner_points(image)
    low, high = corners.min(axis=0), corners.max(axis=0)
    spacing = float(spacing_mm)
    while True:
        size = np.maximum(np.ceil((high - low) / spacing).astype(int) + 1, 3)
        if np.prod(size) <= max_nodes:
            break
        spacing *= 1.25
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing((spacing,) * 3)
    grid.SetOrigin(tuple(float(v) for v in (low + high) / 2 - (size - 1) * spacing / 2))
    return grid
