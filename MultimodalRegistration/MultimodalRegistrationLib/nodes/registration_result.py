"""A registration running in a worker, and how its result goes into the scene: the output transform node
(with how it was made as attributes), the inverse, piecewise segment nodes and the output volume.

Nothing is created or changed before the result arrives, so a failed or cancelled run leaves the scene as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.images import colour_as_grey, read_image
from ..core.transforms import Transform
from ..process.jobs import RegistrationJob
from ..process.results import RegistrationJobResult
from ..process.worker import WorkerFailure, WorkerJob
from ..registration.describe import describe_guidance, describe_result, describe_start
from ..registration.summary import GuidanceRecord, RegistrationSummary
from . import mrml
from .command_paths import start_node, user_command
from .job import REGISTRATION_ATTRIBUTE_PREFIX as ATTRIBUTE_PREFIX
from .job import NodeJob, forget_earlier_result
from .node_links import record_attributes, record_node_ids
from .registration_inputs import moving_parent_of, start_gone_note
from .result_extras import earlier_segment_nodes, named_forward


class NodeRegistration(NodeJob):
    """A registration of volume nodes, running in a worker process.

    :meth:`poll` or :meth:`follow` (non-blocking, for a GUI) and :meth:`wait` (blocking) apply the result
    to the scene when it arrives; :meth:`cancel` stops the worker and leaves the scene untouched.
    """

    # Its files are the job's scratch copies: a stop after the worker wrote them still adds nothing.
    cancelled_message = "the registration was cancelled; the scene is unchanged"

    def __init__(self, worker: WorkerJob, folder: Path, parameters, on_done=None):
        self.parameters = parameters
        self.keep_targets(parameters, RegistrationJob, [f.name for f in RegistrationJob.panel_fields() if "node" in f.metadata])
        self.scene = self.target("fixed").GetScene()
        # The start's parent as the run began: read at the end, a parent set while the run went had been recorded.
        self.start_parent = moving_parent_of(self.target("moving"), self.target("initial_transform"),
                                             self.present_target("output_transform"))  # fmt: skip
        self.start_note = start_gone_note(self.target("moving"), self.present_target("output_transform"))
        self.folder = folder
        self.on_done = on_done
        self.output_transform_node = None
        self.output_volume_node = None
        self.inverse_transform_node = None
        self.segment_transform_nodes: dict = {}  # piecewise runs: segment name -> its rigid transform node
        self.summary: RegistrationSummary | None = None
        self.error: WorkerFailure | None = None
        self._command = ""
        self._worker = worker.start()

    def describe(self) -> str:
        """The result in a few lines for the panel's status: time, metric before and after, start, guidance,
        then each warning (a result kept at its start, segments that overlap or pair with nothing)."""
        lines = [describe_result(self.summary), describe_guidance(self.summary.provenance.guidance)]
        lines += [f"Warning: {warning}" for warning in self.summary.warnings]
        return "\n".join(line for line in lines if line)

    @property
    def command(self) -> str:
        """The ``mmreg`` command line that repeats this run ("" if none was recorded or the run failed), its files
        named after the nodes (:mod:`.command_paths`) as the scene held them when the result came in."""
        return self._command

    def show_moving_under_result(self) -> list:
        """Put the moving volume under the result transform, as the panel shows a result, with the moving
        segmentation, landmarks and mask that were in its frame (a helper's second Register was refused: the
        segmentation had stayed under the prealignment the volume left). Returns the nodes moved."""
        moving, result = self.target("moving"), self.output_transform_node
        if moving is None or result is None or mrml.is_under(moving, result):
            return []
        beside = [self.target(name) for name in ("moving_segmentation", "guidance_moving_points", "moving_mask")]
        moved = [moving] + [n for n in beside if n is not None and n.GetTransformNodeID() == moving.GetTransformNodeID()]
        for node in moved:
            node.SetAndObserveTransformNodeID(result.GetID())
        return moved

    def _apply_or_add_nothing(self, result: RegistrationJobResult) -> None:
        super()._apply_or_add_nothing(result)
        # Named now: asked later, a moving volume put under the result since named the result as its start.
        self._command = user_command(self._recorded_command(), self.folder, self._worker.job, self._node_for)

    def _nodes_it_may_fill(self) -> list:
        output = self.present_target("output_transform")
        inverse = output.GetNodeReference(ATTRIBUTE_PREFIX + "inverse") if output is not None else None
        return super()._nodes_it_may_fill() + ([inverse] if inverse is not None else [])

    def _recorded_command(self) -> str:
        return self.summary.provenance.command or ""

    def _node_for(self, field_name: str):
        """The node a job field's scratch file came from or went to (None: not a node's)."""
        outputs = {"output_transform": self.output_transform_node, "output_volume": self.output_volume_node,
                   "output_inverse": (self.output_transform_node, "_inverse")}  # fmt: skip
        if field_name in outputs:
            return outputs[field_name]
        if field_name == "initial_transform":
            return start_node(self.target("moving"), self.target("initial_transform"), self.output_transform_node)
        if any(f.name == field_name and f.metadata.get("node") for f in RegistrationJob.panel_fields()):
            return self.target(field_name)
        return None

    def _apply(self, result: RegistrationJobResult) -> None:
        self.check_targets_present("during the registration", "register again")
        summary, outputs = result.summary, result.outputs
        summary.warnings = [self.in_panel_words(warning) for warning in summary.warnings]
        summary.warnings += [self.start_note] if self.start_note else []
        # Every file is read before any node changes: a failure then leaves an existing output node as it was.
        transform = Transform.read(outputs.transform)
        inverse = Transform.read(outputs.inverse) if not transform.is_linear and outputs.inverse else None
        segments = {segment.name: Transform.read(outputs.segment_transforms[segment.name])
                    for segment in (summary.piecewise.segments if summary.piecewise else [])}  # fmt: skip
        volume = read_image(outputs.volume) if self.present_target("output_volume") is not None else None
        fixed, moving, initial = self.target("fixed"), self.target("moving"), self.target("initial_transform")
        output = self.present_target("output_transform")
        parent = self.start_parent if self.start_parent is None or mrml.in_scene(self.start_parent) else None
        provenance = summary.provenance
        attributes = {
            "engine": provenance.engine,
            "engineVersion": provenance.engine_version,
            "preset": provenance.preset,
            # a custom preset file's path: QA's restarts rerun it (the name, its file's stem, is no named preset)
            "presetFile": _preset_file(self._worker.job.get("preset")),
            "libraryVersion": provenance.library_version,
            "seed": provenance.seed,
            "threads": provenance.threads,
            "init": provenance.init,
            "start": provenance.start or "",
            "initSeconds": provenance.timings_s.get("init_s", 0.0),
            "startDescription": describe_start(summary),
            "fixedNodeID": fixed.GetID(),
            "movingNodeID": moving.GetID(),
            # The start's node: the panel's initial transform, else the moving volume's parent (a prealignment); and
            # that parent (under the output node, a second Register into it: the replaced result's; see
            # registration_inputs.initial_transform_of), so that the next run into this node starts the same way.
            "initialTransformNodeID": _node_id(initial or parent, output),
            "movingParentNodeID": _node_id(parent, output),
            **{f"{role}MaskNodeID": (mask.GetID() if (mask := self.target(f"{role}_mask")) else "")
               for role in ("fixed", "moving")},  # QA's restarts and MI use them too
            "seconds": summary.seconds,
            "metricBefore": round(summary.metric_before, 6),
            "metricAfter": round(summary.metric_after, 6),
            "kept": provenance.kept or "result",
            "keptReason": provenance.kept_reason or "",
            "fixedSampling": provenance.fixed_sampling or "whole fixed image or its mask",
            "warnings": json.dumps(list(summary.warnings)),
        }
        attributes.update(guidance_attributes(provenance.guidance))
        node = self._result_node(transform)
        self._record(node, attributes)
        # Removed last, once nothing can fail: an earlier piecewise run's segment nodes, stale now.
        stale = earlier_segment_nodes(self.scene, node)
        node.RemoveAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian")
        if summary.piecewise:
            self.segment_transform_nodes = _segment_nodes_of(self.scene, segments, summary, node)
        self.inverse_transform_node = None
        earlier = node.GetNodeReference(ATTRIBUTE_PREFIX + "inverse")  # a run before into the same node
        node.RemoveNodeReferenceIDs(ATTRIBUTE_PREFIX + "inverse")
        if inverse is not None:
            if earlier is not None:
                named_forward(earlier)
            # A linear node inverts exactly by itself; a nonlinear one keeps the engine's own inverse beside it.
            self.inverse_transform_node = mrml.transform_to_node(self.scene, inverse, earlier,
                                                                 name=f"{node.GetName()} inverse")  # fmt: skip
            node.SetNodeReferenceID(ATTRIBUTE_PREFIX + "inverse", self.inverse_transform_node.GetID())
        elif earlier is not None:  # the inverse this module made for an earlier result in this node: stale now
            stale.append(earlier)
        if volume is not None and (note := self._fill_output_volume(volume, node)):
            summary.warnings.append(note)
            node.SetAttribute(ATTRIBUTE_PREFIX + "warnings", json.dumps(list(summary.warnings)))
        mrml.remove_nodes_and_empty_folders(self.scene, stale)
        self.summary = summary

    def _result_node(self, transform: Transform):
        """The output transform node holding ``transform`` (fixed -> moving): the panel's, or a new one named
        "<moving> to <fixed>"."""
        node, fixed, moving = self.present_target("output_transform"), self.target("fixed"), self.target("moving")
        name = node.GetName() if node else self.scene.GenerateUniqueName(f"{moving.GetName()} to {fixed.GetName()}")
        if node is not None:
            named_forward(node)
            forget_earlier_result(node)
        return mrml.transform_to_node(self.scene, transform, node, name=name)

    def _record(self, node, attributes: dict) -> None:
        """How the result was made, as the result node's attributes; the node becomes the output transform node."""
        record_attributes(node, ATTRIBUTE_PREFIX, attributes)
        self.output_transform_node = node

    def _fill_output_volume(self, image, transform_node) -> str | None:
        """Put the resampled moving ``image`` (LPS) into the panel's output volume node, linked to the result. An
        RGB image goes into a scalar volume node as its luminance (a scalar node shows one component of three);
        returns the warning that says so, else None."""
        volume = self.present_target("output_volume")
        note = None
        if image.GetNumberOfComponentsPerPixel() > 1 and not volume.IsA("vtkMRMLVectorVolumeNode"):
            image = colour_as_grey(image)[0]
            note = (f"the output volume '{volume.GetName()}' is a scalar volume: it holds the registered moving "
                    "volume's luminance; choose a vector volume as the output volume to keep the colours")  # fmt: skip
        mrml.update_volume_node_from_image(volume, image)
        record_node_ids(volume, {ATTRIBUTE_PREFIX + "transformNodeID": transform_node.GetID()})
        if volume.GetDisplayNode() is None:
            volume.CreateDefaultDisplayNodes()
        self.output_volume_node = volume
        return note


def _node_id(node, output) -> str:
    return node.GetID() if node is not None and node is not output else ""


def _preset_file(preset: str | None) -> str:
    """The job's preset when it is a custom preset file, else ""."""
    return preset if preset and Path(preset).suffix in (".txt", ".json") and Path(preset).is_file() else ""


def _segment_nodes_of(scene, transforms: dict[str, Transform], summary: RegistrationSummary, field_node) -> dict:
    """A piecewise run's per-segment rigid transforms as nodes in a subject-hierarchy folder named after
    the result; each records its segment's QA before (global) and after (own) as attributes."""
    nodes = {}
    for segment in summary.piecewise.segments:
        name = segment.name
        node = mrml.transform_to_node(scene, transforms[name], name=f"{name} ({field_node.GetName()})")
        before, after = segment.qa.before, segment.qa.after
        attributes = {
            "segment": name,
            "kept": segment.kept,
            "reason": segment.reason,
            "fieldNodeID": field_node.GetID(),
            "diceBefore": before.mean_dice,
            "diceAfter": after.mean_dice,
            "surfaceMmBefore": before.mean_surface_mm,
            "surfaceMmAfter": after.mean_surface_mm,
        }
        record_attributes(node, ATTRIBUTE_PREFIX, attributes)
        nodes[name] = node
    mrml.put_in_folder(scene, list(nodes.values()), f"{field_node.GetName()} segments")
    field_node.SetAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian", str(summary.piecewise.minimum_jacobian))
    return nodes


def guidance_attributes(guidance: GuidanceRecord | None) -> dict:
    """The guidance's record as node attributes: the metric, the segments and the scores before and after."""
    if not guidance:
        return {}
    start, result = guidance.score_start, guidance.score_result
    attributes = {
        "guidanceMetric": guidance.metric,
        "guidanceSegments": ",".join(segment.name for segment in guidance.segments),
        "guidancePoints": guidance.points,
        "guidance": json.dumps(guidance.to_dict()),
    }
    names = {"mean_dice": "DiceMean", "mean_surface_mm": "SurfaceMeanMm", "points_rms_mm": "PointsRmsMm"}
    for key, name in names.items():
        if start is not None and getattr(start, key) is not None:
            attributes[f"guidance{name}Start"] = getattr(start, key)
            attributes[f"guidance{name}Result"] = getattr(result, key)
    return attributes
