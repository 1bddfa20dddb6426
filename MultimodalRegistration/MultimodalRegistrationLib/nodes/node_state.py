"""What an existing node holds, kept before a job's result goes into it and put back if that fails: a failed run
leaves the scene as it was. A helper's sweep: a failure while filling the output volume had left the output transform
node holding the new result and its attributes, the earlier one lost, beside a volume resampled by the earlier one."""

from __future__ import annotations


class NodeState:
    """A node's name, attributes, references, parent transform and content (its transform, or its image and
    geometry); :meth:`restore` puts them back on the same node."""

    def __init__(self, node):
        self.node = node
        self.name = node.GetName()
        self.attributes = {name: node.GetAttribute(name) for name in node.GetAttributeNames() or ()}
        self.references = {
            role: [node.GetNthNodeReferenceID(role, i) for i in range(node.GetNumberOfNodeReferences(role))]
            for role in _roles(node)
        }
        self.parent = node.GetTransformNodeID() if node.IsA("vtkMRMLTransformableNode") else None
        # A volume's image is shared, not copied: every job puts a new image object into a volume node
        # (mrml.update_volume_node_from_image), which leaves the one kept here as it was.
        self.deep = not node.IsA("vtkMRMLVolumeNode")
        self.content = node.GetScene().CreateNodeByClass(node.GetClassName())
        self.content.UnRegister(None)  # the factory's reference: Python's alone frees the copy with this state
        self.content.CopyContent(node, self.deep)

    def restore(self) -> None:
        node = self.node
        modifying = node.StartModify()
        node.CopyContent(self.content, self.deep)
        node.SetName(self.name)
        for name in list(node.GetAttributeNames() or ()):
            node.RemoveAttribute(name)
        for name, value in self.attributes.items():
            node.SetAttribute(name, value)
        for role in _roles(node):
            node.RemoveNodeReferenceIDs(role)
        for role, ids in self.references.items():
            for i, reference in enumerate(ids):
                node.SetNthNodeReferenceID(role, i, reference)
        if node.IsA("vtkMRMLTransformableNode"):
            node.SetAndObserveTransformNodeID(self.parent)
        node.EndModify(modifying)


def _roles(node) -> list[str]:
    return [node.GetNthNodeReferenceRole(i) for i in range(node.GetNumberOfNodeReferenceRoles())]
