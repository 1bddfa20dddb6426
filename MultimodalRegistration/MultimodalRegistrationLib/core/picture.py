"""A slice's picture: its pixels laid out as Slicer's standard view of its plane shows them, columns to the right
and rows downward, so that a section photographed upright (a PNG, shown upright in the axial view) meets an MR
slice the right way round however either file stores its rows: the 2D search turns, it does not mirror. LPS."""

from __future__ import annotations

import numpy as np

# Slicer's standard views (vtkMRMLSliceNode's axial, coronal and sagittal orientations): the plane's normal, then
# the LPS directions of screen right and of screen down in it.
VIEWS_LPS = (
    ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),  # axial: right = L, down = P
    ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),  # coronal: right = L, down = I
    ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),  # sagittal: right = P, down = I
)


def picture_axes(columns: np.ndarray) -> tuple[tuple[int, bool], tuple[int, bool]]:
    """For a slice whose two pixel axes run along ``columns[:, 0]`` and ``columns[:, 1]`` and whose normal is
    ``columns[:, 2]`` (3x3, LPS, any lengths): (the pixel axis, 0 or 1, that runs across the picture, and whether
    it runs leftward), (the one that runs down it, and whether it runs upward)."""
    units = np.asarray(columns, float) / np.linalg.norm(columns, axis=0)
    _, right, down = max(VIEWS_LPS, key=lambda view: abs(float(units[:, 2] @ np.asarray(view[0]))))
    across = 0 if abs(units[:, 0] @ right) >= abs(units[:, 1] @ right) else 1
    downward = 1 - across
    return (across, bool(units[:, across] @ right < 0)), (downward, bool(units[:, downward] @ down < 0))
