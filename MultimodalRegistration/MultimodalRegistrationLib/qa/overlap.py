"""Segmentation overlap: warp a moving labelmap onto the fixed one, then Dice and surface distances per label.

Labelmaps are SimpleITK integer images (LPS mm). The moving labelmap is resampled onto the fixed
labelmap's grid through the fixed -> moving transform, with nearest-neighbour or label-Gaussian
interpolation, so labels never blend. Surface distances are measured between the label contours,
in mm, in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.transforms import Transform

INTERPOLATIONS = {"nearest": sitk.sitkNearestNeighbor, "gaussian": sitk.sitkLabelGaussian}
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


def warp_labels(
    moving_labels: sitk.Image, reference: sitk.Image, transform: Transform, interpolation: str = "nearest"
) -> sitk.Image:
    """Resample a moving labelmap onto ``reference``'s grid through ``transform`` (fixed -> moving).

    ``interpolation`` is ``nearest`` (nearest neighbour) or ``gaussian`` (label-Gaussian: smoother
    boundaries when the moving grid is coarser). Voxels outside the moving image get label 0.
    """
    if interpolation not in INTERPOLATIONS:
        raise InputError(f"unknown label interpolation '{interpolation}': choose nearest or gaussian")
    moving_labels = as_labelmap(moving_labels, "moving labelmap")
    return sitk.Resample(
        moving_labels, reference, transform.sitk, INTERPOLATIONS[interpolation], 0, moving_labels.GetPixelID()
    )


@dataclass
class LabelOverlap:
    """Agreement of one label: Dice (0..1), mean symmetric surface distance and 95% Hausdorff distance (mm)."""

    label: int
    name: str
    dice: float
    mean_surface_distance_mm: float | None  # None when the label is missing from one image
    hausdorff95_mm: float | None
    fixed_volume_ml: float
    moving_volume_ml: float  # of the warped moving label

    def to_dict(self) -> dict:
        def rounded(value):
            return None if value is None else round(value, 4)

        return {
            "label": self.label,
            "name": self.name,
            "dice": round(self.dice, 6),
            "mean_surface_distance_mm": rounded(self.mean_surface_distance_mm),
            "hausdorff95_mm": rounded(self.hausdorff95_mm),
            "fixed_volume_ml": round(self.fixed_volume_ml, 4),
            "moving_volume_ml": round(self.moving_volume_ml, 4),
        }


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


def label_overlap(
    fixed_labels: sitk.Image, warped_labels: sitk.Image, labels: list[int] | None = None
) -> list[LabelOverlap]:
    """Per-label overlap of two labelmaps on the same grid (the warped one from :func:`warp_labels`)."""
    fixed_labels = as_labelmap(fixed_labels, "fixed labelmap")
    if fixed_labels.GetSize() != warped_labels.GetSize():
        raise InputError("the labelmaps are on different grids: warp the moving labelmap with warp_labels first")
    fixed_array = sitk.GetArrayViewFromImage(fixed_labels)
    warped_array = sitk.GetArrayViewFromImage(warped_labels)
    if labels is None:
        labels = sorted((set(np.unique(fixed_array).tolist()) | set(np.unique(warped_array).tolist())) - {0})
    voxel_ml = float(np.prod(fixed_labels.GetSpacing())) / 1000.0
    names = label_names(fixed_labels)
    results = []
    for label in labels:
        fixed_mask, moving_mask = fixed_array == label, warped_array == label
        fixed_count, moving_count = int(fixed_mask.sum()), int(moving_mask.sum())
        if fixed_count + moving_count == 0:
            dice = 0.0
        else:
            dice = 2.0 * int(np.count_nonzero(fixed_mask & moving_mask)) / (fixed_count + moving_count)
        mean = hausdorff95 = None
        if fixed_count and moving_count:
            mean, hausdorff95 = surface_distances(fixed_mask, moving_mask, fixed_labels)
        results.append(
            LabelOverlap(
                int(label),
                names.get(int(label), str(label)),
                dice,
                mean,
                hausdorff95,
                fixed_count * voxel_ml,
                moving_count * voxel_ml,
            )
        )
    return results


@dataclass
class SegmentationOverlap:
    """Per-label overlap before and after registration, and how the moving labelmap was warped."""

    before: list[LabelOverlap]
    after: list[LabelOverlap]
    interpolation: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "interpolation": self.interpolation,
            "before": [row.to_dict() for row in self.before],
            "after": [row.to_dict() for row in self.after],
            "warnings": list(self.warnings),
        }


def segmentation_overlap(
    fixed_labels: sitk.Image,
    moving_labels: sitk.Image,
    transform: Transform,
    before: Transform | None = None,
    interpolation: str = "nearest",
) -> SegmentationOverlap:
    """Dice, mean surface distance and 95% Hausdorff distance (mm) per label, before and after registration.

    ``transform`` maps fixed to moving points (LPS); ``before`` (default identity) is the pose before
    registration. Labels are the non-zero values of either labelmap.
    """
    fixed_labels = as_labelmap(fixed_labels, "fixed labelmap")
    moving_labels = as_labelmap(moving_labels, "moving labelmap")
    fixed_values = set(np.unique(sitk.GetArrayViewFromImage(fixed_labels)).tolist()) - {0}
    moving_values = set(np.unique(sitk.GetArrayViewFromImage(moving_labels)).tolist()) - {0}
    if not fixed_values or not moving_values:
        role = "fixed" if not fixed_values else "moving"
        raise InputError(f"the {role} labelmap is empty (every voxel is 0): give the labelmap with the segments")
    warnings = []
    if not fixed_values & moving_values:
        warnings.append(
            f"no label value is in both labelmaps (fixed {sorted(fixed_values)}, moving {sorted(moving_values)}): "
            "give the same structure the same label value in both"
        )
    labels = sorted(fixed_values | moving_values)
    results = {}
    for name, pose in (("before", before or Transform.identity()), ("after", transform)):
        warped = warp_labels(moving_labels, fixed_labels, pose, interpolation)
        results[name] = label_overlap(fixed_labels, warped, labels)
    return SegmentationOverlap(results["before"], results["after"], interpolation, warnings)
