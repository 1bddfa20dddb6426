"""Labelmaps: integer images (LPS mm) whose non-zero values name segments, and the names Slicer stores with them."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import InputError

INTEGER_TYPES = {
    sitk.sitkUInt8,
    sitk.sitkInt8,
    sitk.sitkUInt16,
    sitk.sitkInt16,
    sitk.sitkUInt32,
    sitk.sitkInt32,
    sitk.sitkUInt64,
    sitk.sitkInt64,
}


def as_labelmap(image: sitk.Image, role: str = "labelmap") -> sitk.Image:
    """Check that ``image`` is a 3D labelmap; a float image holding whole numbers is cast to integers."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{role} must be a 3D scalar label image (one label value per voxel): export the segmentation "
            "as a labelmap volume (a multi-layer .seg.nrrd holds overlapping segments)"
        )
    if image.GetPixelID() in INTEGER_TYPES:
        return image
    values = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise InputError(f"{role} holds fractional values: it looks like an intensity image, give a labelmap")
    return sitk.Cast(image, sitk.sitkInt32)


def label_names(image: sitk.Image) -> dict[int, str]:
    """Segment names stored by Slicer in a single-layer .seg.nrrd header (``SegmentN_Name``), if any."""
    names = {}
    keys = set(image.GetMetaDataKeys())
    index = 0
    while f"Segment{index}_Name" in keys:
        value_key = f"Segment{index}_LabelValue"
        if value_key in keys:
            try:
                names[int(image.GetMetaData(value_key))] = image.GetMetaData(f"Segment{index}_Name")
            except ValueError:
                pass
        index += 1
    return names


def relabel_by_name(moving: sitk.Image, fixed: sitk.Image) -> sitk.Image:
    """``moving`` with each named segment given the label value its name has in ``fixed`` (both must carry
    Slicer's segment names; otherwise ``moving`` as it is). Names only in ``moving`` get new values."""
    fixed_names, moving_names = label_names(fixed), label_names(moving)
    if not (fixed_names and moving_names):
        return moving
    value_of = {name: value for value, name in fixed_names.items()}
    spare = max(list(fixed_names) + list(moving_names)) + 1
    mapping, names = {}, {}
    for value, name in sorted(moving_names.items()):
        if name not in value_of:
            value_of[name], spare = spare, spare + 1
        mapping[value], names[value_of[name]] = value_of[name], name
    if all(old == new for old, new in mapping.items()):
        return moving
    array = sitk.GetArrayViewFromImage(moving)
    relabelled = np.zeros(array.shape, np.int32)
    for old, new in mapping.items():
        relabelled[array == old] = new
    result = sitk.GetImageFromArray(relabelled)
    result.CopyInformation(moving)
    for index, (value, name) in enumerate(sorted(names.items())):
        result.SetMetaData(f"Segment{index}_Name", name)
        result.SetMetaData(f"Segment{index}_LabelValue", str(value))
    return result


def _bounding_slices(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """Array (z, y, x) slices around the set voxels, one voxel wider on each side."""
    slices = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        slices.append(slice(max(present[0] - 1, 0), min(present[-1] + 2, mask.shape[axis])))
    return tuple(slices)


def _directed_distances(source: sitk.Image, target: sitk.Image) -> np.ndarray:
    """Distances (mm) from each contour voxel of ``source`` to the nearest contour voxel of ``target``."""
    # Distances to the target's contour (not to the target object), clipped at 0 on the contour itself,
    # so that identical masks give exactly 0 whatever connectivity defines the contour.
    signed = sitk.SignedMaurerDistanceMap(
        sitk.LabelContour(target), insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    contour = sitk.GetArrayFromImage(sitk.LabelContour(source)) != 0
    return np.maximum(sitk.GetArrayFromImage(signed)[contour].astype(float), 0.0)


def surface_distances(fixed_mask: np.ndarray, moving_mask: np.ndarray, reference: sitk.Image) -> tuple[float, float]:
    """(mean symmetric surface distance, 95% Hausdorff distance) in mm between two boolean masks (z, y, x).

    The mean pools the distances of both contours to each other; the 95% Hausdorff distance is the
    larger of the two directed 95th percentiles.
    """
    z, y, x = _bounding_slices(fixed_mask | moving_mask)
    spacing = reference.GetSpacing()

    def crop(mask: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(mask[z, y, x].astype(np.uint8))
        image.SetSpacing(spacing)  # distances need the spacing only: orientation does not change them
        return image

    fixed_image, moving_image = crop(fixed_mask), crop(moving_mask)
    forward = _directed_distances(fixed_image, moving_image)
    backward = _directed_distances(moving_image, fixed_image)
    mean = float(np.concatenate([forward, backward]).mean())
    hausdorff95 = float(max(np.percentile(forward, 95), np.percentile(backward, 95)))
    return mean, hausdorff95
