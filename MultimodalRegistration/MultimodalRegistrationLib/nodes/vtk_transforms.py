"""Transform nodes without Slicer's own modules: a node's parent chain, and whether ITK can read what it holds."""

from __future__ import annotations

from ..core.errors import InputError


def check_itk_can_read(node) -> None:
    """Refuse a transform node ITK cannot read once Slicer writes it, naming the node and the fix: a thin-plate
    spline (the message had named a deleted scratch file; a helper's sweep)."""
    if holds_thin_plate_spline(node.GetTransformToParent()):
        raise InputError(
            f"transform '{node.GetName()}' is a thin-plate spline (Landmark Registration, Fiducial Registration "
            "Wizard), which ITK cannot read: convert it to a grid transform (Transforms module, Convert, with the "
            "fixed volume as reference region) or harden it, or fit it with FiducialPrealign's tps"
        )


def holds_thin_plate_spline(transform) -> bool:
    """Whether a VTK transform is, or concatenates, a thin-plate spline: Slicer writes it as an ITK kernel transform
    that ITK cannot read back."""
    if transform is None:
        return False
    if transform.IsA("vtkThinPlateSplineTransform"):
        return True
    if transform.IsA("vtkGeneralTransform"):
        return any(holds_thin_plate_spline(transform.GetConcatenatedTransform(i))
                   for i in range(transform.GetNumberOfConcatenatedTransforms()))  # fmt: skip
    return False


def parent_transforms(node) -> list:
    """The transformable node's parent transform nodes, the direct parent first."""
    parents = []
    parent = node.GetParentTransformNode()
    while parent is not None:
        parents.append(parent)
        parent = parent.GetParentTransformNode()
    return parents


def is_under(node, transform_node) -> bool:
    """True when ``transform_node`` is in ``node``'s parent-transform chain."""
    return any(parent is transform_node for parent in parent_transforms(node))
