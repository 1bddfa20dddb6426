"""2D registration (issue 23): a histology or microscopy image to a 2D image of another modality.

Both images are read by :func:`core.images2d.read_image_2d` (RGB to BT.601 luminance, pixel size from the
file or given), so pixel (column i, row j) is at ``(i px, j px)`` mm in each. The result maps fixed points
to moving points, ``x_moving = A x_fixed + t`` (mm), like every library transform.

1. start: the 2D any-pose search (:mod:`.two_d_start`: every rotation, and scale for a preset that scales);
2. the engine's 2D preset (``Presets/presets_2d.json``) refines it (:func:`engines.run.run_engine_2d`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.images2d import Image2D
from ..core.transforms import affine_2d
from ..engines.presets import load_preset
from ..engines.request_2d import EngineRequest2D
from ..engines.run import run_engine_2d
from .two_d_start import Start2D, search_start_2d


@dataclass
class Registration2D:
    """``matrix`` (3x3, mm): ``x_moving = matrix @ x_fixed``; the start it came from, the engine, preset, its
    files and the engine's version and threads that made it, its log, and seconds (``search_s``, engine import
    and registration)."""

    matrix: np.ndarray
    start: Start2D
    engine: str
    preset: str
    version: str
    log: str
    timings: dict = field(default_factory=dict)
    preset_files: list[str] = field(default_factory=list)
    threads: int = 1

    def transform(self) -> sitk.AffineTransform:
        """The result as a 2D ITK affine transform (fixed -> moving; written as AffineTransform_double_2_2)."""
        return affine_2d(self.matrix)

    @property
    def angle_deg(self) -> float:
        """The rotation of the result (degrees, counter-clockwise from the x axis to y)."""
        return float(
            np.degrees(np.arctan2(self.matrix[1, 0] - self.matrix[0, 1], self.matrix[0, 0] + self.matrix[1, 1]))
        )

    @property
    def scales(self) -> tuple[float, float]:
        """The singular values of the linear part (moving mm per fixed mm): 1, 1 for a rigid result."""
        values = np.linalg.svd(self.matrix[:2, :2], compute_uv=False)
        return float(values[0]), float(values[1])


def register_2d(
    fixed: Image2D, moving: Image2D, engine: str, preset: str, workdir: Path, seed: int = 0,
    threads: int | None = None, fixed_mask: sitk.Image | None = None, moving_mask: sitk.Image | None = None,
) -> Registration2D:  # fmt: skip
    """Register ``moving`` to ``fixed`` with ``engine``'s 2D ``preset`` (see the module notes)."""
    loaded = load_preset(engine, preset, dimension=2)
    fixed_gray, moving_gray = fixed.gray, moving.gray
    started = time.perf_counter()
    start = search_start_2d(fixed_gray, moving_gray, loaded.scales, fixed_mask, moving_mask)
    searched = time.perf_counter()
    request = EngineRequest2D(
        fixed_gray, moving_gray, loaded, start.matrix, Path(workdir), fixed_mask, moving_mask, seed, threads
    )
    output = run_engine_2d(request)
    timings = {"search_s": round(searched - started, 3), **output.timings}
    return Registration2D(
        output.matrix, start, engine, loaded.name, output.version, output.log, timings, loaded.files, output.threads
    )
