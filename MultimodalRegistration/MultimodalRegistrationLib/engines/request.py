"""What an engine is asked to do: one run of one preset from one start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from ..core.transforms import Transform
from .guidance_terms import EngineGuidance
from .presets import Preset


@dataclass
class EngineRequest:
    """One engine run: register ``moving`` to ``fixed`` (LPS images) with ``preset`` from ``initial``
    (fixed -> moving, LPS mm), sampling the fixed image inside ``fixed_mask`` and counting only moving
    points inside ``moving_mask``. ``guidance`` adds segment channels and corresponding points to the
    image metric (None: the preset unchanged). ``workdir`` is an empty folder the run may write to;
    ``progress(fraction, stage, **details)`` hears of it."""

    fixed: sitk.Image
    moving: sitk.Image
    preset: Preset
    initial: Transform
    workdir: Path
    fixed_mask: sitk.Image | None = None
    moving_mask: sitk.Image | None = None
    seed: int = 0
    threads: int | None = None
    progress: Callable[..., None] = lambda fraction, stage, **details: None
    guidance: EngineGuidance | None = None
