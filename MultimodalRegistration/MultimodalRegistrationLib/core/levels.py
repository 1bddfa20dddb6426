"""A registration level given in mm: the whole-voxel shrink factor that takes an image there."""

from __future__ import annotations


def shrink_factor(level_mm: float, voxel_mm: float) -> int:
    """How many voxels of ``voxel_mm`` (mm) make one voxel of a level at ``level_mm`` (mm): the nearest whole
    number, at least 1 (a level finer than the image runs at full resolution)."""
    return max(1, int(round(level_mm / voxel_mm)))
