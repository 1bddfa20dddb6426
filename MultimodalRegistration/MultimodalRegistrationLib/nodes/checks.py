"""Checks on input nodes shared by the node-level calls (registration, preparation, QA)."""

from __future__ import annotations

from ..core.errors import InputError


def check_volume_pair(fixed_volume, moving_volume, otherwise: str = "take it out of the transform") -> None:
    """Raise :class:`InputError` naming the fix unless fixed and moving are two different scalar volume nodes
    and the fixed one is under no transform.

    Labelmaps are refused: a labelmap is a mask or a segmentation, not an image to register.
    ``otherwise`` is the fix offered besides hardening when the fixed volume is under a transform.
    """
    for role, node in (("fixed", fixed_volume), ("moving", moving_volume)):
        if node is None or not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
            raise InputError(f"select the {role} volume: a scalar volume node (not a labelmap) is needed")
    if fixed_volume is moving_volume:
        raise InputError("the fixed and moving volumes are the same node: select two different volumes")
    if fixed_volume.GetParentTransformNode() is not None:
        raise InputError(
            f"the fixed volume '{fixed_volume.GetName()}' is under a transform: harden it first "
            f"(Data module, right-click the transform, 'Harden transform'), or {otherwise}"
        )
