"""Segments that overlap, as one labelmap (LPS mm).

A labelmap holds one segment per voxel; Slicer keeps overlapping segments (a lesion inside the gland) in
layers, and saves them as a multi-layer ``.seg.nrrd`` (read as a vector image: one component a layer, each
segment a label value within its layer). One labelmap of them is drawn largest segment first, so that a
segment drawn inside another stays whole and leaves a hole in the larger one (guidance fills such holes).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .labels import set_label_names


def merged_segments(segments: list[tuple[int, str, sitk.Image]], role: str) -> tuple[sitk.Image, list[str]]:
    """One labelmap (UInt16, names stored as Slicer does) of ``segments`` (label value, name, 0/1 mask on one
    grid), the larger drawn first; and a warning for each pair that overlaps."""
    if not segments:
        raise InputError(f"the {role} holds no segment: give a segmentation with at least one segment")
    arrays = [(value, name, sitk.GetArrayFromImage(mask) != 0) for value, name, mask in segments]
    arrays.sort(key=lambda item: -int(item[2].sum()))  # stable: equal sizes keep their order
    merged = np.zeros(arrays[0][2].shape, np.uint16)
    warnings = []
    for index, (value, name, voxels) in enumerate(arrays):
        for _, larger, drawn in arrays[:index]:
            shared = int(np.count_nonzero(voxels & drawn))
            if shared:
                warnings.append(
                    f"segments '{name}' and '{larger}' of the {role} overlap ({shared} voxels); a labelmap holds "
                    f"one segment per voxel, so '{name}' is drawn over '{larger}'"
                )
        merged[voxels] = value
    labels = sitk.GetImageFromArray(merged)
    labels.CopyInformation(segments[0][2])
    return set_label_names(labels, {value: name for value, name, _ in arrays}), warnings


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


def single_layer(image: sitk.Image, role: str) -> tuple[sitk.Image, list[str]]:
    """``image`` as one labelmap: a multi-layer Slicer segmentation merged by :func:`merged_segments` (its segments
    renumbered 1, 2, ... when layers reuse label values), with the overlap warnings; anything else as it is."""
    layers = image.GetNumberOfComponentsPerPixel()
    listed = _layered_segments(image) if layers > 1 else []
    if not listed:
        return image, []
    if any(not 0 <= layer < layers for layer, _, _ in listed):
        raise InputError(
            f"the {role} lists a segment in a layer it does not hold ({layers} layers): save it again from Slicer"
        )
    values = [value for _, value, _ in listed]
    renumber = len(set(values)) < len(values)
    segments = []
    for number, (layer, value, name) in enumerate(listed, start=1):
        component = sitk.VectorIndexSelectionCast(image, layer)
        mask = sitk.Cast(sitk.BinaryThreshold(component, value, value, 1, 0), sitk.sitkUInt8)
        if np.any(sitk.GetArrayViewFromImage(mask)):
            segments.append((number if renumber else value, name, mask))
    return merged_segments(segments, role)
