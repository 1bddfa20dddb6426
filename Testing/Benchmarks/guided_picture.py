"""The before/after picture of docs/guided.md: the MR and the ultrasound-like image in checkerboard squares
with both gland contours, at the centre alignment and after a registration."""

from __future__ import annotations

from pathlib import Path

import bench_paths  # noqa: F401 (first: the library and the test-data makers on sys.path)
import numpy as np
import SimpleITK as sitk
from guided_common import ROOT, target_errors
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment

PICTURE = ROOT / "Resources" / "Screenshots" / "guided_before_after.png"


def _slice_grid(center, half_width_mm: float, pixel_mm: float) -> sitk.Image:
    """A one-voxel-thick axial grid (LPS, identity direction) centred on ``center``."""
    size = round(2 * half_width_mm / pixel_mm) + 1
    grid = sitk.Image([size, size, 1], sitk.sitkFloat32)
    grid.SetSpacing((pixel_mm, pixel_mm, pixel_mm))
    grid.SetOrigin((center[0] - half_width_mm, center[1] - half_width_mm, float(center[2])))
    return grid


def _grid_points(grid: sitk.Image) -> np.ndarray:
    """LPS mm of the pixels of a one-voxel-thick axis-aligned grid, shaped (rows, columns, 3)."""
    rows, columns = np.indices(grid.GetSize()[1::-1], dtype=float)
    spacing, origin = np.asarray(grid.GetSpacing()), np.asarray(grid.GetOrigin())
    return np.stack(
        [origin[0] + columns * spacing[0], origin[1] + rows * spacing[1], np.full_like(rows, origin[2])], -1
    )


def on_grid(image: sitk.Image, grid: sitk.Image, interpolation, through: Transform | None = None) -> np.ndarray:
    """``image`` resampled on the one-slice ``grid`` (through ``through``, fixed -> moving), as a 2D float array."""
    moved = sitk.Resample(image, grid, (through or Transform.identity()).sitk, interpolation, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(moved)[0]


def grey(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``values`` scaled to 0..1 between their 1st and 99th percentiles inside ``where``."""
    low, high = np.percentile(values[where], [1, 99]) if where.any() else (0.0, 1.0)
    return np.clip((values - low) / max(high - low, 1e-6), 0, 1)


def squares(shape: tuple, pixel_mm: float, square_mm: float) -> np.ndarray:
    """A checkerboard of ``square_mm`` squares over pixels of ``pixel_mm`` (True on every other square)."""
    rows, columns = np.indices(shape)
    return ((rows * pixel_mm // square_mm + columns * pixel_mm // square_mm) % 2).astype(bool)


def _panel(pair, transform: Transform, grid: sitk.Image, square_mm: float = 8.0):
    """(RGB checkerboard of the MR and the ultrasound-like image mapped through ``transform`` inside the fan,
    the MR gland, the ultrasound gland) on ``grid``, as 2D arrays."""
    mr = on_grid(pair.fixed, grid, sitk.sitkLinear)
    us = on_grid(pair.moving, grid, sitk.sitkLinear, transform)
    fan = on_grid(pair.moving_mask, grid, sitk.sitkNearestNeighbor, transform) > 0
    # The glands' signed distances (mm, positive inside) from the analytic anatomy: smooth contours at 0.
    points = _grid_points(grid)
    fixed_gland = pair.gland.distance(points)
    moving_gland = pair.gland.distance(pair.fixed_points_of(transform.transform_points(points.reshape(-1, 3))))
    moving_gland = moving_gland.reshape(points.shape[:-1])
    mr_grey, us_grey = grey(mr, np.ones_like(fan)), grey(us, fan)
    shown = np.where(fan & squares(mr.shape, grid.GetSpacing()[0], square_mm), us_grey, mr_grey)
    return np.repeat(shown[..., None], 3, axis=-1), fixed_gland, moving_gland


def save_picture(pair, after: Transform, after_title: str, path: Path, start: Transform | None = None) -> Path:
    """Side by side: the MR with the ultrasound-like image in checkerboard squares (inside its fan) and both gland
    contours (MR cyan, ultrasound orange), at the centre alignment and after ``after``; a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = start or centre_alignment(pair.fixed, pair.moving, None, "geometry")
    grid = _slice_grid(pair.gland.center, 38.0, 0.4)
    panels = [(start, "start: image centres aligned"), (after, after_title)]
    figure, axes = plt.subplots(1, 2, figsize=(8.0, 4.25), dpi=100)
    for axis, (transform, title) in zip(axes, panels):
        rgb, fixed_gland, moving_gland = _panel(pair, transform, grid)
        error = np.median(target_errors(pair, transform))
        draw_glands(axis, rgb, (fixed_gland, "#00e5ff"), (moving_gland, "#ff9500"),
                    f"{title}\nmedian target error {error:.1f} mm")
    figure.text(0.5, 0.02, "MR / ultrasound-like checkerboard (8 mm squares, inside the fan); gland: MR cyan, "
                "ultrasound orange", ha="center", fontsize=8.5)  # fmt: skip
    figure.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.06, wspace=0.03)
    return save_small_png(figure, path)


def draw_glands(axis, rgb: np.ndarray, first: tuple, second: tuple, title: str) -> None:
    """One panel: the checkerboard ``rgb`` and two glands' outlines, each (values positive inside, colour); the
    second is left out where it does not reach the slice."""
    axis.imshow(rgb, origin="upper", interpolation="nearest")
    for index, (values, colour) in enumerate((first, second)):
        if index == 0 or (values > 0).any():
            axis.contour(values, levels=[0.0], colors=[colour], linewidths=1.4)
    axis.set_title(title, fontsize=10)
    axis.set_axis_off()


def save_small_png(figure, path: Path) -> Path:
    """Write a matplotlib ``figure`` to ``path`` as a PNG of 128 colours (a few tens of kB), and close it."""
    import matplotlib.pyplot as plt
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp.png")
    figure.savefig(scratch, dpi=100)
    plt.close(figure)
    Image.open(scratch).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    scratch.unlink()
    return path
