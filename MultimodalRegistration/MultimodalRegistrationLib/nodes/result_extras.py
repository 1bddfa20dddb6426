"""What a registration result node carries beside its transform, and what an earlier run into it left: the engine's
inverse (a node it references), a piecewise run's segment nodes, and the way Invert has turned it. Shared by the
registration, its 2D form, FiducialPrealign's fits into a former result, QA and the panel's Invert and Harden."""

from __future__ import annotations

from . import mrml
from .job import REGISTRATION_ATTRIBUTE_PREFIX as ATTRIBUTE_PREFIX
from .node_links import recorded_node


def earlier_segment_nodes(scene, field_node) -> list:
    """The per-segment transform nodes an earlier piecewise run left for ``field_node``: a later run into the node
    replaces them."""
    nodes = scene.GetNodesByClass("vtkMRMLTransformNode")
    found = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
    return [node for node in found if recorded_node(node, ATTRIBUTE_PREFIX + "fieldNodeID")[1] is field_node]


def earlier_extras(scene, node) -> list:
    """The nodes an earlier run into the result ``node`` left beside it (its engine's inverse, a piecewise run's
    segment nodes), stale once a linear result replaces it; their references and attributes on ``node`` go. The
    caller removes them once nothing can fail (a 2D run into a former 3D result had kept its inverse)."""
    stale = earlier_segment_nodes(scene, node)
    node.RemoveAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian")
    inverse = node.GetNodeReference(ATTRIBUTE_PREFIX + "inverse")
    node.RemoveNodeReferenceIDs(ATTRIBUTE_PREFIX + "inverse")
    return stale + ([inverse] if inverse is not None else [])


INVERTED = " (-)"  # what vtkMRMLTransformNode.InverseName appends to a node's name (and takes off again)


def named_forward(node) -> None:
    """Take Invert's INVERTED off a node about to hold a new result, which faces fixed -> moving."""
    if node.GetName().endswith(INVERTED):
        node.InverseName()


INVERTED_ATTRIBUTE = ATTRIBUTE_PREFIX + "inverted"  # "1" while Invert has turned the node around


def is_inverted(node) -> bool:
    """Whether the module's **Invert** has turned the result node around (it then maps moving to fixed)."""
    return node is not None and node.GetAttribute(INVERTED_ATTRIBUTE) == "1"


def hardens_as_registered(moving, node) -> bool:
    """Whether Harden would resample the moving volume as registered: the result node is its parent (not higher: a
    second click would apply it twice), and the node faces fixed -> moving. Under an inverted node it is shown
    through the inverse: hardening that (the module had offered it) resamples it the wrong way, for good."""
    return moving is not None and node is not None and moving.GetParentTransformNode() == node and not is_inverted(node)


def invert_result(node, moving=None) -> str:
    """Turn a result node around in place (it then maps moving to fixed), and the engine's inverse it references
    with it, so that the reference stays the node's inverse (the module's **Invert**). Returns what the panel says
    of it: which way the node now faces, and what a ``moving`` volume under it now shows."""
    node.Inverse()
    node.InverseName()
    inverse = node.GetNodeReference(ATTRIBUTE_PREFIX + "inverse")
    if inverse is not None:
        inverse.Inverse()
        inverse.InverseName()
    node.SetAttribute(INVERTED_ATTRIBUTE, "0" if is_inverted(node) else "1")
    if not is_inverted(node):
        return f"'{node.GetName()}' faces fixed to moving again, as registered"
    said = f"'{node.GetName()}' now maps moving to fixed: put the fixed volume under it to see it in the moving space"
    if moving is not None and mrml.is_under(moving, node):
        said += (f"; '{moving.GetName()}', still under it, is shown through the inverse, and Harden is off until "
                 "Invert turns it back")  # fmt: skip
    return said
