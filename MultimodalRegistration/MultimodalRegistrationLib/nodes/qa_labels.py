"""Segmentations, labelmaps and masks for QA and guidance: segments paired by name, exported on their volume's grid
(LPS), each node read in the frame its volume is: a moving-side node under the moving volume's transform or under
none, a fixed labelmap under none."""

from __future__ import annotations

from contextlib import contextmanager

import SimpleITK as sitk

from ..core.errors import InputError
from ..core.segment_layers import layered_segments
from . import mrml
from .moving_frame import check_moving_frame


def _segments(node) -> list[tuple[str, str]]:
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    if not ids:
        raise InputError(f"segmentation '{node.GetName()}' has no segments: add segments or clear the selection")
    return [(segment_id, segmentation.GetSegment(segment_id).GetName()) for segment_id in ids]


def label_values(fixed_node, moving_node) -> tuple[dict[str, int], dict[str, int]]:
    """Label value of each segment (by segment ID) on both sides: two segmentations are matched by
    segment name; a segmentation beside a labelmap keeps its segments' own label values."""
    values: tuple[dict[str, int], dict[str, int]] = ({}, {})
    both = [node.IsA("vtkMRMLSegmentationNode") for node in (fixed_node, moving_node)]
    if all(both):
        names: list[str] = []
        for node in (fixed_node, moving_node):
            names += [name for _, name in _segments(node) if name not in names]
        for side, node in enumerate((fixed_node, moving_node)):
            values[side].update({segment_id: names.index(name) + 1 for segment_id, name in _segments(node)})
        return values
    for side, node in enumerate((fixed_node, moving_node)):
        if both[side]:
            segmentation = node.GetSegmentation()
            for index, (segment_id, _) in enumerate(_segments(node)):
                own = segmentation.GetSegment(segment_id).GetLabelValue()
                values[side][segment_id] = own if own > 0 else index + 1
    return values


def _segmentation_image(node, values: dict[str, int], reference_volume) -> tuple[sitk.Image, list[str]]:
    """A segmentation's segments on the reference volume's grid, one export per segment, each whole: one labelmap
    when none overlap, else a multi-layer image as Slicer stores it
    (:func:`..core.segment_layers.layered_segments`), which guidance and QA merge, saying which overlap."""
    scene = node.GetScene()

    def exported():  # one at a time: layered_segments keeps only each segment's bounding box
        for segment_id, name in _segments(node):
            single = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "qa segment export")
            try:
                single.SetAndObserveTransformNodeID(node.GetTransformNodeID())
                if not single.GetSegmentation().CopySegmentFromSegmentation(node.GetSegmentation(), segment_id):
                    raise InputError(
                        f"segment '{name}' of '{node.GetName()}' could not be read: check the segmentation"
                    )
                mask = mrml.mask_image(single, reference_volume)
            finally:
                mrml.remove_node(scene, single)
            yield values[segment_id], name, mask

    return layered_segments(exported(), f"segmentation '{node.GetName()}'")


def _untransformed_reference(moving_volume):
    """A temporary labelmap node with the moving volume's geometry and no parent transform."""
    geometry = mrml.image_from_volume_node(moving_volume)
    empty = sitk.Image(geometry.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(geometry)
    return mrml.volume_node_from_image(moving_volume.GetScene(), empty, "qa reference", labelmap=True)


@contextmanager
def _export_reference(node, volume, side: str, role: str):
    """The volume node to export ``node`` onto: ``volume``, or a temporary one in the moving image's own frame for a
    moving segmentation under no transform while the moving volume is under one (it holds moving-image
    coordinates). Refuses a node whose place on its volume is unclear."""
    if side == "moving":
        check_moving_frame(node, volume, role)
    if side == "fixed" and node.GetParentTransformNode() is not None:
        # A segmentation too: exported where it is shown, one 21 mm off guided a result as far off, Dice 1.0 (a
        # helper's scripted session). The fixed volume is under none (check_volume_pair).
        named = "fixed segmentation" if role == "fixed labelmap" and not node.IsA("vtkMRMLVolumeNode") else role
        raise InputError(f"the {named} '{node.GetName()}' is under the transform "
                         f"'{node.GetParentTransformNode().GetName()}' while the fixed volume is under none: take it "
                         "out of that transform if it was drawn on the fixed volume, or harden it if it is shown "
                         "where it belongs (Data module)")  # fmt: skip
    if node.IsA("vtkMRMLVolumeNode"):
        yield volume
    elif side == "moving" and node.GetParentTransformNode() is None and volume.GetParentTransformNode() is not None:
        reference = _untransformed_reference(volume)
        try:
            yield reference
        finally:
            mrml.remove_node(volume.GetScene(), reference)
    else:
        yield volume


def labels_image(node, values: dict[str, int], volume, side: str) -> tuple[sitk.Image, list[str]]:
    """A labelmap or segmentation node as a label image (LPS) in its volume's frame (a segmentation whose segments
    overlap as a multi-layer image), and the warnings of exporting it (a label value two segments share)."""
    if not (node.IsA("vtkMRMLSegmentationNode") or node.IsA("vtkMRMLLabelMapVolumeNode")):
        raise InputError(f"'{node.GetName()}' is not a labelmap or segmentation: select one, or clear the selection")
    role = "fixed labelmap" if side == "fixed" else "moving segmentation"
    with _export_reference(node, volume, side, role) as reference:
        if node.IsA("vtkMRMLLabelMapVolumeNode"):
            image, said = mrml.image_from_volume_node(node), []
        else:
            image, said = _segmentation_image(node, values, reference)
    # here, by name: the worker could name only its scratch labelmap, and QA refused in mmreg's words (a node sweep)
    if not sitk.GetArrayViewFromImage(image).any():
        kind, what = ("labelmap", "no label") if node.IsA("vtkMRMLLabelMapVolumeNode") else (
            "segmentation", "nothing drawn in any segment")  # fmt: skip
        raise InputError(f"the {side} {kind} '{node.GetName()}' has {what} inside the {side} volume "
                         f"'{volume.GetName()}': draw them (Segment Editor), or clear the {side} {kind}")  # fmt: skip
    return image, said


def mask_in_frame(node, volume, side: str) -> sitk.Image:
    """A mask (labelmap or segmentation node) as a 0/1 image (LPS) on its volume's grid, read in the volume's frame
    as :func:`labels_image` reads labels."""
    with _export_reference(node, volume, side, f"{side} mask") as reference:
        return mrml.mask_image(node, reference)
