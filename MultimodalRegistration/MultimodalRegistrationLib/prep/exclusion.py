"""Metal exclusion measured at full resolution, for an image that was downsampled first.

Block averaging dilutes a small bright object below the threshold (a 6 mm sphere at 3000 HU is gone at
4 mm voxels), so the bright voxels are found in the full-resolution voxels (streamed from the file when
it was streamed) and every working voxel that holds one is excluded, with the margin around it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.images import index_to_physical_matrix, read_image
from .downsample import array_chunks, read_header, streaming_reader
from .masks import dilate

Source = str | os.PathLike | sitk.Image


def _full_resolution_chunks(source: Source, spacing, role: str) -> tuple[Iterator[tuple[int, np.ndarray]], np.ndarray]:
    """(first slice, array[z, y, x]) chunks of the source's voxels and its index -> LPS matrix."""
    if isinstance(source, sitk.Image):
        return array_chunks(sitk.GetArrayViewFromImage(source)), index_to_physical_matrix(source)
    given = spacing is not None
    header = read_header(source, role, given)
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(header.direction, float).reshape(3, 3) @ np.diag(spacing if given else header.spacing)
    matrix[:3, 3] = header.origin
    chunks, _ = streaming_reader(header)
    if chunks is not None:
        return chunks(), matrix
    return array_chunks(sitk.GetArrayFromImage(read_image(source, role, given))), matrix


def exclusion_from_full_resolution(
    source: Source, above: float, grid: sitk.Image, margin_mm: float = 3.0, spacing=None, role: str = "image"
) -> sitk.Image:
    """A uint8 mask on ``grid``: its voxels that hold a full-resolution voxel of ``source`` above ``above``
    (stored units), dilated by ``margin_mm``. ``source``: the full-resolution image or its file (``spacing``,
    mm, replaces the file's); voxels outside ``grid`` (cropped away) are ignored."""
    to_grid = np.linalg.inv(index_to_physical_matrix(grid))
    size = np.asarray(grid.GetSize())
    marked = np.zeros(tuple(size[::-1]), np.uint8)
    chunks, to_physical = _full_resolution_chunks(source, spacing, role)
    for first, chunk in chunks:
        z, y, x = np.nonzero(chunk > above)
        if not z.size:
            continue
        index = np.stack([x, y, z + first, np.ones_like(x)]).astype(float)
        ijk = np.rint((to_grid @ to_physical @ index)[:3]).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < size[:, None]), axis=0)
        marked[ijk[2, inside], ijk[1, inside], ijk[0, inside]] = 1
    mask = sitk.GetImageFromArray(marked)
    mask.CopyInformation(grid)
    return dilate(mask, margin_mm)


def check_not_all_excluded(mask: sitk.Image, role: str, options, masked: bool) -> None:
    """Refuse a metal exclusion that leaves the ``role`` image's mask empty (``options``: the PrepOptions;
    ``masked``: a mask was asked for too), naming what to change: an empty mask file had been written with exit 0
    and only the advice to crop (a helper's prep sweep)."""
    if sitk.GetArrayViewFromImage(mask).any():
        return
    inside = " inside the mask" if masked else ""
    raise InputError(
        f"--exclude-above {options.exclude_above:g} HU with a {options.exclude_margin_mm:g} mm margin excludes every "
        f"voxel of the {role} image{inside}: metal is above about 2500-3000 HU; raise --exclude-above or lower "
        "--exclude-margin" + (", or give a mask that holds more than the implant" if masked else "")
    )
