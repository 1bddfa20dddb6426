"""Where QA reads each node: the transform under test, its "before" pose, and moving-side nodes in the
moving volume's own frame (see :mod:`.qa` for the rules)."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..core.transforms import Transform, lps_ras_points
from . import mrml
from .job import REGISTRATION_ATTRIBUTE_PREFIX
from .moving_frame import same_frame
from .node_links import gone, record_node_ids, recorded_node
from .registration_inputs import initial_transform_of

# On a moving volume QA put under a result to show it: the result's ID, and the parent transform it replaced
# (""), so that measuring again takes that parent as "before" as the first measurement did.
SHOWN_UNDER = "MultimodalRegistrationQA.shownUnderNodeID"
REPLACED_PARENT = "MultimodalRegistrationQA.replacedParentNodeID"


def _replaced_parent(moving_volume, transform_node):
    """The parent transform :func:`show_moving_under` replaced with ``transform_node``, while the volume still sits
    under that node alone; else None."""
    if recorded_node(moving_volume, SHOWN_UNDER)[1] is not transform_node:
        return None
    if mrml.parent_transforms(moving_volume) != [transform_node]:
        return None
    replaced = recorded_node(moving_volume, REPLACED_PARENT)[1]
    return replaced if replaced is not None and replaced.IsA("vtkMRMLTransformNode") else None


def _registration_start(moving_volume, result_node) -> tuple[Transform, str] | None:
    """(the start, its words) of the registration that made ``result_node``, when the moving volume sits under that
    result alone as the registration panel leaves it: the prealignment the volume was under and the initial
    transform, as the run started from them. Measured from no transform instead, a result worse than its
    prealignment (4.06 -> 9.05 mm) had read 39.73 -> 9.05 mm, without a warning (a helper's sweep). None when the
    node records no registration or its start is gone from the scene."""
    found = {key: recorded_node(result_node, REGISTRATION_ATTRIBUTE_PREFIX + key)
             for key in ("movingParentNodeID", "initialTransformNodeID")}  # fmt: skip
    if found["movingParentNodeID"][0] is None:
        return None
    nodes = {key: node for key, (_, node) in found.items()}
    if any(map(gone, found.values())):
        return None
    start = initial_transform_of(moving_volume, nodes["initialTransformNodeID"], result_node)
    named = [node for node in (nodes["movingParentNodeID"], nodes["initialTransformNodeID"]) if node is not None]
    words = " and ".join(dict.fromkeys(f"'{node.GetName()}'" for node in named)) or "no transform"
    return start, f"the registration's start: {words}"


def start_gone(transform_node, moving_volume) -> list[str]:
    """A warning when the moving volume sits under ``transform_node`` alone and the start 'before' would be
    measured from (the parent QA replaced, else the registration's start) was recorded but is no longer in the
    scene: 'before' had become no transform without a word (3.09 -> 37.67 mm; a helper's sweep)."""
    if transform_node is None or mrml.parent_transforms(moving_volume) != [transform_node]:
        return []
    if recorded_node(moving_volume, SHOWN_UNDER)[1] is transform_node:
        recorded = [recorded_node(moving_volume, REPLACED_PARENT)]
    else:
        recorded = [recorded_node(transform_node, REGISTRATION_ATTRIBUTE_PREFIX + key)
                    for key in ("movingParentNodeID", "initialTransformNodeID")]  # fmt: skip
    if not any(map(gone, recorded)):
        return []
    return [f"the transform the moving volume was under before '{transform_node.GetName()}' (its start) is no "
            "longer in the scene: 'before' is measured from no transform, not from that start; put the moving volume "
            "under its start again to measure what the registration changed"]


def registration_pose(transform_node, moving_volume) -> tuple[Transform, Transform, str]:
    """(T, before, description): T maps fixed space to the moving volume's voxel space (LPS); see the
    module docstring for how unhardened parent transforms of the moving volume are read."""
    parents = mrml.parent_transforms(moving_volume)
    names = " -> ".join(f"'{p.GetName()}'" for p in parents)
    if transform_node is None:
        return mrml.world_transform(moving_volume), Transform.identity(), (
            f"the moving volume as shown ({names or 'no transform'}); before: no transform"
        )
    if mrml.is_under(moving_volume, transform_node):
        others = [p for p in parents if p is not transform_node]
        replaced = _replaced_parent(moving_volume, transform_node)
        if replaced is not None:  # shown by an earlier measurement: 'before' stays what it was then
            others = [replaced, *mrml.parent_transforms(replaced)]
        before = Transform.chain([mrml.transform_from_node(p) for p in others])
        rest = " -> ".join(f"'{p.GetName()}'" for p in others) or "no transform"
        rest += " (the parent it had before QA showed the result)" if replaced is not None else ""
        start = _registration_start(moving_volume, transform_node) if not others else None
        if start is not None:
            before, rest = start
        return mrml.world_transform(moving_volume), before, (
            f"the moving volume as shown, through {names}; before: without '{transform_node.GetName()}' ({rest})"
        )
    above = transform_node.GetParentTransformNode()
    if above is not None:  # shown, the moving volume would go through both: not what the node alone measures
        raise InputError(
            f"the transform '{transform_node.GetName()}' is itself under '{above.GetName()}': the moving volume placed "
            f"under it would be shown through both, not as '{transform_node.GetName()}' alone maps it; harden "
            f"'{above.GetName()}' into it or take it out of '{above.GetName()}' (Data module), or put the moving "
            f"volume under '{transform_node.GetName()}' to measure what is shown"
        )
    description = f"'{transform_node.GetName()}' (TransformFromParent, fixed -> moving)"
    if parents:
        description += f"; before: the moving volume's own parent transforms ({names})"
    else:
        description += "; before: no transform"
    return mrml.transform_from_node(transform_node), mrml.world_transform(moving_volume), description


def show_moving_under(transform_node, moving_volume, moving_nodes=()) -> list:
    """Put the moving volume under ``transform_node`` to show what was measured; moving-side nodes in
    the volume's frame (same parent transform) go with it, so that they keep meaning the same points.

    Nothing changes when the volume is already under the node (or no node is given). Returns the
    nodes that were moved.
    """
    if transform_node is None or mrml.is_under(moving_volume, transform_node):
        return []
    moved = [moving_volume] + [node for node in moving_nodes if node is not None and same_frame(node, moving_volume)]
    parent = moving_volume.GetParentTransformNode()
    record_node_ids(moving_volume, {REPLACED_PARENT: parent.GetID() if parent is not None else "",
                                    SHOWN_UNDER: transform_node.GetID()})
    for node in moved:
        node.SetAndObserveTransformNodeID(transform_node.GetID())
    return moved


SHOWN_FRAME = "the moving points seem placed on the moving volume as shown"  # how the warning begins


def shown_frame_warning(points: dict, moving_volume, transform: Transform) -> str | None:
    """A warning when the moving landmarks (``points``: the assessment's arguments, moving ones in the moving
    volume's frame) fit ``transform`` clearly better read as world points, clicked on the moving volume as its parent
    transform shows it: a list made at the scene root after Register had read TRE 41 mm for a 1.3 mm result, called
    the number to trust (a helper's sweep). None when the volume is under no transform or they fit as given."""
    parent = moving_volume.GetParentTransformNode()
    if not points or parent is None:
        return None
    target = transform.transform_points(lps_ras_points(points["fixed_points_ras"]))
    moving = lps_ras_points(points["moving_points_ras"])
    given = float(np.median(np.linalg.norm(target - moving, axis=1)))
    as_shown = mrml.world_transform(moving_volume).transform_points(moving)
    shown = float(np.median(np.linalg.norm(target - as_shown, axis=1)))
    if not (shown < 0.5 * given and given - shown > SHOWN_FRAME_GAIN_MM):
        return None
    return (f"{SHOWN_FRAME} under '{parent.GetName()}' ({shown:.1f} mm from the transform read so, {given:.1f} mm as "
            "given): points clicked on a volume under a transform are world points; put their list under the same "
            "transform as the moving volume (Data module), then measure again")  # fmt: skip


SHOWN_FRAME_GAIN_MM = 2.0  # what reading the points as shown must gain (median, mm) to be named

