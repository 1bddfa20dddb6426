"""Small specimens aligned at the size the pair registrations are built for.

The pair registrations work at about 1 mm pixels (``sections.WORK_MM``), shrink 4 times at their first level and
smooth by 2 mm: set for sections of 100 mm or more. A 20 mm section (a rat brain) was placed 4-8 pixels off, and
one of 16 mm or less (a mouse brain) left too few pixels and failed. When the widest section is narrower than
SMALL_EXTENT_MM, every section's in-plane geometry (and the reference plane's) is multiplied by ``k`` so that it
is about WORKING_EXTENT_MM wide, and each pair's result is brought back to mm: ``S^-1 M S``, ``S = diag(k, k, 1)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.images2d import read_header_2d
from .pairs import PairResult

SMALL_EXTENT_MM = 100.0
WORKING_EXTENT_MM = 200.0


def stack_scale(paths: list[Path], pixel_mm: float) -> float:
    """``k`` (1: none) from the widest readable section's larger side (mm) at ``pixel_mm``, the one size every
    section is read at, its pixel count read from the headers alone (the sections are read, whole, as they are
    aligned). The widest, not the first: a first image cropped round a fragment (10 mm of a 200 mm stack) scaled
    the whole stack 20 times."""
    pixels = [max(header.size[:2]) for header in filter(None, map(read_header_2d, paths))]
    extent = max(pixels, default=0) * pixel_mm
    return float(f"{WORKING_EXTENT_MM / extent:.2g}") if 0 < extent < SMALL_EXTENT_MM else 1.0


def in_mm(pair: PairResult, k: float) -> PairResult:
    """A pair's matrix (3x3, found at ``k`` times the size) in the sections' own mm."""
    if k == 1.0:
        return pair
    scale = np.diag([k, k, 1.0])
    return PairResult(pair.i, pair.j, np.linalg.inv(scale) @ pair.matrix @ scale, pair.correlation)
