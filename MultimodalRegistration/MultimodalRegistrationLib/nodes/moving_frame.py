"""Nodes on the moving side (landmarks, segmentations) read in the moving volume's own frame: they must sit under
the same transform as the moving volume, or under none (they then mean world points)."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from .landmarks import placed_points


def same_frame(node, volume) -> bool:
    """Whether ``node`` sits under the same parent transform as ``volume`` (or both under none)."""
    return node.GetTransformNodeID() == volume.GetTransformNodeID()


def check_moving_frame(node, moving_volume, role: str) -> None:
    """Refuse a moving-side node under another transform than the moving volume's, naming the fix."""
    if node.GetParentTransformNode() is not None and not same_frame(node, moving_volume):
        volume_parent = moving_volume.GetParentTransformNode()
        where = f"under '{volume_parent.GetName()}'" if volume_parent else "under no transform"
        raise InputError(
            f"the {role} '{node.GetName()}' is under transform '{node.GetParentTransformNode().GetName()}' but the "
            f"moving volume is {where}, so it is unclear where its points are on the moving image: put it under "
            "the same transform as the moving volume, or take it out of its transform (Data module)"
        )


def moving_points(markups, moving_volume, role: str = "moving points") -> tuple[np.ndarray, list[str]]:
    """A moving-side list's points in the moving volume's own frame (RAS mm) and their labels."""
    world, labels = placed_points(markups, role)
    check_moving_frame(markups, moving_volume, f"{role} list")
    if markups.GetParentTransformNode() is None:
        return world, labels
    local = np.zeros_like(world)
    for index in range(len(local)):
        position = [0.0, 0.0, 0.0]
        markups.GetNthControlPointPosition(index, position)  # its own coordinates: it moves with the volume
        local[index] = position
    return local, labels
