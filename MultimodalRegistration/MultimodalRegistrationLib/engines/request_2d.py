"""What a 2D engine run is asked to do, and what it hands back (see :func:`.run.run_engine_2d`).

2D images here have origin (0, 0), identity direction and square pixels (:mod:`..core.images2d`), so a
point is ``(i px, j px)`` mm for pixel (column i, row j). Matrices are 3x3 homogeneous, fixed -> moving (mm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .presets import Preset


@dataclass
class EngineRequest2D:
    """Register ``moving`` to ``fixed`` (one-channel float 2D images) with a 2D ``preset`` from ``initial``
    (3x3, fixed -> moving mm); masks (nonzero: counts) limit the metric. ``workdir`` is an empty folder."""

    fixed: sitk.Image
    moving: sitk.Image
    preset: Preset
    initial: np.ndarray
    workdir: Path
    fixed_mask: sitk.Image | None = None
    moving_mask: sitk.Image | None = None
    seed: int = 0
    threads: int | None = None


@dataclass
class EngineOutput2D:
    """``matrix`` (3x3, fixed -> moving mm, the start included), the engine's log, version, threads and seconds."""

    matrix: np.ndarray
    log: str
    version: str
    threads: int
    timings: dict = field(default_factory=dict)
