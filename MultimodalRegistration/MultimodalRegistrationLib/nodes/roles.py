"""Which of a scene's nodes a panel may choose by itself as fixed and moving: only those whose names say so. Creation
order says nothing about roles, and swapped roles give the inverse transform (with the same residuals, for landmarks);
a helper's review: the three volume panels had chosen the first two volumes loaded, an MR loaded first became fixed."""

from __future__ import annotations

ROLE_WORDS = {"fixed": "fixed", "moving": "moving"}  # lower case


def guess_roles(nodes) -> tuple:
    """(fixed, moving) among ``nodes``: one whose name says 'fixed', another 'moving'; (None, None) otherwise."""
    found = {role: [node for node in nodes if word in node.GetName().lower()] for role, word in ROLE_WORDS.items()}
    fixed, moving = found["fixed"], found["moving"]
    if len(fixed) == 1 and len(moving) == 1 and fixed[0] is not moving[0]:
        return fixed[0], moving[0]
    return None, None


def guess_volumes(scene) -> tuple:
    """(fixed, moving) among the scene's scalar volumes (labelmaps left out), by :func:`guess_roles`."""
    volumes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
               for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]  # fmt: skip
    return guess_roles([volume for volume in volumes if not volume.IsA("vtkMRMLLabelMapVolumeNode")])


def preselect_volumes(parameters, scene) -> None:
    """Set a panel's ``fixedVolume`` and ``movingVolume``, when neither is chosen yet, to the scene's volumes whose
    names say which is which (:func:`guess_volumes`); else leave them."""
    if parameters.fixedVolume or parameters.movingVolume:
        return
    fixed, moving = guess_volumes(scene)
    if fixed is not None:
        parameters.fixedVolume, parameters.movingVolume = fixed, moving
