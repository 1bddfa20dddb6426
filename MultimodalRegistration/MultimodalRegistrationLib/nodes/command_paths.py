"""The recorded ``mmreg`` command line of a run on nodes, with its scratch files named after their nodes.

A run on nodes writes its input nodes to a scratch folder that is removed when it ends, so the command line the
worker records names files that no longer exist. For "Copy as command" each of those files is named after the
node it came from or went to: the node's own file when it was loaded from one and not changed since, else
``<node name><suffix>`` (save the node there to repeat the run).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def node_file(node, suffix: str, tail: str = "") -> str:
    """Where ``node`` is on disk (its storage file, if loaded from one and not changed since), else its name with
    ``tail`` and ``suffix`` (".nrrd", ".h5")."""
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    if not tail and storage is not None and storage.GetFileName() and not node.GetModifiedSinceRead():
        return storage.GetFileName()
    return f"{node.GetName()}{tail}{suffix}"


def user_command(command: str, folder: Path, job: dict, node_for) -> str:
    """``command`` with each of ``job``'s files inside ``folder`` replaced by :func:`node_file` of
    ``node_for(field name)`` (a node, or (node, tail) for a second file of one node; None leaves it)."""
    if not command:
        return ""
    inside = str(folder) + os.sep
    names: dict[str, str] = {}
    for field, value in job.items():
        if isinstance(value, str) and value.startswith(inside):
            found = node_for(field)
            node, tail = found if isinstance(found, tuple) else (found, "")
            if node is not None:
                names[value] = node_file(node, "".join(Path(value).suffixes), tail)
    return shlex.join(names.get(token, token) for token in shlex.split(command))
