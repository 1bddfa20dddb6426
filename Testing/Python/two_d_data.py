"""A 2D pair with exact truth (issue 23): a T1-like MR slice (2D NRRD) and an H&E-like RGB section (PNG) of the
same plane of the analytic head, the section moved by a known 2D transform.

Frames: the slice's pixel (column i, row j) is at ``x_f = (i px, j px)`` mm, and head coordinates are
``x_f - canvas centre`` at height 0. The section shows the head at ``x_m = truth @ x_f``. Both show the phantom's
tissues and the vessels of :data:`stack_data.TUBES` (each its own T1 value), which pin down scale and shear.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import stack_data
from MultimodalRegistrationLib.core.phantom import TISSUES, tissue_fractions
from PIL import Image

CANVAS = (200.0, 230.0)
TUBE_T1 = (60.0, 520.0, 120.0, 20.0, 480.0, 160.0)  # one per stack_data.TUBES entry


def mr_slice(path: Path, pixel_mm: float = 1.0, noise: float = 8.0) -> np.ndarray:
    """Write the T1-like slice; return fixed points (mm, inside the head, on an 8 mm grid) for errors."""
    columns, rows = (np.asarray(CANVAS) / pixel_mm).astype(int)
    jj, ii = np.mgrid[0:rows, 0:columns]
    head = np.stack([ii * pixel_mm - CANVAS[0] / 2, jj * pixel_mm - CANVAS[1] / 2, np.zeros(ii.shape)], -1)
    fractions = tissue_fractions(head.astype(np.float32))
    t1 = sum(TISSUES[name][1] * fraction for name, fraction in fractions.items())
    inside = 1 - fractions["air"] - fractions["scalp"] - fractions["skull"]
    for (x, y, radius, (z_low, z_high), _, _), value in zip(stack_data.TUBES, TUBE_T1):
        if z_low <= 0 <= z_high:
            tube = np.clip(radius - np.hypot(head[..., 0] - x, head[..., 1] - y) + 0.5, 0, 1) * inside
            t1 = t1 * (1 - tube) + value * tube
    t1 = t1 + np.random.default_rng(0).normal(0, noise, t1.shape)
    image = sitk.GetImageFromArray(t1.astype(np.float32))
    image.SetSpacing((pixel_mm, pixel_mm))
    sitk.WriteImage(image, str(path))
    grid = np.stack(np.meshgrid(np.arange(20, 180, 8.0), np.arange(20, 210, 8.0)), -1).reshape(-1, 2)
    head_points = np.concatenate([grid - np.asarray(CANVAS) / 2, np.zeros((len(grid), 1))], 1)
    return grid[tissue_fractions(head_points)["air"] < 0.5]


def truth_of(kind: str) -> np.ndarray:
    """The 3x3 truth (fixed -> moving mm): 35 deg and (6, -4) mm about the centre; ``similarity`` shrinks it to
    0.93, ``affine`` to 0.93 x 0.97 with a little shear (shrunk tissue)."""
    truth = stack_data.rigid(35.0, (6.0, -4.0), np.asarray(CANVAS) / 2)
    linear = {"rigid": np.eye(2), "similarity": 0.93 * np.eye(2), "affine": np.array([[0.93, 0.02], [0.0, 0.97]])}
    truth[:2, :2] = truth[:2, :2] @ linear[kind]
    return truth


def he_section(path: Path, truth: np.ndarray, pixel_mm: float = 0.5, rgba: bool = False) -> None:
    """Write the H&E-like RGB section (PNG without a pixel size) of the head seen through ``truth``."""
    rgb = stack_data.render(truth, 0.0, pixel_mm, CANVAS, seed=1)
    if rgba:
        rgb = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    Image.fromarray(rgb).save(path)


def errors_mm(matrix: np.ndarray, truth: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distances (mm) in the moving image between the points mapped by ``matrix`` and by ``truth``."""
    mapped = points @ matrix[:2, :2].T + matrix[:2, 2]
    return np.linalg.norm(mapped - (points @ truth[:2, :2].T + truth[:2, 2]), axis=1)


def head_mask(path: Path, truth: np.ndarray, pixel_mm: float) -> None:
    """Write the head's mask (uint8 NRRD, 1 inside) on a ``pixel_mm`` canvas seen through ``truth``
    (the identity: the fixed slice's mask)."""
    columns, rows = (np.asarray(CANVAS) / pixel_mm).astype(int)
    jj, ii = np.mgrid[0:rows, 0:columns]
    x_in = np.stack([ii * pixel_mm, jj * pixel_mm], -1).reshape(-1, 2)
    inverse = np.linalg.inv(truth)
    x_out = x_in @ inverse[:2, :2].T + inverse[:2, 2] - np.asarray(CANVAS) / 2
    head = np.concatenate([x_out, np.zeros((len(x_out), 1))], 1).astype(np.float32)
    inside = (tissue_fractions(head)["air"] < 0.5).reshape(rows, columns)
    image = sitk.GetImageFromArray(inside.astype(np.uint8))
    image.SetSpacing((pixel_mm, pixel_mm))
    sitk.WriteImage(image, str(path))
