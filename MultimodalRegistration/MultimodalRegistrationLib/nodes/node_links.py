"""Node IDs a node records (the volumes a result was registered from, its masks, its start), kept right when a
saved scene is added to another: each is an attribute (shown in the Data module; all older scenes hold) and an MRML
node reference of the same name, which MRML renames with the node when the added scene's IDs clash and drops when
the node is deleted. The attribute alone had then named the other case's nodes: QA read MI 0.0 and 'registered with
other volumes', and a rerun started from another case's transform (a helper's sweep)."""

from __future__ import annotations

# Beside each ID recorded as a reference too, the attribute ``<name>.reference`` = "1", per name: a flag for the whole
# node under the registration's prefix had made a landmark fit read as a registration result (nodes.checks), and
# had hidden the IDs an older scene recorded under other names on the same node (a review).
REFERENCE_SUFFIX = ".reference"


def record_node_ids(node, ids: dict[str, str]) -> None:
    """Record ``ids`` (full attribute names to node IDs, "" for none) on ``node`` as attributes and references."""
    for name, node_id in ids.items():
        node.SetAttribute(name, node_id)
        node.SetAttribute(name + REFERENCE_SUFFIX, "1")
        node.RemoveNodeReferenceIDs(name)
        if node_id:
            node.SetNodeReferenceID(name, node_id)


def recorded_node(node, name: str) -> tuple[str | None, object]:
    """(the ID recorded under ``name``, None if none is; the node it names now, None if none or gone): the
    reference's node when there is one; else, for an ID recorded with its reference, the node was deleted; for an
    ID recorded before (an attribute alone), the node it names."""
    referenced = node.GetNodeReference(name)
    if referenced is not None:
        return referenced.GetID(), referenced
    recorded = node.GetAttribute(name)
    if not recorded or node.GetAttribute(name + REFERENCE_SUFFIX) == "1":
        return recorded, None
    return recorded, node.GetScene().GetNodeByID(recorded) if node.GetScene() is not None else None


def gone(recorded: tuple[str | None, object]) -> bool:
    """Whether a :func:`recorded_node` answer names a node that is no longer in the scene."""
    return bool(recorded[0]) and recorded[1] is None


def record_attributes(node, prefix: str, attributes: dict) -> None:
    """Each of ``attributes`` as the attribute ``prefix`` + key (its text); those whose key ends in NodeID also as
    references (:func:`record_node_ids`)."""
    for key, value in attributes.items():
        if key.endswith("NodeID"):
            record_node_ids(node, {prefix + key: str(value)})
        else:
            node.SetAttribute(prefix + key, str(value))
