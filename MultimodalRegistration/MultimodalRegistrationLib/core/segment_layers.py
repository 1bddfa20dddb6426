"""Segments that overlap, as one labelmap (LPS mm), each segment kept whole beside it.

A labelmap holds one segment per voxel; Slicer keeps overlapping segments (a lesion inside the gland, the
gland with its zones) in layers, and saves them as a multi-layer ``.seg.nrrd`` (read as a vector image: one
component a layer, each segment a label value within its layer). One labelmap of them is drawn largest segment
first, so that a segment drawn inside another stays whole and leaves a hole (or a dent, or nothing at all) in
the larger one; each segment that lost voxels is kept whole beside it (``wholes``), so that guidance and QA use
every segment as it was drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .labels import label_names, set_label_names
from .segment_header import header_segments, valued_prefix
from .views import bounding_slices

Cropped = tuple[int, str, tuple[slice, ...], np.ndarray]  # label value, name, bounding-box slices, voxels in it


class MergedSegments(NamedTuple):
    """Segments drawn into one labelmap, what drawing them said, and each segment that lost voxels, whole."""

    labels: sitk.Image  # UInt16, every segment's name stored as Slicer does (a hidden one's too)
    warnings: list[str]
    # Label value -> the segment's own voxels (UInt8, cropped to their bounding box, placed in LPS mm), for the
    # segments others were drawn over; see :func:`whole_mask`.
    wholes: dict[int, sitk.Image]
    # What giving a segment a new value said, when nobody was told (see :func:`said_renumbered`).
    renumbered: tuple[str, ...] = ()


def _cropped(array: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    """A boolean (z, y, x) array's set voxels as (slices of their bounding box, the array inside it)."""
    if not array.any():
        return (slice(0, 0),) * 3, np.zeros((0, 0, 0), bool)
    box = bounding_slices(array)
    return box, array[box].copy()


def _numbered(kept: list[Cropped], role: str) -> list[str]:
    """Give each segment whose value an earlier one has the next spare value (in place); what that did."""
    if not kept:
        raise InputError(f"the {role} holds no segment: give a segmentation with at least one segment")
    warnings, values = [], set()
    spare = max(value for value, *_ in kept) + 1
    for index, (value, name, box, voxels) in enumerate(kept):
        if value in values:
            warnings.append(f"segment '{name}' of the {role} has label value {value}, which another segment "
                            f"has: it is given {spare}")  # fmt: skip
            kept[index], spare = (spare, name, box, voxels), spare + 1
        values.add(kept[index][0])
    if spare > np.iinfo(np.uint16).max:
        raise InputError(f"the {role} has label values above {np.iinfo(np.uint16).max}: renumber its segments")
    kept.sort(key=lambda item: -int(item[3].sum()))  # stable: equal sizes keep their order
    return warnings


def _collected(segments: Iterable[tuple[int, str, sitk.Image]]) -> tuple[sitk.Image | None, list[Cropped]]:
    like, kept = None, []
    for value, name, mask in segments:
        like = mask if like is None else like
        kept.append((value, name, *_cropped(sitk.GetArrayViewFromImage(mask) != 0)))
    return like, kept


def _image(array: np.ndarray, like: sitk.Image, is_vector: bool = False) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=is_vector)
    image.SetOrigin(like.GetOrigin())
    image.SetSpacing(like.GetSpacing())
    image.SetDirection(like.GetDirection())
    return image


def _placed(box: tuple[slice, ...], voxels: np.ndarray, like: sitk.Image) -> sitk.Image:
    """``voxels`` (the bounding box ``box`` of ``like``'s grid) as a UInt8 image at their place in LPS mm."""
    crop = _image(voxels.astype(np.uint8), like)
    crop.SetOrigin(like.TransformIndexToPhysicalPoint([int(box[axis].start) for axis in (2, 1, 0)]))
    return crop


def _merge(kept: list[Cropped], like: sitk.Image, role: str, warnings: list[str]) -> MergedSegments:
    merged = np.zeros(like.GetSize()[::-1], np.uint16)
    names = {value: name for value, name, _, _ in kept}
    lost = set()
    for value, name, box, voxels in kept:
        under = merged[box][voxels]
        for other, shared in zip(*np.unique(under[under != 0], return_counts=True)):
            warnings.append(
                f"segments '{name}' and '{names[int(other)]}' of the {role} overlap ({int(shared)} voxels); a "
                f"labelmap holds one segment per voxel, so '{name}' is drawn over '{names[int(other)]}'"
            )
            lost.add(int(other))
        merged[box][voxels] = value
    wholes = {value: _placed(box, voxels, like) for value, _, box, voxels in kept if value in lost}
    return MergedSegments(set_label_names(_image(merged, like), names), warnings, wholes)


def merged_segments(
    segments: Iterable[tuple[int, str, sitk.Image]], role: str, say_renumbered: bool = True
) -> MergedSegments:
    """One labelmap of ``segments`` (label value, name, 0/1 mask on one grid; an iterable, so that a node's hundred
    segments need not be exported all at once), the larger drawn first; a warning for each segment drawn over
    another and (``say_renumbered``) each given a new value because another segment has its value (the first
    keeps it); and each segment that lost voxels, whole."""
    like, kept = _collected(segments)
    warnings = _numbered(kept, role)
    return _merge(kept, like, role, warnings if say_renumbered else [])


def whole_mask(labels: sitk.Image, value: int, wholes: dict[int, sitk.Image]) -> sitk.Image:
    """Segment ``value`` as drawn (UInt8 0/1 on ``labels``' grid): from ``wholes`` when others were drawn over it
    (:class:`MergedSegments`), else its voxels in ``labels``."""
    if value in wholes:
        return sitk.Resample(wholes[value], labels, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.Cast(sitk.BinaryThreshold(labels, value, value, 1, 0), sitk.sitkUInt8)


def segment_values(labels: sitk.Image, wholes: dict[int, sitk.Image]) -> set[int]:
    """The label values of the segments of a merged labelmap, a segment drawn over entirely included."""
    return (set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist()) | set(wholes)) - {0}


def layered_segments(segments: Iterable[tuple[int, str, sitk.Image]], role: str) -> tuple[sitk.Image, list[str]]:
    """``segments`` (as :func:`merged_segments` takes them) stored as Slicer stores them: each in the first layer
    where it overlaps no other, one labelmap when they all fit in one, else a vector image (a component a layer)
    with each segment's layer in its header; and the warnings of renumbering. Nothing is hidden."""
    like, kept = _collected(segments)
    warnings = _numbered(kept, role)
    taken: list[np.ndarray] = []  # each layer's occupied voxels
    placed = {}
    for value, _, box, voxels in kept:
        layer = next((i for i, occupied in enumerate(taken) if not occupied[box][voxels].any()), len(taken))
        if layer == len(taken):
            taken.append(np.zeros(like.GetSize()[::-1], bool))
        taken[layer][box][voxels] = True
        placed[value] = layer
    del taken
    layers = np.zeros((*like.GetSize()[::-1], max(placed.values()) + 1), np.uint16)
    for value, _, box, voxels in kept:
        layers[..., placed[value]][box][voxels] = value
    names = {value: name for value, name, _, _ in kept}
    if layers.shape[-1] == 1:
        return set_label_names(_image(np.ascontiguousarray(layers[..., 0]), like), names), warnings
    return set_label_names(_image(layers, like, is_vector=True), names, placed), warnings


def _layered_segments(image: sitk.Image) -> list[tuple[int, int, str]]:
    """(layer, label value, name) of each segment a Slicer segmentation's header lists."""
    found = []
    for segment in valued_prefix(header_segments(image)):
        try:
            layer = int(segment.layer) if segment.layer is not None else 0
            value = int(segment.label_value)
        except ValueError:
            raise InputError(
                f"segment {segment.index} of the segmentation has a layer or label value that is not a whole number: "
                "save the segmentation again from Slicer"
            ) from None
        found.append((layer, value, segment.name if segment.name is not None else str(value)))
    return found


def single_layer(image: sitk.Image, role: str) -> MergedSegments:
    """``image`` as one labelmap: a multi-layer Slicer segmentation merged by :func:`merged_segments` (a label value
    that two layers both use is given to the first segment, the others renumbered), with its warnings and each
    segment that lost voxels, whole; anything else as it is."""
    layers = image.GetNumberOfComponentsPerPixel()
    listed = _layered_segments(image) if layers > 1 else []
    if not listed:
        return MergedSegments(image, [], {})
    highest = int(np.iinfo(sitk.GetArrayViewFromImage(image).dtype).max)
    for layer, value, name in listed:
        if not (0 <= layer < layers and 1 <= value <= highest):
            raise InputError(
                f"the {role} lists segment '{name}' as label value {value} in layer {layer}, which it cannot hold "
                f"({layers} layers, values 1-{highest}): save it again from Slicer"
            )

    array = sitk.GetArrayViewFromImage(image)  # (z, y, x, layer)
    # One pass over a layer per segment. An empty segment keeps its name, so that choosing it is refused as empty,
    # not as absent.
    kept = [(value, name, *_cropped(array[..., layer] == value)) for layer, value, name in listed]
    if not any(voxels.any() for *_, voxels in kept):
        kept = []  # refused by _numbered
    # Drawn segments first (in the header's order): an empty one sharing a value must not take it from a drawn one,
    # which would then pair by another value with an unnamed labelmap (the session's review).
    kept.sort(key=lambda item: not item[3].any())
    # Two layers reusing a value is how Slicer stores them, not the user's doing: said only where values pair.
    renumbered = _numbered(kept, role)
    return _merge(kept, image, role, [])._replace(renumbered=tuple(renumbered))


def said_renumbered(merged: MergedSegments, other: sitk.Image | None, chosen: Iterable[str] | None) -> list[str]:
    """What renumbering ``merged`` did, where it matters: segments pair by label value when ``other`` (the other
    side's segmentation) names none, and a user may choose them by value (``chosen``, as ``--segments`` takes
    them: "2", "gland=1")."""
    by_value = other is not None and not label_names(other)
    named_by_value = any(part.strip().isdigit() for entry in chosen or [] for part in entry.split("="))
    return list(merged.renumbered) if by_value or named_by_value else []
