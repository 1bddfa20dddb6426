"""Segmentation overlap: warp a moving labelmap onto the fixed one, then Dice and surface distances per label.

Labelmaps are SimpleITK integer images (LPS mm). The moving labelmap is resampled onto the fixed
labelmap's grid through the fixed -> moving transform, with nearest-neighbour or label-Gaussian
interpolation, so labels never blend. Surface distances are measured between the label contours,
in mm, in both directions. Given the images, a segment an image's field of view cuts (an MR box, an ultrasound
fan) is measured only where both images see it (:mod:`..core.views`): its cut face is the edge of the data,
not the organ's surface.
"""

from __future__ import annotations

import filecmp
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.images import same_grid
from ..core.labels import (
    as_labelmap,
    label_names,
    lone_segments_paired,
    relabel_by_name,
    set_label_names,
    surface_distances,
    values_by_name,
    with_header,
)
from ..core.output_safety import same_place
from ..core.records import Record
from ..core.segment_layers import said_renumbered, segment_values, single_layer, whole_mask
from ..core.transforms import Transform
from ..core.views import common_view, cut_by, fields_of_view, limited_to_view
from ..registration.guided.guidance import given_pair, values_and_names
from .label_grid import covering_fixed_image
from .segment_pairing import check_some_pair, exchanged_segments, unpaired_segments

INTERPOLATIONS = {"nearest": sitk.sitkNearestNeighbor, "gaussian": sitk.sitkLabelGaussian}


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
class LabelOverlap(Record):
    """Agreement of one label: Dice (0..1), mean symmetric surface distance and 95% Hausdorff distance (mm)."""

    label: int
    name: str
    dice: float
    mean_surface_distance_mm: float | None  # None when the label is missing from one image
    hausdorff95_mm: float | None
    fixed_volume_ml: float
    moving_volume_ml: float  # of the warped moving label
    # which field of view ("fixed", "moving", "both") cut the segment, so that Dice and surface distances count
    # only where both images see it; None: measured whole (left out of the JSON, as in older reports)
    limited_by_field_of_view: str | None = None

    def to_dict(self) -> dict:
        def rounded(value):
            return None if value is None else round(value, 4)

        record = {
            "label": self.label,
            "name": self.name,
            "dice": round(self.dice, 6),
            "mean_surface_distance_mm": rounded(self.mean_surface_distance_mm),
            "hausdorff95_mm": rounded(self.hausdorff95_mm),
            "fixed_volume_ml": round(self.fixed_volume_ml, 4),
            "moving_volume_ml": round(self.moving_volume_ml, 4),
        }
        if self.limited_by_field_of_view is not None:
            record["limited_by_field_of_view"] = self.limited_by_field_of_view
        return record


LIMITED_BY = {(True, False): "fixed", (False, True): "moving", (True, True): "both"}


@dataclass
class SegmentCuts:
    """The fields of view of a QA pair's images and the segments (label values) each cuts, each on its labelmap's
    grid (None: that side limits nothing)."""

    fixed_fov: sitk.Image | None
    moving_fov: sitk.Image | None
    fixed_cut: set[int]  # the fixed field of view cuts these fixed segments
    moving_cut: set[int]  # the moving one cuts these moving segments, on the moving grid before any warp

    @classmethod
    def of(cls, images: tuple, labelmaps: tuple, wholes: tuple, values: tuple) -> SegmentCuts:
        """(fixed, moving) ``images`` (an image None: that side limits nothing), their one-layer ``labelmaps``, the
        segments drawn over others (``wholes``, :func:`prepared_labels`) and the label ``values`` of each side."""
        fovs, cuts = [None, None], [set(), set()]
        for side, (image, labels, drawn_over, side_values) in enumerate(zip(images, labelmaps, wholes, values)):
            if image is None:
                continue
            fov, edge = fields_of_view(image, labels)  # on the labelmap's grid; 0 where the image has no voxels
            cuts[side] = {value for value in side_values if cut_by(whole_mask(labels, value, drawn_over), edge)}
            if cuts[side]:
                fovs[side] = fov
        return cls(fovs[0], fovs[1], cuts[0], cuts[1])

    def views(self, labels: list[int], transform: Transform, like: sitk.Image) -> dict[int, tuple[np.ndarray, str]]:
        """Per cut segment, where it is measured under ``transform`` (fixed -> moving): the common view (boolean
        z, y, x on ``like``, the fixed labelmap's grid) and which field of view limits it (:data:`LIMITED_BY`)."""
        views, made = {}, {}
        for label in labels:
            cut = (label in self.fixed_cut, label in self.moving_cut)
            if cut in LIMITED_BY:
                if cut not in made:
                    made[cut] = common_view(self.fixed_fov, self.moving_fov, transform, like, cut)
                views[label] = (made[cut], LIMITED_BY[cut])
        return views


def label_overlap(
    fixed_labels: sitk.Image,
    warped_labels: sitk.Image,
    labels: list[int] | None = None,
    wholes: tuple[dict[int, np.ndarray], dict[int, np.ndarray]] = ({}, {}),
    names: dict[int, str] | None = None,
    views: dict[int, tuple[np.ndarray, str]] | None = None,
) -> list[LabelOverlap]:
    """Per-label overlap of two labelmaps on the same grid (the warped one from :func:`warp_labels`); ``wholes``
    (fixed, warped moving: label -> boolean array on that grid) gives the segments others were drawn over as
    drawn (:class:`..core.segment_layers.MergedSegments`), so that each is measured whole. ``names``: each
    label's segment name (default: the fixed labelmap's). ``views`` (label -> where both images see it, boolean
    z, y, x on that grid, and which field of view limits it: :meth:`SegmentCuts.views`): Dice and surface
    distances count only there, unless the fixed segment lies wholly outside it. Volumes are the whole segments'."""
    fixed_labels = as_labelmap(fixed_labels, "fixed labelmap")
    if fixed_labels.GetSize() != warped_labels.GetSize():
        raise InputError("the labelmaps are on different grids: warp the moving labelmap with warp_labels first")
    fixed_array = sitk.GetArrayViewFromImage(fixed_labels)
    warped_array = sitk.GetArrayViewFromImage(warped_labels)
    if labels is None:
        labels = sorted((set(np.unique(fixed_array).tolist()) | set(np.unique(warped_array).tolist())) - {0})
    voxel_ml = float(np.prod(fixed_labels.GetSpacing())) / 1000.0
    names = label_names(fixed_labels) if names is None else names
    results = []
    for label in labels:  # (not .get(): it would compare the whole grid for every label)
        fixed_mask = wholes[0][label] if label in wholes[0] else fixed_array == label  # noqa: SIM401
        moving_mask = wholes[1][label] if label in wholes[1] else warped_array == label  # noqa: SIM401
        fixed_count, moving_count = int(fixed_mask.sum()), int(moving_mask.sum())
        view, limited_by = (views or {}).get(label, (None, None))
        fixed_mask, moving_mask, view = limited_to_view(fixed_mask, moving_mask, view)
        limited_by = limited_by if view is not None else None
        seen_fixed, seen_moving = int(fixed_mask.sum()), int(moving_mask.sum())
        if seen_fixed + seen_moving == 0:
            dice = 0.0
        else:
            dice = 2.0 * int(np.count_nonzero(fixed_mask & moving_mask)) / (seen_fixed + seen_moving)
        mean = hausdorff95 = None
        if seen_fixed and seen_moving:
            mean, hausdorff95 = surface_distances(fixed_mask, moving_mask, fixed_labels, view)
        results.append(
            LabelOverlap(
                int(label),
                names.get(int(label), str(label)),
                dice,
                mean,
                hausdorff95,
                fixed_count * voxel_ml,
                moving_count * voxel_ml,
                limited_by,
            )
        )
    return results


@dataclass
class SegmentationOverlap(Record):
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


def _lone_segment_paired(fixed_labels, moving_labels, fixed_value: int, moving_value: int) -> tuple[sitk.Image, str]:
    """The moving labelmap's one segment given the fixed one's value, and the warning that says so."""
    fixed = (fixed_value, label_names(fixed_labels).get(fixed_value))
    moving = (moving_value, label_names(moving_labels).get(moving_value))
    relabelled = sitk.Cast(moving_labels == moving_value, sitk.sitkInt32) * fixed_value
    return relabelled, lone_segments_paired(fixed, moving, "labelmap")


def _drawn_on_top(labels: sitk.Image, value: int, wholes: dict[int, sitk.Image]) -> sitk.Image:
    """``labels`` with segment ``value`` drawn whole over the others: warped with label-Gaussian interpolation it
    keeps its borders with its neighbours as a labelmap of it alone would not (a lone segment's corners round)."""
    array = sitk.GetArrayFromImage(labels)
    array[sitk.GetArrayFromImage(whole_mask(labels, value, wholes)) != 0] = value
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(labels)
    return image


SAME_LABELMAP_ADVICE = (
    "the Dice measures only the transform's own motion of one labelmap, not how well the images agree: "
    "give the moving image's own segmentation as the moving labelmap"
)


def _same_file(fixed_file: str | os.PathLike | None, moving_file: str | os.PathLike | None) -> str | None:
    """How two labelmap files are one: the same path, or byte-identical content; None when they differ."""
    if not fixed_file or not moving_file or not (os.path.isfile(fixed_file) and os.path.isfile(moving_file)):
        return None
    if same_place(Path(fixed_file), Path(moving_file)):
        return f"the same file ({fixed_file})"
    if filecmp.cmp(fixed_file, moving_file, shallow=False):
        return f"the same file: {fixed_file} and {moving_file} are byte-identical"
    return None


def _same_image(fixed_labels: sitk.Image, moving_labels: sitk.Image) -> bool:
    """Whether two labelmaps are one image: the same object, or the same grid (LPS mm) and the same voxels."""
    if fixed_labels is moving_labels:
        return True
    if not same_grid(fixed_labels, moving_labels):
        return False
    return bool(np.array_equal(sitk.GetArrayViewFromImage(fixed_labels), sitk.GetArrayViewFromImage(moving_labels)))


def same_labelmap_warning(
    fixed_labels: sitk.Image,
    moving_labels: sitk.Image,
    fixed_file: str | os.PathLike | None = None,
    moving_file: str | os.PathLike | None = None,
) -> str | None:
    """The warning when the fixed and moving labelmaps are one (same file, byte-identical files, or the same
    image: grid and voxels); None when they differ. A warning, not a refusal: a user may mean it."""
    said = _same_file(fixed_file, moving_file)
    if said is None and _same_image(fixed_labels, moving_labels):
        said = "the same labelmap (the same image: grid and voxels)"
    return None if said is None else f"the fixed and moving labelmaps are {said}: {SAME_LABELMAP_ADVICE}"


def _paired_apart(fixed_labels: sitk.Image, moving_labels: sitk.Image, pairs: Sequence[str] | None) -> sitk.Image:
    """``moving_labels`` with each segment a "FIXED=MOVING" entry of ``pairs`` names made its fixed partner's, as
    the registration's --segments pairs them (:func:`..registration.guided.guidance.given_pair`: names, case and
    spacing ignored, or label values): renamed as it when both labelmaps carry names, else given its label value.
    QA had read a gland=prostate pair as two unpaired segments (Dice 0 -> 0) and batch called the case 'check' (a
    helper's walk through the README)."""
    wanted = [entry for entry in pairs or () if "=" in entry]
    if not wanted:
        return moving_labels
    given = [given_pair(entry, values_and_names(fixed_labels), values_and_names(moving_labels)) for entry in wanted]
    names = label_names(moving_labels)
    if names and label_names(fixed_labels):
        return set_label_names(sitk.Image(moving_labels), names | {pair.moving_value: pair.name for pair in given})
    changes: dict[float, float] = {}
    for pair in given:
        if pair.moving_value != pair.fixed_value:  # a moving segment that holds the fixed value takes the other's
            changes[float(pair.moving_value)] = float(pair.fixed_value)
            changes.setdefault(float(pair.fixed_value), float(pair.moving_value))
    relabelled = sitk.ChangeLabel(moving_labels, changeMap=changes) if changes else sitk.Image(moving_labels)
    return with_header(relabelled, moving_labels)


def prepared_labels(
    fixed_labels: sitk.Image, moving_labels: sitk.Image, interpolation: str = "nearest",
    pairs: Sequence[str] | None = None,
) -> tuple:  # fmt: skip
    """The labelmaps checked and made comparable, before any measurement: one layer each, integer, the moving
    segments renumbered by name as the fixed ones (:func:`..core.labels.relabel_by_name`; ``pairs``: "FIXED=MOVING"
    entries pair two named apart). Returns (fixed, moving, fixed wholes, moving wholes, fixed values, moving values,
    warnings); :class:`InputError` for an unknown interpolation, an empty labelmap or names that cannot be told
    apart."""
    if interpolation not in INTERPOLATIONS:
        raise InputError(f"unknown label interpolation '{interpolation}': choose nearest or gaussian")
    fixed_merged = single_layer(fixed_labels, "fixed labelmap")
    moving_merged = single_layer(moving_labels, "moving labelmap")
    layer_warnings = (fixed_merged.warnings + said_renumbered(fixed_merged, moving_labels, pairs)
                      + moving_merged.warnings + said_renumbered(moving_merged, fixed_labels, pairs))  # fmt: skip
    (fixed_labels, _, fixed_wholes, _), (moving_labels, _, moving_wholes, _) = fixed_merged, moving_merged
    fixed_labels = as_labelmap(fixed_labels, "fixed labelmap")
    moving_labels = _paired_apart(fixed_labels, as_labelmap(moving_labels, "moving labelmap"), pairs)
    renumbered = values_by_name(moving_labels, fixed_labels)
    moving_wholes = {renumbered.get(value, value): whole for value, whole in moving_wholes.items()}
    moving_labels = relabel_by_name(moving_labels, fixed_labels)
    fixed_values = segment_values(fixed_labels, fixed_wholes)
    moving_values = segment_values(moving_labels, moving_wholes)
    if not fixed_values or not moving_values:
        role = "fixed" if not fixed_values else "moving"
        raise InputError(f"the {role} labelmap is empty (every voxel is 0): give the labelmap with the segments")
    check_some_pair(fixed_values, moving_values, label_names(fixed_labels), label_names(moving_labels))
    return fixed_labels, moving_labels, fixed_wholes, moving_wholes, fixed_values, moving_values, layer_warnings


def segmentation_overlap(
    fixed_labels: sitk.Image,
    moving_labels: sitk.Image,
    transform: Transform,
    before: Transform | None = None,
    interpolation: str = "nearest",
    fixed_image: sitk.Image | None = None,
    moving_image: sitk.Image | None = None,
    pairs: Sequence[str] | None = None,
) -> SegmentationOverlap:
    """Dice, mean surface distance and 95% Hausdorff distance (mm) per label, before and after registration.

    ``transform`` maps fixed to moving points (LPS); ``before`` (default identity) is the pose before
    registration. Labels are the non-zero values of either labelmap; when both carry Slicer's segment
    names, segments pair by name whatever their values. With the (intensity) images, a segment one's field of
    view cuts is measured, at each pose, only where both images see it (:class:`SegmentCuts`); without them
    (None), whole. A fixed labelmap cropped to its segments is measured grown to the fixed image's box
    (:func:`.label_grid.covering_fixed_image`).
    """
    fixed_labels, too_large = covering_fixed_image(fixed_labels, fixed_image)
    prepared = prepared_labels(fixed_labels, moving_labels, interpolation, pairs)
    fixed_labels, moving_labels, fixed_wholes, moving_wholes, fixed_values, moving_values, warnings = prepared
    warnings += [too_large] if too_large else []
    if not fixed_values & moving_values and len(fixed_values) == len(moving_values) == 1:
        moving_labels, lone = _lone_segment_paired(fixed_labels, moving_labels, *fixed_values, *moving_values)
        moving_values = set(fixed_values)
        warnings.append(lone)
    if not fixed_values & moving_values:
        warnings.append(
            f"no label value is in both labelmaps (fixed {sorted(fixed_values)}, moving {sorted(moving_values)}): "
            "give the same structure the same label value in both"
        )
    names = label_names(moving_labels) | label_names(fixed_labels)  # a segment on the moving side only named too
    if fixed_values & moving_values:
        warnings += unpaired_segments(fixed_values, moving_values, names)
    labels = sorted(fixed_values | moving_values)
    results = {}
    fixed_whole = {value: sitk.GetArrayFromImage(whole_mask(fixed_labels, value, fixed_wholes)) != 0
                   for value in fixed_wholes}  # fmt: skip
    on_top = {value: _drawn_on_top(moving_labels, value, moving_wholes) for value in moving_wholes}
    cuts = None
    if fixed_image is not None or moving_image is not None:
        cuts = SegmentCuts.of((fixed_image, moving_image), (fixed_labels, moving_labels),
                              (fixed_wholes, moving_wholes), (fixed_values, moving_values))  # fmt: skip
    for name, pose in (("before", before or Transform.identity()), ("after", transform)):
        warped = warp_labels(moving_labels, fixed_labels, pose, interpolation)
        warped_whole = {value: sitk.GetArrayFromImage(warp_labels(drawn, fixed_labels, pose, interpolation)) == value
                        for value, drawn in on_top.items()}  # fmt: skip
        views = cuts.views(labels, pose, fixed_labels) if cuts is not None else None
        results[name] = label_overlap(fixed_labels, warped, labels, (fixed_whole, warped_whole), names, views)
    warnings += exchanged_segments(fixed_labels, warped, labels, names)  # at the result's pose
    warnings += _limited_note(results["before"] + results["after"])
    return SegmentationOverlap(results["before"], results["after"], interpolation, warnings)


def _limited_note(rows: list[LabelOverlap]) -> list[str]:
    """The note naming the segments a field of view cut, measured only where both images see them."""
    limited = {}
    for row in rows:
        if row.limited_by_field_of_view is not None:
            limited.setdefault(row.name, row.limited_by_field_of_view)
    if not limited:
        return []
    whose = {"fixed": "the fixed image's", "moving": "the moving image's", "both": "both images'"}
    said = ", ".join(f"'{name}' ({whose[side]})" for name, side in limited.items())
    return [(f"a field of view cuts segment(s) {said}: their Dice and surface distances count only where both "
             "images see them, so the face at the edge of the data is not taken for the organ's surface")]
