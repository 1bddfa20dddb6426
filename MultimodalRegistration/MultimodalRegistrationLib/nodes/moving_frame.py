"""Nodes on the moving side (landmarks, segmentations) read in the moving volume's own frame: they must sit under
the same transform as the moving volume, or under none (they then mean world points)."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from .landmarks import defined_points, placed_and_skipped, refuse_skipped


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
    """A moving-side list's points in the moving volume's own frame (RAS mm) and their labels; points marked skipped
    are refused."""
    points, labels, skipped = moving_points_and_skipped(markups, moving_volume, role)
    refuse_skipped(markups, role, skipped)
    return points, labels


def moving_points_and_skipped(markups, moving_volume, role: str) -> tuple[np.ndarray, list[str], list[str]]:
    """:func:`moving_points` of the placed points, and the labels of the points marked skipped."""
    world, labels, skipped = placed_and_skipped(markups, role)
    check_moving_frame(markups, moving_volume, f"{role} list")
    if markups.GetParentTransformNode() is None:
        return world, labels, skipped
    local = np.zeros_like(world)
    for row, index in enumerate(defined_points(markups)):
        position = [0.0, 0.0, 0.0]
        markups.GetNthControlPointPosition(index, position)  # its own coordinates: it moves with the volume
        local[row] = position
    return local, labels, skipped
