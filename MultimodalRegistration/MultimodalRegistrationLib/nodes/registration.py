"""Registration of MRML volume nodes: the call behind the Slicer module, the console and batch runs.

The engines run in a worker process (:mod:`..process.worker`). Input nodes are never modified; the output
transform (and volume) nodes are created or filled only when the run succeeds, so a failed or
cancelled run leaves the scene as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..core.choices import DEFAULT_INIT, DEFAULT_PRESET, DEFAULT_SEED, FULL_ROTATION_DEG
from ..core.errors import InputError
from ..core.images import write_image
from ..core.transforms import Transform
from ..engines.registry import DEFAULT_ENGINE
from ..process.jobs import RegistrationJob
from ..process.preflight import preflight_registration
from ..process.worker import WorkerFailure, WorkerJob
from ..registration.describe import describe_start
from ..registration.summary import RegistrationSummary
from . import mrml
from .checks import check_volume_pair
from .job import NodeJob, job_folder

ATTRIBUTE_PREFIX = "MultimodalRegistration."


class NodeRegistration(NodeJob):
    """A registration of volume nodes, running in a worker process.

    :meth:`poll` or :meth:`follow` (non-blocking, for a GUI) and :meth:`wait` (blocking) apply the result
    to the scene when it arrives; :meth:`cancel` stops the worker and leaves the scene untouched.
    """

    def __init__(
        self, scene, job: RegistrationJob, folder: Path, targets: dict, python, on_progress, on_done, warm=None
    ):
        self.scene = scene
        self.folder = folder
        self.targets = targets
        self.on_done = on_done
        self.output_transform_node = None
        self.output_volume_node = None
        self.inverse_transform_node = None
        self.segment_transform_nodes: dict = {}  # piecewise runs: segment name -> its rigid transform node
        self.summary: RegistrationSummary | None = None
        self.error: WorkerFailure | None = None
        self._worker = WorkerJob(job, python=python, on_progress=on_progress, warm=warm).start()

    def _apply(self, result: dict) -> None:
        summary = RegistrationSummary.from_dict(result["summary"])
        transform = Transform.read(result["outputs"]["transform"])
        targets = self.targets
        node = targets["output_transform"]
        if node is None:
            name = self.scene.GenerateUniqueName(f"{targets['moving'].GetName()} to {targets['fixed'].GetName()}")
        node = mrml.transform_to_node(self.scene, transform, node, name=node.GetName() if node else name)
        provenance = summary.provenance
        attributes = {
            "engine": provenance.engine,
            "engineVersion": provenance.engine_version,
            "preset": provenance.preset,
            "libraryVersion": provenance.library_version,
            "seed": provenance.seed,
            "threads": provenance.threads,
            "init": provenance.init,
            "start": provenance.start or "",
            "initSeconds": provenance.timings_s.get("init_s", 0.0),
            "startDescription": describe_start(summary),
            "fixedNodeID": targets["fixed"].GetID(),
            "movingNodeID": targets["moving"].GetID(),
            "initialTransformNodeID": targets["initial"].GetID() if targets["initial"] else "",
            "seconds": summary.seconds,
            "metricBefore": round(summary.metric_before, 6),
            "metricAfter": round(summary.metric_after, 6),
            "kept": provenance.kept or "result",
            "keptReason": provenance.kept_reason or "",
            "fixedSampling": provenance.fixed_sampling or "whole fixed image or its mask",
        }
        attributes.update(guidance_attributes(provenance.guidance))
        for key, value in attributes.items():
            node.SetAttribute(ATTRIBUTE_PREFIX + key, str(value))
        self.output_transform_node = node
        if summary.piecewise:
            self.segment_transform_nodes = _segment_nodes_of(self.scene, result["outputs"], summary, node)
        self.inverse_transform_node = None
        if not transform.is_linear and "inverse" in result["outputs"]:
            # A linear node inverts exactly by itself; a nonlinear one keeps the engine's own inverse beside it.
            inverse = Transform.read(result["outputs"]["inverse"])
            self.inverse_transform_node = mrml.transform_to_node(self.scene, inverse, name=f"{node.GetName()} inverse")
            node.SetNodeReferenceID(ATTRIBUTE_PREFIX + "inverse", self.inverse_transform_node.GetID())
        if targets["output_volume"] is not None:
            from ..core.images import read_image

            volume = targets["output_volume"]
            mrml.update_volume_node_from_image(volume, read_image(result["outputs"]["volume"]))
            volume.SetAttribute(ATTRIBUTE_PREFIX + "transformNodeID", node.GetID())
            if volume.GetDisplayNode() is None:
                volume.CreateDefaultDisplayNodes()
            self.output_volume_node = volume
        self.summary = summary


def _segment_nodes_of(scene, outputs: dict, summary: RegistrationSummary, field_node) -> dict:
    """A piecewise run's per-segment rigid transforms as nodes in a subject-hierarchy folder named after
    the result; each records its segment's QA before (global) and after (own) as attributes."""
    nodes = {}
    for segment in summary.piecewise["segments"]:
        name = segment["name"]
        transform = Transform.read(outputs[f"transform_{name}"])
        node = mrml.transform_to_node(scene, transform, name=f"{name} ({field_node.GetName()})")
        before, after = segment["qa"]["before"], segment["qa"]["after"]
        attributes = {
            "segment": name,
            "kept": segment["kept"],
            "reason": segment["reason"],
            "fieldNodeID": field_node.GetID(),
            "diceBefore": before["mean_dice"],
            "diceAfter": after["mean_dice"],
            "surfaceMmBefore": before["mean_surface_mm"],
            "surfaceMmAfter": after["mean_surface_mm"],
        }
        for key, value in attributes.items():
            node.SetAttribute(ATTRIBUTE_PREFIX + key, str(value))
        nodes[name] = node
    mrml.put_in_folder(scene, list(nodes.values()), f"{field_node.GetName()} segments")
    field_node.SetAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian", str(summary.piecewise["minimum_jacobian"]))
    return nodes


def guidance_attributes(guidance: dict | None) -> dict:
    """The guidance's record as node attributes: the metric, the segments and the scores before and after."""
    if not guidance:
        return {}
    start, result = guidance["score_start"], guidance["score_result"]
    attributes = {
        "guidanceMetric": guidance["metric"],
        "guidanceSegments": ",".join(segment["name"] for segment in guidance["segments"]),
        "guidancePoints": guidance["points"],
        "guidance": json.dumps(guidance),
    }
    names = {"mean_dice": "DiceMean", "mean_surface_mm": "SurfaceMeanMm", "points_rms_mm": "PointsRmsMm"}
    for key, name in names.items():
        if start.get(key) is not None:
            attributes[f"guidance{name}Start"] = start[key]
            attributes[f"guidance{name}Result"] = result[key]
    return attributes


def _guidance_files(folder: Path, fixed_node, moving_node, segmentations: tuple, points: tuple) -> dict[str, Path]:
    """Write the guidance nodes as files for the worker: labelmaps (segments named, in each volume's own
    frame) and landmark lists (RAS; the moving list in the moving volume's own frame)."""
    from ..landmarks.points_io import write_points_csv
    from .landmarks import placed_points
    from .qa_frames import moving_points
    from .qa_labels import label_values, labels_image

    files: dict[str, Path] = {}
    fixed_segmentation, moving_segmentation = segmentations
    if (fixed_segmentation is None) != (moving_segmentation is None):
        side = "fixed" if fixed_segmentation is None else "moving"
        raise InputError(f"segment guidance needs two segmentations: select the {side} segmentation, or neither")
    if fixed_segmentation is not None:
        values = label_values(fixed_segmentation, moving_segmentation)
        sides = (("fixed", fixed_segmentation, fixed_node, 0), ("moving", moving_segmentation, moving_node, 1))
        for side, node, volume, index in sides:
            files[f"{side}_segmentation"] = folder / f"{side}_segmentation.nrrd"
            write_image(labels_image(node, values[index], volume, side), files[f"{side}_segmentation"], compress=False)
    fixed_points, moving_points_node = points
    if (fixed_points is None) != (moving_points_node is None):
        side = "fixed" if fixed_points is None else "moving"
        raise InputError(f"landmark guidance needs two point lists: select the {side} list, or neither")
    if fixed_points is not None:
        fixed_ras, fixed_labels = placed_points(fixed_points, "fixed guidance")
        moving_ras, moving_labels = moving_points(moving_points_node, moving_node, "moving guidance")
        for side, points_ras, labels in (("fixed", fixed_ras, fixed_labels), ("moving", moving_ras, moving_labels)):
            files[f"guidance_{side}_points"] = folder / f"{side}_points.csv"
            write_points_csv(files[f"guidance_{side}_points"], points_ras, labels)
    return files


def initial_transform_of(moving_node, initial_transform_node=None) -> Transform:
    """Fixed -> moving start: the optional initial node, then the moving volume's unhardened parents.

    A fixed-space point goes through ``initial_transform_node`` (its FromParent) into world space,
    then through the moving volume's parent chain (FromWorld) into the moving image's own space.
    """
    start = mrml.world_transform(moving_node)
    if initial_transform_node is not None:
        start = start @ mrml.transform_from_node(initial_transform_node)
    return start


def register_nodes(
    fixed_node,
    moving_node,
    engine: str = DEFAULT_ENGINE,
    preset: str = DEFAULT_PRESET,
    fixed_mask_node=None,
    moving_mask_node=None,
    initial_transform_node=None,
    output_transform_node=None,
    output_volume_node=None,
    init: str = DEFAULT_INIT,
    max_rotation_deg: float = FULL_ROTATION_DEG,
    seed: int = DEFAULT_SEED,
    threads: int | None = None,
    python: str | None = None,
    blocking: bool = True,
    on_progress: Callable[[float, str], None] | None = None,
    on_done: Callable[[NodeRegistration], None] | None = None,
    prep: dict | None = None,
    log: str | None = None,
    warm=None,
    fixed_segmentation_node=None,
    moving_segmentation_node=None,
    segments: list[str] | None = None,
    fixed_points_node=None,
    moving_points_node=None,
    guidance_weight: float | None = None,
    metric: str = "intensity",
    piecewise: list[str] | None = None,
):
    """Register ``moving_node`` to ``fixed_node``; the result goes in ``output_transform_node``.

    The result node's TransformFromParent maps fixed to moving (RAS): put the moving volume under
    it to see the two aligned. An unhardened parent transform on the moving volume, and
    ``initial_transform_node``, are the starting pose and are part of the result. Masks may be
    labelmap or segmentation nodes; the volumes may not be labelmaps. With ``blocking`` (default) this
    returns the finished :class:`NodeRegistration`; otherwise it returns at once and
    :meth:`NodeRegistration.follow` (or :meth:`~NodeRegistration.poll`, from a timer) must be called.
    ``prep`` (a :class:`..prep.options.PrepOptions` record, with mask files) prepares the pair in the
    worker first; ``log`` is a file for the engine's log, written on success and on failure.
    ``warm`` (a free :class:`..process.warm_worker.WarmWorker`) runs the job in that process, engines
    already imported; without it a new worker process starts.
    Guidance (see :mod:`..registration.guidance`): ``fixed_segmentation_node``/``moving_segmentation_node``
    (segmentation or labelmap nodes; segments pair by name), ``segments`` (names that guide, default all),
    ``fixed_points_node``/``moving_points_node`` (markups, paired by label), ``guidance_weight`` and
    ``metric`` ("intensity", or "segments" to ignore the intensities). ``piecewise`` (segment names) registers
    those segments rigidly on their own after the global registration: the result node then holds their
    blended displacement field, and one transform node per segment goes in a subject-hierarchy folder.
    """
    check_volume_pair(fixed_node, moving_node, otherwise="register to another volume")
    scene = fixed_node.GetScene()
    targets = {
        "fixed": fixed_node,
        "moving": moving_node,
        "initial": initial_transform_node,
        "output_transform": output_transform_node,
        "output_volume": output_volume_node,
    }
    with job_folder("mmreg-nodes-") as folder:
        files = {"fixed": folder / "fixed.nrrd", "moving": folder / "moving.nrrd"}
        write_image(mrml.image_from_volume_node(fixed_node), files["fixed"], compress=False)
        write_image(mrml.image_from_volume_node(moving_node), files["moving"], compress=False)
        for key, mask, reference in (
            ("fixed_mask", fixed_mask_node, fixed_node),
            ("moving_mask", moving_mask_node, moving_node),
        ):
            if mask is not None:
                files[key] = folder / f"{key}.nrrd"
                write_image(mrml.mask_image(mask, reference), files[key], compress=False)
        files |= _guidance_files(
            folder, fixed_node, moving_node, (fixed_segmentation_node, moving_segmentation_node),
            (fixed_points_node, moving_points_node),
        )  # fmt: skip
        start = initial_transform_of(moving_node, initial_transform_node)
        if not start.is_identity():
            files["initial_transform"] = folder / "initial.h5"
            start.write(files["initial_transform"])
        job = RegistrationJob(
            **{name: str(path) for name, path in files.items()},
            engine=engine,
            preset=preset,
            init=init,
            max_rotation_deg=max_rotation_deg,
            seed=seed,
            threads=threads or None,
            output_transform=str(folder / "result.h5"),
            output_inverse=str(folder / "inverse.h5"),
            output_volume=str(folder / "resampled.nrrd") if output_volume_node is not None else None,
            prep=prep,
            log=log,
            segments=list(segments) if segments else None,
            guidance_weight=guidance_weight,
            metric=metric,
            piecewise=list(piecewise) if piecewise else None,
        )
        job = preflight_registration(job)
        registration = NodeRegistration(scene, job, folder, targets, python, on_progress, on_done, warm)
    if blocking:
        registration.wait()
    return registration
