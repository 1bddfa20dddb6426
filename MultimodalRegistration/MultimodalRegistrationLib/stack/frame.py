"""The volume's plane grid when the sections' images differ in size (slides scanned with other margins).

The volume keeps the first section's plane size when every section's image has that size. Otherwise the
first size can cut the others' tissue (sections with 50 mm more glass on two sides lost 17-18% of their tissue):
the plane then spans every section's image mapped into the volume (``x_out = P_k^-1 x_in``), and the poses
are moved so that the grid still starts at (0, 0). Sizes in pixels (columns, rows), poses 3x3 in mm.
"""

from __future__ import annotations

import numpy as np

SIZE_TOLERANCE = 0.01


def plane_frame(poses: np.ndarray, sizes: dict[int, list[int]], pixel_mm: float) -> tuple[np.ndarray, list[int]] | None:
    """(shift (mm) to add to ``x_out``, plane size) spanning every section's image, or None when all images have
    the first one's size. ``sizes``: section -> its image size."""
    if not sizes:
        return None
    first = np.asarray(next(iter(sizes.values())), float)
    if all(np.all(np.abs(np.asarray(size) / first - 1) <= SIZE_TOLERANCE) for size in sizes.values()):
        return None
    corners = []
    for k, size in sizes.items():
        if not np.all(np.isfinite(poses[k])):
            continue
        w, h = (np.asarray(size, float) - 1) * pixel_mm
        image = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float)
        corners.append(image @ np.linalg.inv(poses[k]).T)
    points = np.concatenate(corners)[:, :2]
    low, high = points.min(axis=0), points.max(axis=0)
    size = [int(v) for v in np.ceil((high - low) / pixel_mm).astype(int) + 1]
    return low, size


def shifted(pose: np.ndarray, shift_mm: np.ndarray) -> np.ndarray:
    """``pose`` for a volume whose plane starts at ``shift_mm`` of the old one: ``x_in = P (x_out' + shift)``."""
    move = np.eye(3)
    move[:2, 2] = shift_mm
    return pose @ move
