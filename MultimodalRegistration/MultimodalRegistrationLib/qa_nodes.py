"""Registration QA on MRML nodes: volumes, a transform node, point lists and segmentations in, the
metrics (:func:`.qa.assess_registration`) and a metric/value/unit table node out. The call behind the
MultimodalRegistrationQA module and the Python console. Only node methods are used here; :mod:`.mrml`
is the one file that imports MRML.

What is measured. The QA measures T, the mapping from the fixed volume's space to the moving volume's
own (untransformed) voxel space, fixed -> moving like every transform of this extension:

* moving volume not under ``transform_node``: T is the node's TransformFromParent. A registration
  started from the moving volume's unhardened parent transforms already includes them (see
  :func:`.nodes.register_nodes`), so they are not added again; they are the "before" pose.
* moving volume under ``transform_node`` (directly or higher up its chain): T is the whole chain the
  volume is shown through, i.e. what the slice views show; "before" is that chain without the node.
* no ``transform_node``: T is the moving volume as it is shown now; "before" is the identity.

Fixed-side nodes are read where they are shown (world RAS); the fixed volume must not be transformed.
Moving-side point lists and labelmaps belong to the moving image: one under the same transform as the
moving volume moves with it (its own coordinates are used); one under no transform holds moving-image
coordinates (loaded from a file, or placed before the volume was moved); one under another transform
is refused as ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk
import vtk

from . import mrml
from .choices import ENGINES
from .errors import InputError
from .landmark_nodes import placed_points
from .nodes import ATTRIBUTE_PREFIX as REGISTRATION_PREFIX
from .qa import assess_registration, write_qa_outputs
from .qa_landmarks import pair_landmarks
from .transforms import Transform

ATTRIBUTE_PREFIX = "MultimodalRegistrationQA."
TABLE_COLUMNS = ("metric", "value", "unit")

Progress = Callable[[float, str], None]


@dataclass
class QAInputs:
    """The nodes converted for :func:`.qa.assess_registration` (images LPS, points world RAS mm)."""

    fixed: sitk.Image
    moving: sitk.Image
    transform: Transform  # fixed -> moving voxel space (LPS)
    before: Transform
    pose: str  # how T and "before" were read from the scene, in words
    inverse: Transform | None = None
    points: dict = field(default_factory=dict)  # landmark keyword arguments of assess_registration
    paired_by: str | None = None
    fixed_labels: sitk.Image | None = None
    moving_labels: sitk.Image | None = None
    sources: dict = field(default_factory=dict)  # node names, for the report
    stability_options: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- frames
def _parents(node) -> list:
    """The node's parent transform nodes, the direct parent first."""
    parents = []
    parent = node.GetParentTransformNode()
    while parent is not None:
        parents.append(parent)
        parent = parent.GetParentTransformNode()
    return parents


def _same_frame(node, volume) -> bool:
    return node.GetTransformNodeID() == volume.GetTransformNodeID()


def registration_pose(transform_node, moving_volume) -> tuple[Transform, Transform, str]:
    """(T, before, description): T maps fixed space to the moving volume's voxel space (LPS); see the
    module docstring for how unhardened parent transforms of the moving volume are read."""
    parents = _parents(moving_volume)
    names = " -> ".join(f"'{p.GetName()}'" for p in parents)
    if transform_node is None:
        return mrml.world_transform(moving_volume), Transform.identity(), (
            f"the moving volume as shown ({names or 'no transform'}); before: no transform"
        )
    ids = [p.GetID() for p in parents]
    if transform_node.GetID() in ids:
        others = [p for p in parents if p.GetID() != transform_node.GetID()]
        before = Transform.chain([mrml.transform_from_node(p) for p in others])
        rest = " -> ".join(f"'{p.GetName()}'" for p in others) or "no transform"
        return mrml.world_transform(moving_volume), before, (
            f"the moving volume as shown, through {names}; before: without '{transform_node.GetName()}' ({rest})"
        )
    description = f"'{transform_node.GetName()}' (TransformFromParent, fixed -> moving)"
    if parents:
        description += f"; before: the moving volume's own parent transforms ({names})"
    else:
        description += "; before: no transform"
    return mrml.transform_from_node(transform_node), mrml.world_transform(moving_volume), description


def _check_moving_frame(node, moving_volume, role: str) -> None:
    if node.GetParentTransformNode() is not None and not _same_frame(node, moving_volume):
        volume_parent = moving_volume.GetParentTransformNode()
        where = f"under '{volume_parent.GetName()}'" if volume_parent else "under no transform"
        raise InputError(
            f"the {role} '{node.GetName()}' is under transform '{node.GetParentTransformNode().GetName()}' but the "
            f"moving volume is {where}, so it is unclear where its points are on the moving image: put it under "
            "the same transform as the moving volume, or take it out of its transform (Data module)"
        )


def moving_points(markups, moving_volume, role: str = "moving points") -> tuple[np.ndarray, list[str]]:
    """A moving-side list's points in the moving volume's own frame (RAS mm) and their labels."""
    world, labels = placed_points(markups, role)
    _check_moving_frame(markups, moving_volume, f"{role} list")
    if markups.GetParentTransformNode() is None:
        return world, labels
    local = np.zeros_like(world)
    for index in range(len(local)):
        position = [0.0, 0.0, 0.0]
        markups.GetNthControlPointPosition(index, position)  # its own coordinates: it moves with the volume
        local[index] = position
    return local, labels


# --------------------------------------------------------------------------- landmarks
def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return result


def landmark_arguments(
    moving_volume, fit_lists: tuple, target_lists: tuple
) -> tuple[dict, str | None, list[str], dict]:
    """Pair the fit lists and the target lists separately, then join them for assess_registration.

    Returns (keyword arguments, how the pairs were matched, pairing warnings, source names).
    """
    joined = {"fixed": [], "moving": [], "labels": [], "roles": []}
    paired, warnings, sources = [], [], {}
    for role, (fixed_node, moving_node) in (("fit", fit_lists), ("target", target_lists)):
        if fixed_node is None and moving_node is None:
            continue
        if fixed_node is None or moving_node is None:
            side = "fixed" if fixed_node is None else "moving"
            raise InputError(f"{role} landmarks need two lists: select the {side} {role} point list, or neither")
        if fixed_node is moving_node:
            raise InputError(f"the fixed and moving {role} point lists are the same node: select two lists")
        fixed, fixed_labels = placed_points(fixed_node, f"fixed {role}")
        moving, moving_labels = moving_points(moving_node, moving_volume, f"moving {role}")
        for side, node, points in (("fixed", fixed_node, fixed), ("moving", moving_node, moving)):
            if len(points) == 0:
                raise InputError(f"the {side} {role} list '{node.GetName()}' has no points: place them or clear it")
        fixed, moving, labels, how, notes = pair_landmarks(fixed, moving, fixed_labels, moving_labels)
        joined["fixed"].append(fixed)
        joined["moving"].append(moving)
        joined["labels"] += [str(label) for label in labels]
        joined["roles"] += [role] * len(labels)
        paired.append(f"{role} points by {how}")
        warnings += notes
        sources[f"fixed_{role}_points"] = fixed_node.GetName()
        sources[f"moving_{role}_points"] = moving_node.GetName()
    if not paired:
        return {}, None, [], {}
    labels = joined["labels"]
    fit_names = {label for label, role in zip(labels, joined["roles"]) if role == "fit"}
    if fit_names & {label for label, role in zip(labels, joined["roles"]) if role == "target"}:
        labels = [f"{role} {label}" for label, role in zip(labels, joined["roles"])]
    labels = _unique(labels)  # already paired: identical unique labels keep the pairs as they are
    arguments = {
        "fixed_points_ras": np.vstack(joined["fixed"]),
        "moving_points_ras": np.vstack(joined["moving"]),
        "fixed_point_labels": labels,
        "moving_point_labels": labels,
        "fit_labels": [label for label, role in zip(labels, joined["roles"]) if role == "fit"],
    }
    return arguments, "; ".join(paired), warnings, sources


# --------------------------------------------------------------------------- segmentations
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


def _name_labels(image: sitk.Image, names: dict[int, str]) -> sitk.Image:
    """Store label names the way Slicer's .seg.nrrd does, so that the overlap rows and report show them."""
    for index, (value, name) in enumerate(sorted(names.items())):
        image.SetMetaData(f"Segment{index}_Name", name)
        image.SetMetaData(f"Segment{index}_LabelValue", str(value))
    return image


def _segmentation_image(node, values: dict[str, int], reference_volume) -> sitk.Image:
    """A segmentation's segments as one labelmap on the reference volume's grid, one export per segment."""
    scene = node.GetScene()
    labels = None
    names = {}
    for segment_id, name in _segments(node):
        single = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "qa segment export")
        try:
            single.SetAndObserveTransformNodeID(node.GetTransformNodeID())
            if not single.GetSegmentation().CopySegmentFromSegmentation(node.GetSegmentation(), segment_id):
                raise InputError(f"segment '{name}' of '{node.GetName()}' could not be read: check the segmentation")
            mask = mrml.mask_image(single, reference_volume)
        finally:
            scene.RemoveNode(single)
        if labels is None:
            labels = sitk.Image(mask.GetSize(), sitk.sitkUInt16)
            labels.CopyInformation(mask)
        array = sitk.GetArrayViewFromImage(mask) != 0
        merged = sitk.GetArrayFromImage(labels)
        merged[array] = values[segment_id]  # a later segment wins where segments overlap
        result = sitk.GetImageFromArray(merged)
        result.CopyInformation(labels)
        labels = result
        names[values[segment_id]] = name
    return _name_labels(labels, names)


def _untransformed_reference(moving_volume):
    """A temporary labelmap node with the moving volume's geometry and no parent transform."""
    geometry = mrml.image_from_volume_node(moving_volume)
    empty = sitk.Image(geometry.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(geometry)
    return mrml.volume_node_from_image(moving_volume.GetScene(), empty, "qa reference", labelmap=True)


def labels_image(node, values: dict[str, int], volume, side: str) -> sitk.Image:
    """A labelmap or segmentation node as a label image (LPS) in its volume's frame."""
    if not (node.IsA("vtkMRMLSegmentationNode") or node.IsA("vtkMRMLLabelMapVolumeNode")):
        raise InputError(f"'{node.GetName()}' is not a labelmap or segmentation: select one, or clear the selection")
    if side == "moving":
        _check_moving_frame(node, volume, "moving segmentation")
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        if side == "fixed" and node.GetParentTransformNode() is not None:
            raise InputError(
                f"the fixed labelmap '{node.GetName()}' is under a transform: harden it first (Data module)"
            )
        return mrml.image_from_volume_node(node)
    if side == "moving" and node.GetParentTransformNode() is None and volume.GetParentTransformNode() is not None:
        reference = _untransformed_reference(volume)  # export in the moving image's own frame
        try:
            return _segmentation_image(node, values, reference)
        finally:
            volume.GetScene().RemoveNode(reference)
    return _segmentation_image(node, values, volume)


# --------------------------------------------------------------------------- inputs
def restart_engine(transform_node) -> str:
    """The engine the stability restarts use: the one that made the transform, else elastix."""
    engine = transform_node.GetAttribute(REGISTRATION_PREFIX + "engine") if transform_node else None
    return engine if engine in ENGINES else "elastix"


def gather_inputs(
    transform_node,
    fixed_volume,
    moving_volume,
    fixed_fit_markups=None,
    moving_fit_markups=None,
    fixed_target_markups=None,
    moving_target_markups=None,
    fixed_segmentation=None,
    moving_segmentation=None,
    python: str | None = None,
) -> QAInputs:
    """Convert the nodes (see the module docstring for the frames); raises :class:`InputError`."""
    for role, node in (("fixed volume", fixed_volume), ("moving volume", moving_volume)):
        if node is None or not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
            raise InputError(f"select a {role}: a scalar volume node is needed")
    if fixed_volume is moving_volume:
        raise InputError("the fixed and moving volumes are the same node: select two different volumes")
    if fixed_volume.GetParentTransformNode() is not None:
        raise InputError(
            f"the fixed volume '{fixed_volume.GetName()}' is under a transform: harden it first (Data module, "
            "right-click the transform, 'Harden transform'), or take it out of the transform"
        )
    if transform_node is not None and not transform_node.IsA("vtkMRMLTransformNode"):
        raise InputError(f"'{transform_node.GetName()}' is not a transform node: select the registration result")
    transform, before, pose = registration_pose(transform_node, moving_volume)
    inputs = QAInputs(
        fixed=mrml.image_from_volume_node(fixed_volume),
        moving=mrml.image_from_volume_node(moving_volume),
        transform=transform,
        before=before,
        pose=pose,
    )
    inverse_node = transform_node.GetNodeReference(REGISTRATION_PREFIX + "inverse") if transform_node else None
    if inverse_node is not None and not transform.is_linear:
        chain = [p.GetID() for p in _parents(moving_volume)]
        if transform_node.GetID() not in chain or chain == [transform_node.GetID()]:  # T is the node itself
            inputs.inverse = mrml.transform_from_node(inverse_node)  # the engine's own inverse (ANTs SyN)
    arguments, paired_by, warnings, point_sources = landmark_arguments(
        moving_volume,
        (fixed_fit_markups, moving_fit_markups),
        (fixed_target_markups, moving_target_markups),
    )
    inputs.points, inputs.paired_by, inputs.warnings = arguments, paired_by, warnings
    if (fixed_segmentation is None) != (moving_segmentation is None):
        side = "fixed" if fixed_segmentation is None else "moving"
        raise InputError(f"segmentation overlap needs both: select the {side} segmentation, or clear the other")
    if fixed_segmentation is not None:
        if fixed_segmentation is moving_segmentation:
            raise InputError("the fixed and moving segmentations are the same node: select one for each image")
        values = label_values(fixed_segmentation, moving_segmentation)
        inputs.fixed_labels = labels_image(fixed_segmentation, values[0], fixed_volume, "fixed")
        inputs.moving_labels = labels_image(moving_segmentation, values[1], moving_volume, "moving")
    inputs.sources = {
        "fixed_volume": fixed_volume.GetName(),
        "moving_volume": moving_volume.GetName(),
        "transform_node": transform_node.GetName() if transform_node else "",
        "measured_transform": pose,
        **point_sources,
        "fixed_segmentation": fixed_segmentation.GetName() if fixed_segmentation else "",
        "moving_segmentation": moving_segmentation.GetName() if moving_segmentation else "",
    }
    # Node names are not files: an empty "sources" keeps the restarts from taking them for paths.
    inputs.stability_options = {"sources": {}, "engine": restart_engine(transform_node)}
    preset = transform_node.GetAttribute(REGISTRATION_PREFIX + "preset") if transform_node else None
    if preset and transform_node.GetAttribute(REGISTRATION_PREFIX + "engine") in ENGINES:
        inputs.stability_options["preset"] = preset  # the preset that made it, with the engine that made it
    if python:
        inputs.stability_options["python"] = python
    return inputs


# --------------------------------------------------------------------------- measuring
def assess_inputs(
    inputs: QAInputs,
    stability_restarts: int = 0,
    stability_options: dict | None = None,
    progress: Progress | None = None,
) -> dict:
    """Run :func:`.qa.assess_registration` on gathered inputs; returns the JSON-ready metrics."""
    metrics = assess_registration(
        inputs.fixed,
        inputs.moving,
        inputs.transform,
        before=inputs.before,
        inverse=inputs.inverse,
        fixed_labels=inputs.fixed_labels,
        moving_labels=inputs.moving_labels,
        stability_restarts=stability_restarts,
        stability_options={**inputs.stability_options, **(stability_options or {})},
        sources={key: value for key, value in inputs.sources.items() if value},
        progress=progress,
        **inputs.points,
    )
    if "landmarks" in metrics:
        metrics["landmarks"]["paired_by"] = inputs.paired_by
        metrics["landmarks"]["warnings"] = inputs.warnings + metrics["landmarks"]["warnings"]
    metrics["warnings"] = inputs.warnings + metrics["warnings"]
    return metrics


def assess_nodes(
    transform_node,
    fixed_volume,
    moving_volume,
    fixed_fit_markups=None,
    moving_fit_markups=None,
    fixed_target_markups=None,
    moving_target_markups=None,
    fixed_segmentation=None,
    moving_segmentation=None,
    stability_restarts: int = 0,
    table_node=None,
    python: str | None = None,
    stability_options: dict | None = None,
    progress: Progress | None = None,
):
    """Measure a registration given as nodes; returns ``(metrics, table_node)``.

    ``transform_node`` maps fixed to moving (TransformFromParent, RAS), or is None for the moving volume
    as shown; see the module docstring for unhardened parent transforms. Fit lists give FRE, target
    lists TRE (world RAS mm; each pair of lists is matched by label, else by order). Segmentations
    (labelmap or segmentation nodes) give Dice and surface distances per label. ``stability_restarts``
    > 0 re-runs the registration from perturbed starts (with the engine and preset recorded on the
    transform node; ``python`` is the worker's interpreter). The table node (created when not given)
    gets one row per number (:data:`TABLE_COLUMNS`).
    """
    inputs = gather_inputs(
        transform_node, fixed_volume, moving_volume, fixed_fit_markups, moving_fit_markups,
        fixed_target_markups, moving_target_markups, fixed_segmentation, moving_segmentation, python,
    )  # fmt: skip
    metrics = assess_inputs(inputs, stability_restarts, stability_options, progress)
    if table_node is None:
        name = transform_node.GetName() if transform_node else moving_volume.GetName()
        table_node = fixed_volume.GetScene().AddNewNodeByClass("vtkMRMLTableNode", f"{name} QA")
    fill_metrics_table(table_node, metrics)
    for key, node in (("fixed", fixed_volume), ("moving", moving_volume), ("transform", transform_node)):
        table_node.SetAttribute(f"{ATTRIBUTE_PREFIX}{key}NodeID", node.GetID() if node else "")
    return metrics, table_node


def export_report(metrics: dict, inputs: QAInputs, report_path, json_path=None) -> dict[str, str]:
    """Write the HTML report (pictures beside it) and optionally the JSON, for metrics from ``inputs``."""
    return write_qa_outputs(
        metrics, inputs.fixed, inputs.moving, inputs.transform, report_path, json_path,
        before=inputs.before, fixed_labels=inputs.fixed_labels,
    )  # fmt: skip


# --------------------------------------------------------------------------- table and text
def _format(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def metric_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """(metric, value, unit) rows: TRE and FRE apart, Dice per label, MI before/after, the Jacobian of
    a nonlinear transform, inverse consistency and the stability verdict when measured."""
    rows: list[tuple[str, str, str]] = []
    landmarks = metrics.get("landmarks")
    if landmarks:
        for name in ("tre", "fre"):
            before, after = landmarks[name]["before"], landmarks[name]["after"]
            if after is None:
                continue
            title = name.upper()
            rows += [
                (f"{title} points", _format(after["count"]), ""),
                (f"{title} mean before", _format(before["mean_mm"]), "mm"),
                (f"{title} mean after", _format(after["mean_mm"]), "mm"),
                (f"{title} RMS after", _format(after["rms_mm"]), "mm"),
                (f"{title} max after", _format(after["max_mm"]), "mm"),
            ]
    segmentation = metrics.get("segmentation")
    if segmentation:
        for before, after in zip(segmentation["before"], segmentation["after"]):
            rows += [
                (f"Dice {after['name']} before", _format(before["dice"]), ""),
                (f"Dice {after['name']} after", _format(after["dice"]), ""),
                (f"HD95 {after['name']} after", _format(after["hausdorff95_mm"]), "mm"),
            ]
    images = metrics.get("images", {})
    for key, label, unit in (
        ("mutual_information", "MI", "nats"),
        ("normalized_mutual_information", "NMI", ""),
        ("normalized_cross_correlation", "NCC", ""),
    ):
        values = [images.get(stage, {}).get(key) for stage in ("before", "after")]
        if any(value is not None for value in values):
            rows += [(f"{label} {stage}", _format(value), unit) for stage, value in zip(("before", "after"), values)]
    jacobian = metrics.get("jacobian")
    if jacobian and jacobian.get("spacing_mm") is not None:  # nonlinear: it varies over the image
        rows += [
            ("Jacobian det. min", _format(jacobian["minimum"]), ""),
            ("Jacobian det. 1st percentile", _format(jacobian["percentile_1"]), ""),
            ("Jacobian det. 99th percentile", _format(jacobian["percentile_99"]), ""),
            ("Jacobian det. max", _format(jacobian["maximum"]), ""),
            ("folding (det. <= 0)", _format(jacobian["folding_percent"], 4), "%"),
        ]
    consistency = metrics.get("inverse_consistency") or {}
    if consistency.get("mean_mm") is not None:
        rows += [
            ("inverse consistency mean", _format(consistency["mean_mm"]), "mm"),
            ("inverse consistency max", _format(consistency["max_mm"]), "mm"),
        ]
    stability = metrics.get("stability")
    if stability:
        rows += [
            ("stability restarts", _format(stability["restarts"]), ""),
            ("stability spread p95", _format(stability["spread_p95_mm"]), "mm"),
            ("stability spread max", _format(stability["spread_max_mm"]), "mm"),
            ("stability verdict", stability["verdict"], ""),
        ]
    if metrics.get("warnings"):
        rows.append(("warnings", _format(len(metrics["warnings"])), ""))
    return rows


def fill_metrics_table(table_node, metrics: dict) -> None:
    """Replace the table's content with :func:`metric_rows` (three string columns, locked)."""
    rows = metric_rows(metrics)
    was_modifying = table_node.StartModify()
    table_node.RemoveAllColumns()
    for column, name in enumerate(TABLE_COLUMNS):
        array = vtk.vtkStringArray()
        array.SetName(name)
        for row in rows:
            array.InsertNextValue(row[column])
        table_node.AddColumn(array)
    table_node.SetColumnDescription("value", "after: with the transform under test; before: without it")
    if hasattr(table_node, "SetUseColumnTitleAsColumnHeader"):
        table_node.SetUseColumnTitleAsColumnHeader(True)
    else:  # Slicer versions before column titles
        table_node.SetUseColumnNameAsColumnHeader(True)
    table_node.SetLocked(True)  # results, not input: the next computation overwrites them
    table_node.EndModify(was_modifying)


def table_values(table_node) -> dict[str, str]:
    """The table as {metric: value}, for scripts and tests."""
    table = table_node.GetTable()
    metric, value = table.GetColumnByName("metric"), table.GetColumnByName("value")
    return {metric.GetValue(row): value.GetValue(row) for row in range(table.GetNumberOfRows())}


def summary_text(metrics: dict) -> str:
    """A few lines for a status label: the numbers that matter, which to trust, and the warnings."""
    lines = []
    landmarks = metrics.get("landmarks")
    if landmarks:
        tre, fre = landmarks["tre"], landmarks["fre"]
        if tre["after"]:
            lines.append(
                f"TRE {tre['after']['mean_mm']:.2f} mm mean, {tre['after']['max_mm']:.2f} mm max over "
                f"{tre['after']['count']} target landmarks (before {tre['before']['mean_mm']:.2f} mm): "
                "the number to trust."
            )
        if fre["after"]:
            lines.append(
                f"FRE {fre['after']['mean_mm']:.2f} mm mean over {fre['after']['count']} fit landmarks: the "
                "transform was fitted to them, so it flatters; it says nothing about accuracy elsewhere."
            )
    for before, after in zip(*(metrics.get("segmentation", {}).get(stage, []) for stage in ("before", "after"))):
        lines.append(f"Dice {after['name']}: {before['dice']:.3f} -> {after['dice']:.3f}.")
    images = metrics.get("images", {})
    mi = [images.get(stage, {}).get("mutual_information") for stage in ("before", "after")]
    if None not in mi:
        lines.append(f"Mutual information {mi[0]:.3f} -> {mi[1]:.3f} nats (higher agrees better; not in mm).")
    stability = metrics.get("stability")
    if stability:
        lines.append(
            f"Stability: {stability['verdict']} ({stability['restarts']} restarts agree within "
            f"{stability['spread_p95_mm']:.2f} mm, 95th percentile)."
        )
    lines += [f"Warning: {warning}" for warning in metrics.get("warnings", [])]
    return "\n".join(lines)


# --------------------------------------------------------------------------- display
def show_moving_under(transform_node, moving_volume, moving_nodes=()) -> list:
    """Put the moving volume under ``transform_node`` to show what was measured; moving-side nodes in
    the volume's frame (same parent transform) go with it, so that they keep meaning the same points.

    Nothing changes when the volume is already under the node (or no node is given). Returns the
    nodes that were moved.
    """
    if transform_node is None or transform_node.GetID() in [p.GetID() for p in _parents(moving_volume)]:
        return []
    moved = [moving_volume] + [node for node in moving_nodes if node is not None and _same_frame(node, moving_volume)]
    for node in moved:
        node.SetAndObserveTransformNodeID(transform_node.GetID())
    return moved
