"""Corresponding points as images, for an engine without a reliable point metric (ANTs).

Each point becomes a Gaussian blob (peak 1) on an image grid; the fixed blobs on the fixed grid and
the moving blobs on the moving grid, compared by mean squares, pull each fixed point onto its moving
point. Points and grids are in LPS mm.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

BLOB_SIGMA_MM = 4.0
_REACH_SIGMAS = 4.0  # beyond 4 sigma a blob is below 4e-4 of its peak: left out


def render_point_blobs(points_lps: np.ndarray, reference: sitk.Image, sigma_mm: float = BLOB_SIGMA_MM) -> sitk.Image:
    """A float32 image on ``reference``'s grid: the sum of one Gaussian (``sigma_mm``, peak 1) per LPS point (mm)."""
    size = np.array(reference.GetSize())  # x, y, z
    spacing = np.array(reference.GetSpacing())
    origin = np.array(reference.GetOrigin())
    direction = np.asarray(reference.GetDirection(), float).reshape(3, 3)
    array = np.zeros(size[::-1], np.float32)  # z, y, x
    # The direction is orthonormal, so a ball of this radius fits in a box of radius/spacing voxels per axis.
    reach = np.ceil(_REACH_SIGMAS * sigma_mm / spacing).astype(int)
    for point in np.asarray(points_lps, float).reshape(-1, 3):
        centre = np.linalg.solve(direction * spacing, point - origin)  # continuous index (x, y, z)
        low = np.maximum(np.floor(centre).astype(int) - reach, 0)
        high = np.minimum(np.ceil(centre).astype(int) + reach, size - 1)
        if np.any(low > high):
            continue  # the blob lies wholly outside this grid
        axes = [np.arange(low[k], high[k] + 1) for k in range(3)]
        index = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)  # (nx, ny, nz, 3)
        offset = (index - centre) * spacing @ direction.T  # mm from the point, LPS
        blob = np.exp(-0.5 * np.sum(offset**2, axis=-1) / sigma_mm**2).astype(np.float32)
        array[axes[2][0] : axes[2][-1] + 1, axes[1][0] : axes[1][-1] + 1, axes[0][0] : axes[0][-1] + 1] += (
            blob.transpose(2, 1, 0)
        )
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image
