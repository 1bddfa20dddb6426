"""The recorded ``mmreg`` command line of a run on nodes, with its scratch files named after their nodes.

A run on nodes writes its input nodes to a scratch folder that is removed when it ends, so the command line the
worker records names files that no longer exist. For "Copy as command" each of those files is named after the
node it came from or went to: the node's own file when it was loaded from one and not changed since, else
``<node name><suffix>`` (save the node there to repeat the run).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core import command_line


def node_file(node, suffix: str, tail: str = "") -> str:
    """Where ``node`` is on disk, else its name with ``tail`` and ``suffix`` (".nrrd", ".h5"). Only a volume or
    transform loaded from a file, unchanged since and under no transform, is its file: a segmentation's file is
    not the labelmap the run read, and a node under a transform is not where its file puts it."""
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    own = (node.IsA("vtkMRMLVolumeNode") or node.IsA("vtkMRMLTransformNode")) and node.GetParentTransformNode() is None
    if own and not tail and storage is not None and storage.GetFileName() and not node.GetModifiedSinceRead():
        return storage.GetFileName()
    return f"{node.GetName()}{tail}{suffix}"


def user_command(command: str, folder: Path, job: dict, node_for) -> str:
    """``command`` with each of ``job``'s files inside ``folder`` replaced by :func:`node_file` of
    ``node_for(field name)`` (a node, or (node, tail) for a second file of one node; None leaves it)."""
    if not command:
        return ""
    # Resolved: on Windows a short (8.3) %TEMP% name does not start the long one the job's resolved paths hold.
    inside = os.path.normcase(str(Path(folder).resolve())) + os.sep
    names: dict[str, str] = {}
    for field, value in job.items():
        if isinstance(value, str) and os.path.normcase(value).startswith(inside):
            found = node_for(field)
            node, tail = found if isinstance(found, tuple) else (found, "")
            if node is not None:
                names[value] = node_file(node, "".join(Path(value).suffixes), tail)
    return command_line.join(names.get(token, token) for token in command_line.split(command))


def start_node(moving, initial, output):
    """What names a run's start file (:func:`user_command`'s ``node_for``): the initial transform node or the
    moving volume's one parent; ``(node, " start")`` when several transforms were composed, or when the start
    is the run's own output node (one file cannot be both). A moving volume under the output node starts from
    the output node's parents, or where its result started (registration_inputs.initial_transform_of)."""
    from .registration_inputs import moving_parent_of

    parent = moving_parent_of(moving, initial, output)
    initial = None if initial is parent else initial  # counted once (registration_inputs.initial_transform_of)
    if parent is not None and (initial is not None or parent.GetParentTransformNode() is not None):
        return moving, " start"
    start = initial or parent
    return (start, " start") if start is not None and start is output else start
