"""Segments that overlap, as one labelmap (LPS mm).

A labelmap holds one segment per voxel; Slicer keeps overlapping segments (a lesion inside the gland) in
layers, and saves them as a multi-layer ``.seg.nrrd`` (read as a vector image: one component a layer, each
segment a label value within its layer). One labelmap of them is drawn largest segment first, so that a
segment drawn inside another stays whole and leaves a hole in the larger one; what each hides is kept beside
it, so that guidance can use every segment whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .labels import bounding_slices, set_label_names


def _cropped(mask: sitk.Image) -> tuple[tuple[slice, ...], np.ndarray]:
    """The mask's set voxels as (array slices of their bounding box, boolean array inside it)."""
    array = sitk.GetArrayViewFromImage(mask) != 0
    if not array.any():
        return (slice(0, 0),) * 3, np.zeros((0, 0, 0), bool)
    box = bounding_slices(array)
    return box, array[box].copy()


class MergedSegments(NamedTuple):
    """Segments drawn into one labelmap, what drawing them said, and what they hid."""

    labels: sitk.Image  # UInt16, names stored as Slicer does
    warnings: list[str]
    # UInt16 on the same grid: where a segment was drawn over another, the value of the one beneath (the first
    # drawn there); None when no segment overlaps another.
    covered: sitk.Image | None


def _collected(segments: Iterable[tuple[int, str, sitk.Image]], role: str, say_renumbered: bool):
    """The segments cropped to their bounding boxes, largest first, a value each; the grid they lie on and the
    warnings of renumbering (see :func:`merged_segments`)."""
    like, kept = None, []
    for value, name, mask in segments:
        like = mask if like is None else like
        kept.append((value, name, *_cropped(mask)))
    if like is None:
        raise InputError(f"the {role} holds no segment: give a segmentation with at least one segment")
    warnings, values = [], set()
    spare = max(value for value, *_ in kept) + 1
    for index, (value, name, box, voxels) in enumerate(kept):
        if value in values:
            if say_renumbered:
                warnings.append(f"segment '{name}' of the {role} has label value {value}, which another segment "
                                f"has: it is given {spare}")  # fmt: skip
            kept[index], spare = (spare, name, box, voxels), spare + 1
        values.add(kept[index][0])
    if spare > np.iinfo(np.uint16).max:
        raise InputError(f"the {role} has label values above {np.iinfo(np.uint16).max}: renumber its segments")
    kept.sort(key=lambda item: -int(item[3].sum()))  # stable: equal sizes keep their order
    return like, kept, warnings


def _image(array: np.ndarray, like: sitk.Image, is_vector: bool = False) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=is_vector)
    image.CopyInformation(like)
    return image


def merged_segments(
    segments: Iterable[tuple[int, str, sitk.Image]], role: str, say_renumbered: bool = True
) -> MergedSegments:
    """One labelmap of ``segments`` (label value, name, 0/1 mask on one grid; an iterable, so that a node's hundred
    segments need not be exported all at once), the larger drawn first; a warning for each segment drawn over
    another and (``say_renumbered``) each given a new value because another segment has its value (the first
    keeps it); and the voxels each hid."""
    like, kept, warnings = _collected(segments, role, say_renumbered)
    merged = np.zeros(like.GetSize()[::-1], np.uint16)
    covered = None
    names = {value: name for value, name, _, _ in kept}
    for value, name, box, voxels in kept:
        under = merged[box][voxels]
        for other, shared in zip(*np.unique(under[under != 0], return_counts=True)):
            warnings.append(
                f"segments '{name}' and '{names[int(other)]}' of the {role} overlap ({int(shared)} voxels); a "
                f"labelmap holds one segment per voxel, so '{name}' is drawn over '{names[int(other)]}'"
            )
        if under.any():
            covered = np.zeros_like(merged) if covered is None else covered
            hidden = np.zeros_like(voxels)
            hidden[voxels] = under != 0
            hidden &= covered[box] == 0
            covered[box][hidden] = merged[box][hidden]
        merged[box][voxels] = value
    labels = set_label_names(_image(merged, like), names)
    return MergedSegments(labels, warnings, None if covered is None else _image(covered, like))


def layered_segments(segments: Iterable[tuple[int, str, sitk.Image]], role: str) -> tuple[sitk.Image, list[str]]:
    """``segments`` (as :func:`merged_segments` takes them) stored as Slicer stores them: each in the first layer
    where it overlaps no other, one labelmap when they all fit in one, else a vector image (a component a layer)
    with each segment's layer in its header; and the warnings of renumbering. Nothing is hidden."""
    like, kept, warnings = _collected(segments, role, say_renumbered=True)
    layers: list[np.ndarray] = []
    placed = {}
    for value, _, box, voxels in kept:
        layer = next((i for i, array in enumerate(layers) if not array[box][voxels].any()), len(layers))
        if layer == len(layers):
            layers.append(np.zeros(like.GetSize()[::-1], np.uint16))
        layers[layer][box][voxels] = value
        placed[value] = layer
    names = {value: name for value, name, _, _ in kept}
    if len(layers) == 1:
        return set_label_names(_image(layers[0], like), names), warnings
    return set_label_names(_image(np.stack(layers, axis=-1), like, is_vector=True), names, placed), warnings


def _layered_segments(image: sitk.Image) -> list[tuple[int, int, str]]:
    """(layer, label value, name) of each segment a Slicer segmentation's header lists."""
    keys = set(image.GetMetaDataKeys())
    found, index = [], 0
    while f"Segment{index}_LabelValue" in keys:
        try:
            layer = int(image.GetMetaData(f"Segment{index}_Layer")) if f"Segment{index}_Layer" in keys else 0
            value = int(image.GetMetaData(f"Segment{index}_LabelValue"))
        except ValueError:
            raise InputError(
                f"segment {index} of the segmentation has a layer or label value that is not a whole number: "
                "save the segmentation again from Slicer"
            ) from None
        name_key = f"Segment{index}_Name"
        found.append((layer, value, image.GetMetaData(name_key) if name_key in keys else str(value)))
        index += 1
    return found


def single_layer(image: sitk.Image, role: str) -> MergedSegments:
    """``image`` as one labelmap: a multi-layer Slicer segmentation merged by :func:`merged_segments` (a label value
    that two layers both use is given to the first segment, the others renumbered), with its warnings and what it
    hid; anything else as it is."""
    layers = image.GetNumberOfComponentsPerPixel()
    listed = _layered_segments(image) if layers > 1 else []
    if not listed:
        return MergedSegments(image, [], None)
    highest = int(np.iinfo(sitk.GetArrayViewFromImage(image).dtype).max)
    for layer, value, name in listed:
        if not (0 <= layer < layers and 1 <= value <= highest):
            raise InputError(
                f"the {role} lists segment '{name}' as label value {value} in layer {layer}, which it cannot hold "
                f"({layers} layers, values 1-{highest}): save it again from Slicer"
            )

    def masks():  # one at a time; empty segments left out
        for layer, value, name in listed:
            component = sitk.VectorIndexSelectionCast(image, layer)
            mask = sitk.Cast(sitk.BinaryThreshold(component, value, value, 1, 0), sitk.sitkUInt8)
            if np.any(sitk.GetArrayViewFromImage(mask)):
                yield value, name, mask

    # Two layers reusing a value is how Slicer stores them, not the user's doing: renumbered without a word.
    return merged_segments(masks(), role, say_renumbered=False)
