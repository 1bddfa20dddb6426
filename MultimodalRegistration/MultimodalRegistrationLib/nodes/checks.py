"""Checks on input nodes shared by the node-level calls (registration, preparation, QA)."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..core.file_checks import direction_problem
from ..core.pairs import check_pair
from . import mrml
from .job import PREALIGN_ATTRIBUTE_PREFIX, REGISTRATION_ATTRIBUTE_PREFIX

RESULT_PREFIXES = (REGISTRATION_ATTRIBUTE_PREFIX, PREALIGN_ATTRIBUTE_PREFIX)  # a result node's attributes


def check_node_pair(fixed, moving, what: str, fixed_name: str, moving_name: str, fix: str) -> None:
    """Refuse half a pair (:func:`..core.pairs.check_pair`) and one node given for both roles; ``fix`` ends
    the second message ("select one for each image")."""
    check_pair(fixed, moving, what, fixed_name, moving_name, verb="select")
    if fixed is not None and fixed is moving:
        raise InputError(f"{fixed_name} and {moving_name} are the same node, '{fixed.GetName()}': {fix}")


def check_volume_pair(fixed_volume, moving_volume, otherwise: str = "take it out of the transform") -> None:
    """Raise :class:`InputError` naming the fix unless fixed and moving are two different scalar volume nodes
    and the fixed one is under no transform.

    Labelmaps are refused: a labelmap is a mask or a segmentation, not an image to register.
    ``otherwise`` is the fix offered besides hardening when the fixed volume is under a transform.
    """
    for role, node in (("fixed", fixed_volume), ("moving", moving_volume)):
        if node is None or not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
            raise InputError(f"select the {role} volume: a scalar volume node (not a labelmap) is needed")
    check_node_pair(fixed_volume, moving_volume, "registration", "the fixed volume", "the moving volume",
                    "select two different volumes")  # fmt: skip
    for role, node in (("fixed", fixed_volume), ("moving", moving_volume)):
        check_right_angles(node, role)
    parent = fixed_volume.GetParentTransformNode()
    if parent is not None and any(key.startswith(RESULT_PREFIXES) for key in parent.GetAttributeNames() or ()):
        # hardening a result into the reference image was the advice (a node sweep): it would move the reference
        raise InputError(f"the fixed volume '{fixed_volume.GetName()}' is under the registration result "
                         f"'{parent.GetName()}': take it out of that transform (Data module: drag it out), and leave "
                         "the result on the moving volume")  # fmt: skip
    if parent is not None:
        raise InputError(
            f"the fixed volume '{fixed_volume.GetName()}' is under a transform: harden it first "
            f"(Data module, right-click the transform, 'Harden transform'), or {otherwise}"
        )


def check_right_angles(volume, role: str) -> None:
    """Refuse a volume whose voxel axes are not at right angles, naming the node and a fix in Slicer: hardening an
    affine result into it leaves them so, and ITK images need right angles. A helper's sweep: the refusal had named a
    scratch file already gone and told a Slicer user to reset the orientation in the header."""
    columns = mrml.ijk_to_ras(volume)[:3, :3]
    lengths = np.linalg.norm(columns, axis=0)
    if not np.all(np.isfinite(lengths) & (lengths > 0)):  # a spacing of 0: the spacing checks name it
        return
    problem = direction_problem((columns / lengths).ravel())
    if problem is None:
        return
    if role == "moving":
        fix = ("undo the harden (Edit, Undo, or load the volume again) and leave it under the transform, which the "
               "registration starts from; or resample it onto a grid")  # fmt: skip
    else:
        fix = "resample it onto a grid, or register it as the moving volume (left under the transform)"
    raise InputError(
        f"the {role} volume '{volume.GetName()}' has voxel axes that are not at right angles ({problem}), as hardening "
        f"an affine transform into a volume leaves them, and registration needs right angles: {fix} "
        "(Resample Scalar/Vector/DWI Volume module)"
    )


def _refuse_if_under_a_transform(node, role: str, why: str, choose: str) -> None:
    above = node.GetParentTransformNode() if node is not None else None
    if above is not None:
        raise InputError(
            f"the {role} '{node.GetName()}' is under the transform '{above.GetName()}': {why}; {choose}, or take "
            f"'{node.GetName()}' out of '{above.GetName()}' first (Data module)"
        )


def check_output_transform(node) -> None:
    """Refuse an output transform node that is itself under a transform: the result fills the node's own
    TransformFromParent, so a volume put under it would be moved by both (a result 0.3 mm off was shown 11 mm off)."""
    _refuse_if_under_a_transform(node, "output transform", "a volume put under it would be moved by both",
                                 "choose a new output transform")  # fmt: skip


def check_output_volume(node) -> None:
    """Refuse an output volume node under a transform: it is filled on the fixed grid, and shown moved by that
    transform too (50 mm from the fixed volume, without a word; a helper's scripted session); and a labelmap, which
    had been filled with the moving image's intensities shown as labels (a node sweep)."""
    if node is not None and node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"the output volume '{node.GetName()}' is a labelmap, and the moving image resampled is not "
                         "labels: choose a scalar volume (or create one)")  # fmt: skip
    _refuse_if_under_a_transform(node, "output volume", "it is filled on the fixed volume's grid and would be shown "
                                 "moved by that transform", "choose another output volume (or create one)")  # fmt: skip


def check_output_not_a_start(output_node, moving_volume, initial_node, result_prefix: str) -> None:
    """Refuse an output transform node that is this run's start: the initial transform node, or a transform the
    moving volume sits under that no registration made (a prealignment; a result of one, attributes under
    ``result_prefix``, is replaced by design). The run had overwritten it, and under it started from the identity
    (79 mm off where the prealignment was 9 mm off; a helper's scripted session)."""
    if output_node is None:
        return
    name = output_node.GetName()
    fix = (f"choose a new output transform (or create one): '{name}' then stays the start, and the result "
           "includes it")  # fmt: skip
    if output_node is initial_node:
        raise InputError(f"the output transform '{name}' is also the initial transform: the run would overwrite "
                         f"its own start; {fix}")  # fmt: skip
    made_here = any(key.startswith(result_prefix) for key in (output_node.GetAttributeNames() or ()))
    if mrml.is_under(moving_volume, output_node) and not made_here:
        raise InputError(f"the output transform '{name}' is the moving volume's own prealignment (the volume is "
                         f"under it): the run would replace it, and with it the start; {fix}")  # fmt: skip


def check_guided_start(moving_volume, initial_node, guided: bool, replaced: bool) -> None:
    """Refuse, before the worker, a guided run whose start comes from its guidance (``replaced``) while the moving
    volume sits under a nonlinear transform: the start would replace it. Named here, the transform is the volume's
    parent; the worker could only say "the initial transform" (a helper's thin-plate prealignment: "harden the
    initial transform" when none was chosen)."""
    if not (guided and replaced):
        return
    chain = mrml.parent_transforms(moving_volume) + ([initial_node] if initial_node is not None else [])
    nonlinear = next((node for node in chain if not node.IsLinear()), None)
    if nonlinear is None:
        return
    name = nonlinear.GetName()
    if mrml.is_under(moving_volume, nonlinear):
        what = f"the moving volume '{moving_volume.GetName()}' is under '{name}', a nonlinear transform"
    else:
        what = f"the initial transform '{name}' is nonlinear"
    raise InputError(
        f"{what}: a guided registration starts from the segments or landmarks, which would replace it: harden "
        f"'{name}' into the moving volume first (Data module: right-click the transform, 'Harden transform'), use a "
        "linear prealignment, or set the start pose (init) to none to start from it as it is"
    )


def check_masks_apart(masks: dict, volumes: dict) -> None:
    """Refuse a mask node that is one of the volumes registered (``{role: node}`` each): every voxel of an image that
    is not 0 counted as inside, so the mask left nothing out, without a word (a node sweep)."""
    for mask_role, mask in masks.items():
        for role, volume in volumes.items():
            if mask is not None and mask is volume:
                raise InputError(f"the {mask_role} is the {role} volume '{volume.GetName()}': choose a labelmap or "
                                 "segmentation of the region to register, or no mask")  # fmt: skip
