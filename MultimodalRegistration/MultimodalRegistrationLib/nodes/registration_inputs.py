"""The registration panel's input nodes as the worker's files: one writer per kind of node.

Each writer takes the panel's parameters, the job folder and the job fields of its kind, and returns
field name -> file. Masks and segmentations go onto their own volume's grid; landmark lists are written
in RAS, the moving list in the moving volume's own frame; the start is the initial transform node
composed with the moving volume's unhardened parents.
"""

from __future__ import annotations

from dataclasses import Field
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.images import write_image
from ..core.transforms import Transform
from ..process.jobs import RegistrationJob
from . import mrml
from .checks import check_node_pair
from .job import REGISTRATION_ATTRIBUTE_PREFIX
from .node_links import gone, recorded_node
from .panel import node_of, panel_value, write_images, write_volumes


def side_volume(parameters, field: Field):
    """The volume node of the side ("fixed" or "moving") a field belongs to, by its name's first word."""
    return node_of(parameters, RegistrationJob, field.name.split("_")[0])


def write_masks(parameters, folder: Path, fields: list[Field]) -> dict[str, str]:
    """Each mask (labelmap or segmentation node) as a 0/1 labelmap on its volume's grid, in its volume's frame."""
    from .qa_labels import mask_in_frame

    return write_images(
        parameters, folder, fields,
        lambda mask, field: mask_in_frame(mask, side_volume(parameters, field), field.name.split("_")[0]),
    )  # fmt: skip


def _pair(parameters, fields: list[Field], what: str, names: tuple[str, str]) -> tuple:
    """The fixed and moving nodes of a pair of fields; both or neither, and two different nodes."""
    fixed, moving = (panel_value(parameters, field) for field in sorted(fields, key=lambda f: "moving" in f.name))
    check_node_pair(fixed, moving, what, *names, fix="select one for each volume")
    return fixed, moving


def _on_grid(grid: tuple[np.ndarray, tuple[int, ...]] | None, volume) -> int:
    """How a voxel grid (IJK -> RAS, extent; :func:`.mrml.segmentation_grid`) lies on a volume's: 2 the same with
    the volume's whole extent, 1 within it (a segment's labelmap may be cropped to its contents), else 0."""
    image = volume.GetImageData()
    if grid is None or image is None or not np.allclose(grid[0], mrml.ijk_to_ras(volume), atol=1e-4):
        return 0
    inner, outer = np.array(grid[1]), np.array(image.GetExtent())
    if np.array_equal(inner, outer):
        return 2
    return int(bool(np.all(inner[::2] >= outer[::2]) and np.all(inner[1::2] <= outer[1::2])))


def _made_on(node, volumes: list):
    """The volume a segmentation node was made on: its reference geometry's node (what the Segment Editor drew
    on), else the one volume whose grid its reference geometry, or else its first segment's labelmap, lies on
    best (a .seg.nrrd read from a file keeps them, not the link); None when these do not tell."""
    if not node.IsA("vtkMRMLSegmentationNode"):
        return None
    reference = node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())
    if reference is not None or node.GetSegmentation().GetNumberOfSegments() == 0:
        return reference
    grid = mrml.segmentation_grid(node)
    fits = [_on_grid(grid, volume) for volume in volumes]
    return volumes[fits.index(max(fits))] if max(fits) > 0 and fits.count(max(fits)) == 1 else None


def _made_on_the_other_volume(segmentations: tuple, volumes: list) -> list[str]:
    """Refuses two segmentation nodes each made on the other side's volume (:func:`_made_on`): given the wrong
    way round. One made on the other volume is a warning."""
    fixed_on, moving_on = (_made_on(node, volumes) for node in segmentations)
    swapped = [on is not None and on is volumes[1 - side] and on is not volumes[side]
               for side, on in enumerate((fixed_on, moving_on))]  # fmt: skip
    names = [node.GetName() for node in segmentations]
    if all(swapped):
        raise InputError(
            f"the fixed segmentation '{names[0]}' was drawn on the moving volume '{volumes[1].GetName()}' and the "
            f"moving segmentation '{names[1]}' on the fixed volume '{volumes[0].GetName()}': they were given the wrong "
            "way round; swap them"
        )
    return [f"the {role} segmentation '{names[side]}' was drawn on the {other} volume '{volumes[1 - side].GetName()}': "
            f"check that it belongs to the {role} volume"
            for side, (role, other) in enumerate((("fixed", "moving"), ("moving", "fixed"))) if swapped[side]]  # fmt: skip


def write_segmentations(parameters, folder: Path, fields: list[Field]) -> dict[str, str | list[str]]:
    """Both segmentations as labelmaps on their volumes' grids, with the same value for the same segment name;
    overlapping segments in layers (the worker merges them and warns, each segment guiding whole), and the
    export's own warnings (a value two segments share) in the job's ``input_warnings``."""
    from .qa_labels import label_values, labels_image

    fixed, moving = _pair(parameters, fields, "segment guidance", ("the fixed segmentation", "the moving segmentation"))
    if fixed is None:
        return {}
    volumes = [side_volume(parameters, field) for field in sorted(fields, key=lambda f: "moving" in f.name)]
    warnings = _made_on_the_other_volume((fixed, moving), volumes)
    values = label_values(fixed, moving)
    files = {}
    for field, node, index in zip(sorted(fields, key=lambda f: "moving" in f.name), (fixed, moving), (0, 1)):
        side = field.name.split("_")[0]
        files[field.name] = str(folder / f"{field.name}.nrrd")
        image, said = labels_image(node, values[index], side_volume(parameters, field), side)
        write_image(image, files[field.name], compress=False)
        warnings += said
    return files | ({"input_warnings": warnings} if warnings else {})


def write_landmarks(parameters, folder: Path, fields: list[Field]) -> dict[str, str]:
    """Both landmark lists as CSV in RAS (the moving list in the moving volume's own frame), paired by label."""
    from ..landmarks.points_io import write_points_csv
    from .landmarks import placed_points
    from .moving_frame import moving_points

    fixed, moving = _pair(parameters, fields, "landmark guidance", ("the fixed landmarks", "the moving landmarks"))
    if fixed is None:
        return {}
    fixed_field, moving_field = sorted(fields, key=lambda f: "moving" in f.name)
    moving_volume = node_of(parameters, RegistrationJob, "moving")
    lists = {
        fixed_field.name: placed_points(fixed, "fixed guidance"),
        moving_field.name: moving_points(moving, moving_volume, "moving guidance"),
    }
    files = {}
    for name, (points_ras, labels) in lists.items():
        files[name] = str(folder / f"{name}.csv")
        write_points_csv(files[name], points_ras, labels)
    return files


def initial_transform_of(moving_node, initial_transform_node=None, output_node=None) -> Transform:
    """Fixed -> moving start: the optional initial node, then the moving volume's unhardened parents.

    A fixed-space point goes through ``initial_transform_node`` (its FromParent) into world space,
    then through the moving volume's parent chain (FromWorld) into the moving image's own space. An initial
    node that is already in that chain counts once (a prealignment the moving volume was placed under, chosen
    as the initial transform too: a helper's run had started from it twice, 12 mm off, without a word).

    The ``output_node`` the run will refill is not a start: after Register the moving volume sits under the
    result, and a second Register (another preset) had started from the result it replaces (an affine one, then
    "rigid": the node said rigid and held an affine). Such a run takes the parent chain the replaced result's
    moving volume had, else the output node's parents (:func:`moving_parent_of`), with the initial node as given.
    """
    parent = moving_parent_of(moving_node, initial_transform_node, output_node)
    chain = [parent, *mrml.parent_transforms(parent)] if parent is not None else []
    if parent is moving_node.GetParentTransformNode():
        start = mrml.world_transform(moving_node)  # the chain as Slicer composes it (one matrix when linear)
    else:
        start = Transform.chain([mrml.transform_from_node(node) for node in chain]) if chain else Transform.identity()
    if initial_transform_node is not None and not any(node is initial_transform_node for node in chain):
        start = start @ mrml.transform_from_node(initial_transform_node)
    return start


def replaced_parent(moving_node, initial_transform_node, output_node):
    """When the moving volume sits under ``output_node`` (a second Register into it): the moving volume's parent
    when the result there was made (its ``movingParentNodeID``; for a result recorded before that attribute and a
    run without an initial node, its ``initialTransformNodeID``), if still in the scene and not below the output
    node; else None."""
    if output_node is None or not mrml.is_under(moving_node, output_node):
        return None
    recorded, earlier = recorded_node(output_node, REGISTRATION_ATTRIBUTE_PREFIX + "movingParentNodeID")
    if recorded is None and initial_transform_node is None:
        _, earlier = recorded_node(output_node, REGISTRATION_ATTRIBUTE_PREFIX + "initialTransformNodeID")
    return None if earlier is None or earlier is output_node or mrml.is_under(earlier, output_node) else earlier


def start_gone_note(moving_node, output_node) -> str | None:
    """What a second Register into ``output_node``, the moving volume under it, says when the start the result there
    recorded (its ``movingParentNodeID``) has been deleted: it starts without it (a search, or the initial transform),
    which had gone unsaid (a helper's sweep). None otherwise."""
    if output_node is None or not mrml.is_under(moving_node, output_node):
        return None
    if not gone(recorded_node(output_node, REGISTRATION_ATTRIBUTE_PREFIX + "movingParentNodeID")):
        return None
    return (f"the transform the moving volume was under when '{output_node.GetName()}' was made (its start) is no "
            "longer in the scene: this run started without it")


def moving_parent_of(moving_node, initial_transform_node, output_node):
    """The moving volume's parent this run starts under: its parent, or, under ``output_node``, the replaced
    result's (:func:`replaced_parent`), else the output node's parent; None if it has none."""
    if output_node is not None and mrml.is_under(moving_node, output_node):
        return replaced_parent(moving_node, initial_transform_node, output_node) or output_node.GetParentTransformNode()
    return moving_node.GetParentTransformNode()


def write_start(parameters, folder: Path, fields: list[Field]) -> dict[str, str]:
    """The start (initial transform node and the moving volume's parents) as an ITK file, unless identity."""
    (field,) = fields
    start = initial_transform_of(node_of(parameters, RegistrationJob, "moving"), panel_value(parameters, field),
                                 node_of(parameters, RegistrationJob, "output_transform"))  # fmt: skip
    if start.is_identity():
        return {}
    path = str(folder / "initial.h5")
    start.write(path)
    return {field.name: path}


WRITERS = {
    "volume": write_volumes,
    "mask": write_masks,
    "labels": write_segmentations,
    "points": write_landmarks,
    "transform": write_start,
}
