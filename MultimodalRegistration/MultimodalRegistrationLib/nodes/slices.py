"""Single-slice volume nodes (a slide or photograph as Slicer loads it, one coronal or sagittal slice cut from a
volume) as the 2D pictures the 2D registration compares: which axis is thin, the picture's layout as Slicer's
standard view shows the slice, and the pixels both ways."""

from __future__ import annotations

import numpy as np
from vtk.util import numpy_support

from ..core.picture import picture_axes
from ..core.transforms import lps_ras_points
from .mrml import ijk_to_ras


def slice_axes(node) -> tuple[int, int, int] | None:
    """(the two in-plane IJK axes in index order, the thin axis) for a volume node one voxel thick along exactly
    one axis (a 2D image as Slicer loads it, thin along K; or one coronal or sagittal slice cut from a volume);
    else None."""
    data = node.GetImageData() if node is not None else None
    if data is None:
        return None
    thin = [axis for axis, size in enumerate(data.GetDimensions()) if size == 1]
    if len(thin) != 1:
        return None
    first, second = (axis for axis in range(3) if axis != thin[0])
    return first, second, thin[0]


def is_single_slice(node) -> bool:
    """Whether a volume node holds image data one slice thick (see :func:`slice_axes`)."""
    return slice_axes(node) is not None


def slice_to_ijk(node) -> np.ndarray:
    """4x4: a single-slice volume's picture (column, row, slice) -> its IJK, a signed permutation. The picture is
    the slice as Slicer's standard view of its plane shows it, columns to the right and rows downward, so that a
    section photographed upright (a PNG as Slicer loads it, shown upright in the axial view) meets a coronal or
    sagittal slice the right way round: the 2D search turns, it does not mirror."""
    first, second, thin = slice_axes(node)
    columns = lps_ras_points(ijk_to_ras(node)[:3, :3].T).T[:, [first, second, thin]]  # each IJK axis in LPS
    (across, leftward), (downward, upward) = picture_axes(columns)
    column, row = (first, second)[across], (first, second)[downward]
    size = node.GetImageData().GetDimensions()
    matrix = np.zeros((4, 4))
    matrix[thin, 2] = matrix[3, 3] = 1.0
    for axis, picture_axis, reversed_ in ((column, 0, leftward), (row, 1, upward)):
        matrix[axis, picture_axis] = -1.0 if reversed_ else 1.0
        matrix[axis, 3] = size[axis] - 1.0 if reversed_ else 0.0
    return matrix


def slice_frame(node) -> np.ndarray:
    """4x4: a single-slice volume's picture (column, row, slice indices) -> RAS mm; its third column is the slice's
    normal, as long as the slice is thick."""
    return ijk_to_ras(node) @ slice_to_ijk(node)


def _picture_layout(node) -> tuple[int, bool, int, bool, int]:
    """(column IJK axis, reversed, row IJK axis, reversed, thin axis) of :func:`slice_to_ijk`."""
    matrix = slice_to_ijk(node)
    column, row = int(np.argmax(np.abs(matrix[:3, 0]))), int(np.argmax(np.abs(matrix[:3, 1])))
    return column, matrix[column, 0] < 0, row, matrix[row, 1] < 0, slice_axes(node)[2]


def slice_array(node) -> np.ndarray:
    """A single-slice volume's picture (:func:`slice_to_ijk`) as (rows, columns) or, with several components
    (RGB), (rows, columns, c)."""
    data = node.GetImageData()
    components = data.GetNumberOfScalarComponents()
    voxels = numpy_support.vtk_to_numpy(data.GetPointData().GetScalars()).reshape(*data.GetDimensions()[::-1], components)
    ijk = voxels.transpose(2, 1, 0, 3)  # (I, J, K, c)
    column, column_reversed, row, row_reversed, thin = _picture_layout(node)
    picture = np.moveaxis(ijk, (row, column, thin), (0, 1, 2))[:, :, 0]
    picture = picture[::-1] if row_reversed else picture
    picture = picture[:, ::-1] if column_reversed else picture
    return picture if components > 1 else picture[..., 0]


def slice_voxels(node, picture: np.ndarray) -> np.ndarray:
    """The inverse of :func:`slice_array`: a picture on ``node``'s slice as a (K, J, I[, c]) array in its layout."""
    column, column_reversed, row, row_reversed, thin = _picture_layout(node)
    picture = picture[::-1] if row_reversed else picture
    picture = picture[:, ::-1] if column_reversed else picture
    stacked = picture[:, :, np.newaxis]  # (row, column, slice[, c])
    ijk = np.moveaxis(stacked, (0, 1, 2), (row, column, thin))
    return ijk.transpose(2, 1, 0, *range(3, ijk.ndim))
