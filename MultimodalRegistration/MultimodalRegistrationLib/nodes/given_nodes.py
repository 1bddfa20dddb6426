"""The nodes a panel or a script gives, checked before any work: each still in the scene, and of the kind its parameter
holds. A helper's console sweep: a volume removed from the scene had been registered for 10 s, then refused as
"removed during the registration"; an output transform that was a volume, or a table node that was a volume, failed
after the engine as an internal error naming no fix (and a fit had already filled its output transform)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..core.errors import InputError
from .mrml import in_scene
from .panel import parameter_words

# Parameter name (its ending) -> the MRML class its node must be, in words; the first rule that matches is used.
KINDS = (
    (r"[tT]ransform$", "vtkMRMLTransformNode", "a transform"),
    (r"Table$", "vtkMRMLTableNode", "a table"),
    (r"^commonRegion$", "vtkMRMLMarkupsROINode", "an ROI"),
    (r"(Points|Landmarks)$", "vtkMRMLMarkupsFiducialNode", "a markups point list"),  # a curve's are no landmarks
    (r"^output(Volume|Fixed|Moving)$", "vtkMRMLScalarVolumeNode", "a scalar volume"),
    (r"(Volume|Reference)$", "vtkMRMLVolumeNode", "a volume"),
)


def check_given_nodes(parameters, names: Iterable[str], replaced: Iterable[str] = ()) -> None:
    """Refuse (:class:`InputError`, naming the parameter and the fix) a node among ``parameters``' ``names`` that is
    no longer in the scene (unless its name is ``replaced``: a new node is made for it), or that is not of the class
    its name asks for (:data:`KINDS`). Other values pass."""
    for name in names:
        node = getattr(parameters, name, None)
        kind = next(((cls, words) for pattern, cls, words in KINDS if re.search(pattern, name)), None)
        if not hasattr(node, "IsA"):
            if node not in (None, "") and kind is not None:  # a node's name typed for it: AttributeError ("": unset)
                example = f": slicer.util.getNode({node!r})" if isinstance(node, str) else ""
                raise InputError(f"the {parameter_words(name)} ({name}) is {node!r}, not a node: give the node"
                                 f"{example}")  # fmt: skip
            continue
        label = f"the {parameter_words(name)} ({name}) '{node.GetName()}'"
        if not in_scene(node):
            if name in replaced:
                continue
            raise InputError(f"{label} is not in the scene (removed, or never added): add it to the scene, or select "
                             "another")  # fmt: skip
        if kind is not None and not node.IsA(kind[0]):
            raise InputError(f"{label} is a {node.GetClassName()}, not {kind[1]}: select {kind[1]} (or create one)")
