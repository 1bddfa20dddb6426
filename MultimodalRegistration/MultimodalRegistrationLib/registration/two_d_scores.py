"""Many 2D poses scored at once: mutual information from a joint histogram, for the start search's slid poses.

Mattes' metric (SimpleITK) costs about 3 ms a pose even on 64-pixel images, most of it setting up; the slides of a
partial section multiply the poses by nine (4 steps each way), so they are ranked here (one bilinear lookup and one
histogram for all of them) and only the best few are scored by Mattes' metric again, on finer images.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import map_coordinates

MIN_INSIDE = 0.25  # a pose that maps fewer of the fixed pixels into the moving image scores -inf
CHUNK = 256  # poses a lookup


def _to_physical(image: sitk.Image) -> np.ndarray:
    """3x3: (column, row, 1) -> (x, y, 1) mm."""
    matrix = np.eye(3)
    matrix[:2, :2] = np.asarray(image.GetDirection()).reshape(2, 2) * np.asarray(image.GetSpacing())
    matrix[:2, 2] = image.GetOrigin()
    return matrix


def _bins(values: np.ndarray, bins: int, span: tuple[float, float] | None = None) -> np.ndarray:
    """Bin indices of ``values`` over ``span`` (low, high), else over their own range."""
    low, high = span if span is not None else (float(np.min(values)), float(np.max(values)))
    return np.clip(((values - low) / max(high - low, 1e-12) * bins).astype(int), 0, bins - 1)


def histogram_information(fixed: sitk.Image, moving: sitk.Image, matrices: np.ndarray, bins: int = 32) -> np.ndarray:
    """Mutual information (nats) of the pair through each (K, 3, 3) fixed -> moving matrix (mm), over every fixed
    pixel mapped inside the moving image (bilinear); -inf where fewer than MIN_INSIDE of them are."""
    fixed_values = sitk.GetArrayFromImage(fixed).astype(np.float64)
    moving_values = sitk.GetArrayFromImage(moving).astype(np.float64)
    rows, columns = np.indices(fixed_values.shape)
    pixels = np.stack([columns.ravel(), rows.ravel(), np.ones(rows.size)])
    fixed_bins = _bins(fixed_values.ravel(), bins)
    to_index = np.linalg.inv(_to_physical(moving)) @ np.asarray(matrices, float) @ _to_physical(fixed)  # (K, 3, 3)
    scores = np.full(len(to_index), -np.inf)
    for start in range(0, len(to_index), CHUNK):
        index = to_index[start : start + CHUNK] @ pixels  # (k, 3, N): column, row
        values = map_coordinates(moving_values, [index[:, 1].ravel(), index[:, 0].ravel()], order=1,
                                 mode="constant", cval=np.nan).reshape(len(index), -1)  # fmt: skip
        inside = ~np.isnan(values)
        moving_bins = _bins(np.nan_to_num(values), bins, (float(moving_values.min()), float(moving_values.max())))
        cells = (np.arange(len(index))[:, None] * bins + fixed_bins[None]) * bins + moving_bins
        joint = np.bincount(cells[inside], minlength=len(index) * bins * bins).reshape(len(index), bins, bins)
        counts = joint.sum(axis=(1, 2)).astype(float)
        p = joint / np.maximum(counts, 1)[:, None, None]
        outer = p.sum(axis=2, keepdims=True) * p.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p / np.where(outer > 0, outer, 1)), 0.0)
        information = terms.sum(axis=(1, 2))
        scores[start : start + CHUNK] = np.where(counts >= MIN_INSIDE * fixed_bins.size, information, -np.inf)
    return scores
