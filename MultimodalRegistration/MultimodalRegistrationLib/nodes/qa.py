"""Registration QA on MRML nodes: volumes, a transform node, point lists and segmentations in, the
metrics (:func:`..qa.assess.assess_registration`) and a metric/value/unit table node out. The call behind the
MultimodalRegistrationQA module and the Python console. Only node methods are used here; :mod:`.mrml`
is the one file that imports MRML.

What is measured. The QA measures T, the mapping from the fixed volume's space to the moving volume's
own (untransformed) voxel space, fixed -> moving like every transform of this extension:

* moving volume not under ``transform_node``: T is the node's TransformFromParent. A registration
  started from the moving volume's unhardened parent transforms already includes them (see
  :func:`.registration.register_nodes`), so they are not added again; they are the "before" pose.
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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.transforms import Transform, lps_ras_points
from ..engines.registry import DEFAULT_ENGINE, ENGINE_NAMES
from ..landmarks.bounds import check_lists_inside
from ..process.jobs import QAJob
from ..process.stability import assess_with_restarts
from ..qa.assess import TWO_D_QA, write_qa_outputs
from ..qa.jacobian import INVERSE_MISS_MM
from ..qa.report_types import QAReport
from . import mrml, slices
from .checks import check_node_pair, check_volume_pair
from .given_nodes import check_given_nodes
from .job import REGISTRATION_ATTRIBUTE_PREFIX as REGISTRATION_PREFIX
from .node_links import gone, record_node_ids, recorded_node
from .panel import node_of, panel_defaults, panel_noun, panel_parameters, panel_value
from .panel_words import panel_errors
from .prep import prepared_from
from .qa_frames import registration_pose, show_moving_under, shown_frame_warning, start_gone  # noqa: F401 (API)
from .qa_labels import label_values, labels_image, mask_in_frame
from .qa_points import landmark_arguments
from .qa_table import INVERTED_SINCE, TABLE_COLUMNS, fill_metrics_table, metric_rows, summary_text, table_values  # noqa: F401
from .result_extras import INVERTED

ATTRIBUTE_PREFIX = "MultimodalRegistrationQA."
TABLE = "metricsTable"  # the panel's attribute holding the table node the metrics go to


Progress = Callable[[float, str], None]


class QACancelled(Exception):
    """Raised by a progress callback to stop the QA (the panel's Cancel): the running restarts are stopped
    and nothing is written to the scene."""


# The QAJob fields of the nodes a measurement reads (each once, when it starts).
NODE_FIELDS = tuple(f.name for f in QAJob.panel_fields() if f.metadata.get("node"))


@dataclass
class QAInputs:
    """The nodes converted for :func:`..qa.assess.assess_registration` (images LPS, points world RAS mm)."""

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
    warnings: list[str] = field(default_factory=list)  # of pairing the landmark lists
    label_warnings: list[str] = field(default_factory=list)  # of exporting the segmentations (a value two share)
    provenance_warnings: list[str] = field(default_factory=list)  # the result made from other volumes
    fixed_mask: sitk.Image | None = None  # the masks the result's registration used (LPS, on each volume's grid)
    moving_mask: sitk.Image | None = None
    recorded_metric: float | None = None  # the result's own MI after, when T is the result node alone
    nodes: dict = field(default_factory=dict)  # the nodes measured, by QAJob field name (see measured_nodes)




# --------------------------------------------------------------------------- inputs
def restart_engine(transform_node) -> str:
    """The engine the stability restarts use: the one that made the transform, else elastix."""
    engine = transform_node.GetAttribute(REGISTRATION_PREFIX + "engine") if transform_node else None
    return engine if engine in ENGINE_NAMES else DEFAULT_ENGINE


def node(parameters, name: str):
    """The node the QA panel's ``parameters`` hold for the :class:`..process.jobs.QAJob` field ``name``."""
    return node_of(parameters, QAJob, name)


def gather_inputs(parameters, python: str | None = None) -> QAInputs:
    """Convert the nodes ``parameters`` hold (see the module docstring for the frames); raises :class:`InputError`."""
    nodes = {name: node(parameters, name) for name in NODE_FIELDS}  # read once: the panel may change meanwhile
    transform_node, fixed_volume, moving_volume = nodes["transform"], nodes["fixed"], nodes["moving"]
    fixed_segmentation, moving_segmentation = nodes["fixed_labels"], nodes["moving_labels"]
    check_volume_pair(fixed_volume, moving_volume)
    if slices.is_single_slice(fixed_volume) and slices.is_single_slice(moving_volume):
        raise InputError(f"the fixed and moving volumes are one slice thick: {TWO_D_QA}")
    if transform_node is not None and not transform_node.IsA("vtkMRMLTransformNode"):
        raise InputError(f"'{transform_node.GetName()}' is not a transform node: select the registration result")
    transform, before, pose = registration_pose(transform_node, moving_volume)
    inputs = QAInputs(
        fixed=mrml.image_from_volume_node(fixed_volume),
        moving=mrml.image_from_volume_node(moving_volume),
        transform=transform,
        before=before,
        pose=pose,
        nodes=nodes,
    )
    chain = [p.GetID() for p in mrml.parent_transforms(moving_volume)]
    alone = transform_node is not None and (transform_node.GetID() not in chain or chain == [transform_node.GetID()])
    inputs.provenance_warnings, inputs.recorded_metric = made_from(transform_node, fixed_volume, moving_volume, alone)
    inputs.fixed_mask, inputs.moving_mask, lost = registration_masks(transform_node, fixed_volume, moving_volume)
    inputs.provenance_warnings += lost + start_gone(transform_node, moving_volume)
    inverse_node = transform_node.GetNodeReference(REGISTRATION_PREFIX + "inverse") if transform_node else None
    stale = None
    if inverse_node is not None and not transform.is_linear and alone:  # T is the node itself
        inputs.inverse = mrml.transform_from_node(inverse_node)  # the engine's own inverse (ANTs SyN)
        stale = _stale_inverse(transform, inputs.inverse, inputs.fixed, inverse_node.GetName())
        inputs.inverse = None if stale else inputs.inverse
    arguments, paired_by, warnings, point_sources = landmark_arguments(
        moving_volume,
        (nodes["fixed_fit_points"], nodes["moving_fit_points"]),
        (nodes["fixed_points"], nodes["moving_points"]),
    )
    inputs.points, inputs.paired_by, inputs.warnings = arguments, paired_by, warnings + ([stale] if stale else [])
    inputs.warnings += [said] if (said := shown_frame_warning(arguments, moving_volume, transform)) else []
    if arguments:  # as mmreg qa checks them: a list 500 mm away had read TRE 866 mm (a helper's sweep)
        inputs.warnings += check_lists_inside([(lps_ras_points(arguments[f"{role}_points_ras"]), image,
                                                arguments[f"{role}_point_labels"], role, None)
                                               for role, image in (("fixed", inputs.fixed), ("moving", inputs.moving))])
    check_node_pair(fixed_segmentation, moving_segmentation, "segmentation overlap", "the fixed segmentation",
                    "the moving segmentation", "select one for each image")  # fmt: skip
    if fixed_segmentation is not None:
        values = label_values(fixed_segmentation, moving_segmentation)
        # In layers, so that each segment is measured whole (assess merges them and says which overlap).
        inputs.fixed_labels, fixed_said = labels_image(fixed_segmentation, values[0], fixed_volume, "fixed")
        inputs.moving_labels, moving_said = labels_image(moving_segmentation, values[1], moving_volume, "moving")
        inputs.label_warnings = fixed_said + moving_said
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
    # a custom preset file by its path, where it is still there (a restart named its stem, no preset; a sweep)
    preset_file = transform_node.GetAttribute(REGISTRATION_PREFIX + "presetFile") if transform_node else None
    preset = preset_file if preset_file and Path(preset_file).is_file() else (
        transform_node.GetAttribute(REGISTRATION_PREFIX + "preset") if transform_node else None)
    if preset and transform_node.GetAttribute(REGISTRATION_PREFIX + "engine") in ENGINE_NAMES:
        inputs.stability_options["preset"] = preset  # the preset that made it, with the engine that made it
    if python:
        inputs.stability_options["python"] = python
    return inputs


# The result's recorded MI after (nats) and QA's for the same transform are one number from the same samples; QA
# measuring this much less (and this fraction less) means the images are not the ones the result was made from.
RECORDED_METRIC_MISS_NATS = 0.05
RECORDED_METRIC_MISS_FRACTION = 0.2


def made_from(transform_node, fixed_volume, moving_volume, alone: bool) -> tuple[list[str], float | None]:
    """Warnings when the result node records other volumes than the ones measured (swapped, or others), and the MI
    after it recorded (when ``alone``: T is the node itself, so QA's MI after should be that number)."""
    if transform_node is None:
        return [], None
    warnings = []
    found = [recorded_node(transform_node, REGISTRATION_PREFIX + f"{role}NodeID") for role in ("fixed", "moving")]
    chosen = [fixed_volume.GetID(), moving_volume.GetID()]
    volumes = dict(zip(chosen, (fixed_volume, moving_volume)))
    # A result found on a prepared pair applies to the originals it was prepared from (RegistrationPrep's record).
    # A node gone since never matches (another may have taken its ID); one prepared matches its original.
    found = [(source, volumes[source]) if (source := prepared_from(node)) in volumes else
             (node.GetID() if node is not None else f"removed {node_id}" if node_id else "", node)
             for node_id, node in found]  # fmt: skip
    recorded = [node_id for node_id, _ in found]
    name = transform_node.GetName()
    if recorded == chosen[::-1]:
        warnings.append(
            f"'{name}' was registered with '{moving_volume.GetName()}' as the fixed volume and "
            f"'{fixed_volume.GetName()}' as the moving one: the volumes are swapped here; swap them"
        )
    elif all(recorded) and recorded != chosen:
        said = [node.GetName() if node is not None else "a removed node" for _, node in found]
        warnings.append(f"'{name}' was registered with fixed '{said[0]}' and moving '{said[1]}', not the "
                        f"'{fixed_volume.GetName()}' and '{moving_volume.GetName()}' measured here: select the volumes "
                        "it was computed from")  # fmt: skip
    value = transform_node.GetAttribute(REGISTRATION_PREFIX + "metricAfter")
    try:
        metric = float(value) if alone and value and recorded == chosen else None
    except ValueError:
        metric = None
    return warnings, metric


def registration_masks(transform_node, fixed_volume, moving_volume) -> tuple:
    """(fixed mask, moving mask, warnings): the masks the result node records its registration used (on the fixed
    and moving volumes' grids), so that QA's mutual information and stability restarts see what it saw; a mask no
    longer in the scene is named in a warning."""
    masks, warnings = [], []
    for role, volume in (("fixed", fixed_volume), ("moving", moving_volume)):
        node_id, mask_node = (recorded_node(transform_node, f"{REGISTRATION_PREFIX}{role}MaskNodeID")
                              if transform_node else (None, None))  # fmt: skip
        if gone((node_id, mask_node)):
            warnings.append(f"the registration used a {role} mask that is no longer in the scene: the mutual "
                            "information and any restarts here run without it")  # fmt: skip
        mask = None
        if mask_node is not None:
            try:
                mask = mask_in_frame(mask_node, volume, role)
                if not sitk.GetArrayViewFromImage(mask).any():
                    raise InputError("nothing is drawn in it")
            except InputError as error:  # emptied since: the panel has no mask to drop, and QA had been refused
                mask = None
                warnings.append(f"the registration's {role} mask '{mask_node.GetName()}' cannot be used now ({error}): "
                                "the mutual information and any restarts here run without it")  # fmt: skip
        masks.append(mask)
    return masks[0], masks[1], warnings


def recorded_metric_warning(inputs: QAInputs, measured: float | None) -> list[str]:
    """A warning when QA's MI after falls well short of the MI the result recorded for the same transform: the
    moving volume changed since the registration (the result hardened into it?)."""
    recorded = inputs.recorded_metric
    if recorded is None or measured is None:
        return []
    if recorded - measured <= max(RECORDED_METRIC_MISS_NATS, RECORDED_METRIC_MISS_FRACTION * abs(recorded)):
        return []
    name = str(inputs.sources.get("transform_node"))
    if name.endswith(INVERTED):  # the module's Invert named it so
        return [(f"'{name}' {INVERTED_SINCE}: it maps moving to fixed points now, so QA measures "
                 f"it the wrong way round (mutual information {measured:.3f} nats, {recorded:.3f} recorded); invert "
                 "it again to measure the registration")]  # fmt: skip
    return [(f"'{inputs.sources.get('transform_node')}' recorded mutual information {recorded:.3f} nats after "
            f"registration; QA measures {measured:.3f} with the same transform: the moving volume changed since (was "
            "the result hardened into it? then measure without the transform, or reload the moving image), or the "
            "registration used masks")]  # fmt: skip


def _stale_inverse(transform, inverse, fixed, name: str) -> str | None:
    """A warning when the inverse a result references no longer undoes it (the result node was inverted or
    refilled outside the module), checked at 32 points through the fixed image; None when it still does."""
    from ..core.images import sample_grid_points

    points = sample_grid_points(fixed, per_axis=5)[::4]
    back = inverse.transform_points(transform.transform_points(points))
    miss = float(np.median(np.linalg.norm(back - points, axis=1)))
    if miss <= INVERSE_MISS_MM:
        return None
    return (f"the stored inverse '{name}' no longer undoes the result (a round trip misses by {miss:.1f} mm at the "
            "median: was the result inverted outside the module?): it was not used; QA inverts the result point by "
            "point")  # fmt: skip


# --------------------------------------------------------------------------- measuring
def assess_inputs(
    inputs: QAInputs,
    stability_restarts: int = 0,
    stability_options: dict | None = None,
    progress: Progress | None = None,
) -> QAReport:
    """Run :func:`..qa.assess.assess_registration` on gathered inputs; returns the :class:`.QAReport`."""
    report = assess_with_restarts(
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
        fixed_mask=inputs.fixed_mask,
        moving_mask=inputs.moving_mask,
        **inputs.points,
    )
    if report.landmarks is not None:  # the lists were paired here, before the landmarks reached the library
        report.landmarks.paired_by = inputs.paired_by
        report.landmarks.warnings = inputs.warnings + report.landmarks.warnings
    measured = recorded_metric_warning(inputs, report.images_after.mutual_information)
    report.warnings = inputs.provenance_warnings + measured + inputs.warnings + inputs.label_warnings + report.warnings
    return report


@panel_errors(QAJob)
def assess_nodes(
    parameters,
    python: str | None = None,
    stability_options: dict | None = None,
    progress: Progress | None = None,
    with_inputs: bool = False,
) -> tuple:
    """Measure a registration as the QA panel's ``parameters`` say; returns ``(metrics, table_node)``, and with
    ``with_inputs`` ``(metrics, table_node, inputs)``: the gathered :class:`QAInputs`, for :func:`export_report`.

    ``parameters`` is the module's parameter node, or :func:`qa_parameters` in a script: the same names.
    ``transform`` maps fixed to moving (TransformFromParent, RAS), or is None for the moving volume as shown;
    see the module docstring for unhardened parent transforms. Fit lists (``fixedFitPoints``...) give FRE,
    target lists (``fixedTargetPoints``...) TRE (world RAS mm; each pair of lists is matched by label, else by
    order). Segmentations (labelmap or segmentation nodes) give Dice and surface distances per label. With
    ``stability`` checked, ``stabilityRestarts`` > 0 re-runs the registration from perturbed starts (with the
    engine and preset recorded on the transform node; ``python`` is the worker's interpreter). The
    ``metricsTable`` node (created when not given) gets one row per number (:data:`TABLE_COLUMNS`).
    The nodes are read once, at the start (the panel may change while the restarts run); ``progress(fraction,
    stage)`` may raise :class:`QACancelled` to stop: the restarts' workers stop and nothing is written. A node
    measured that left the scene meanwhile is refused (:func:`check_still_in_scene`).
    """
    check_given_nodes(parameters, [*panel_defaults(QAJob.panel_fields()), TABLE], replaced=[TABLE])
    inputs = gather_inputs(parameters, python)
    metrics = assess_inputs(inputs, restarts_of(parameters), stability_options, progress)
    check_still_in_scene(inputs)  # the restarts take minutes: the scene may have closed meanwhile
    fixed_volume, moving_volume, transform_node, _ = measured_nodes(inputs)  # not re-read: the panel may have changed
    scene = fixed_volume.GetScene()
    table_node = getattr(parameters, TABLE, None)
    if table_node is None or table_node.GetScene() is not scene:
        name = transform_node.GetName() if transform_node else moving_volume.GetName()
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{name} QA"))
        setattr(parameters, TABLE, table_node)  # the next call refills it (a script made a table per call)
    fill_metrics_table(table_node, metrics)
    record_node_ids(table_node, {f"{ATTRIBUTE_PREFIX}{key}NodeID": node.GetID() if node else "" for key, node in
                                 (("fixed", fixed_volume), ("moving", moving_volume), ("transform", transform_node))})
    return (metrics, table_node, inputs) if with_inputs else (metrics, table_node)


def measured_nodes(inputs: QAInputs) -> tuple:
    """(fixed volume, moving volume, transform node, moving-side lists and segmentation) as measured: the nodes
    to show the result on (:func:`show_moving_under`), whatever the panel selects now."""
    nodes = inputs.nodes
    moving_side = [nodes["moving_fit_points"], nodes["moving_points"], nodes["moving_labels"]]  # None: not given
    # the moving mask the result records goes with them: left under the prealignment, it had stopped the next
    # measurement ("the moving mask is under 'prealign' but the moving volume is under the result"; a sweep)
    transform = nodes["transform"]
    moving_side.append(recorded_node(transform, REGISTRATION_PREFIX + "movingMaskNodeID")[1] if transform else None)
    return nodes["fixed"], nodes["moving"], nodes["transform"], moving_side


def check_still_in_scene(inputs: QAInputs) -> None:
    """Refuse (:class:`InputError`) to write a result when a node measured left the scene while it was measured
    (the scene closed, the node deleted): nothing is written."""
    for name, measured in inputs.nodes.items():
        if measured is not None and not mrml.in_scene(measured):
            raise InputError(f"the {panel_noun(QAJob, name)} '{measured.GetName()}' was removed from the scene while it "
                             "was measured (was the scene closed?): nothing was written; select the nodes again and "
                             "measure again")  # fmt: skip


def restarts_of(parameters) -> int:
    """How many stability restarts the panel asks for: its count while its stability box is checked, else 0."""
    return panel_value(parameters, next(f for f in QAJob.panel_fields() if f.name == "stability")) or 0


def qa_parameters(**values) -> SimpleNamespace:
    """The QA panel's parameters for a script, by the module's parameter-node names, e.g.
    ``qa_parameters(transform=result, fixedVolume=ct, movingVolume=mr, fixedTargetPoints=a, movingTargetPoints=b)``;
    the rest at the panel's defaults (no restarts). Unknown names are refused, naming the known ones."""
    return panel_parameters(QAJob, {TABLE: None}, **values)


def export_report(report: QAReport, inputs: QAInputs, report_path, json_path=None) -> dict[str, str]:
    """Write the HTML report (pictures beside it) and optionally the JSON, for a report measured from ``inputs``;
    a path that cannot be written is refused first (:class:`InputError`), as ``mmreg qa`` refuses it."""
    from ..core.file_checks import check_output_path
    from ..qa.assess import check_report_path

    check_report_path(report_path)
    if json_path is not None:
        check_output_path(json_path, "summary", (".json",))
    return write_qa_outputs(
        report, inputs.fixed, inputs.moving, inputs.transform, report_path, json_path,
        before=inputs.before, fixed_labels=inputs.fixed_labels,
    )  # fmt: skip
