"""Registration of MRML volume nodes: the call behind the Slicer module, the console and batch runs.

The engines run in a worker process (:mod:`..process.worker`). Input nodes are never modified; the output
transform (and volume) nodes are created or filled only when the run succeeds, so a failed or
cancelled run leaves the scene as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from types import SimpleNamespace

from ..core.errors import InputError
from ..process.jobs import RegistrationJob
from ..process.preflight import preflight_registration, searches_every_pose
from ..process.worker import WorkerJob
from ..registration.runs import start_from_guidance
from . import slices
from .checks import (
    check_guided_start,
    check_masks_apart,
    check_output_not_a_start,
    check_output_transform,
    check_output_volume,
    check_volume_pair,
)
from .given_nodes import check_given_nodes
from .job import REGISTRATION_ATTRIBUTE_PREFIX as ATTRIBUTE_PREFIX
from .job import job_folder
from .panel import job_from_panel, node_of, panel_defaults, panel_parameters
from .panel_words import panel_errors
from .registration_2d import register_nodes_2d
from .registration_inputs import WRITERS
from .registration_result import NodeRegistration

# ATTRIBUTE_PREFIX: the result nodes' attribute prefix, for the callers that read those attributes.
__all__ = ["ATTRIBUTE_PREFIX", "NodeRegistration", "register_nodes", "registration_parameters"]


def engine_of(parameters) -> str:
    """The engine the panel's ``parameters`` choose, or the default one: what a run installs first in Slicer."""
    return node_of(parameters, RegistrationJob, "engine") or RegistrationJob.engine


def panel_searches_every_pose(parameters) -> bool:
    """Whether the panel's run would search every pose, so that its largest rotation applies: the moving volume's
    parent transform counts as a start, as the run takes it (the panel had enabled the rotation for guided runs,
    whose starts replace the search)."""
    def given(name: str) -> bool:
        return node_of(parameters, RegistrationJob, name) is not None

    moving = node_of(parameters, RegistrationJob, "moving")
    start = given("initial_transform") or (moving is not None and moving.GetParentTransformNode() is not None)
    guided = (given("fixed_segmentation") and given("moving_segmentation")) or given("guidance_fixed_points")
    return searches_every_pose(node_of(parameters, RegistrationJob, "init") or RegistrationJob.init, start, guided)


def register_nodes(
    parameters,
    on_progress: Callable[[float, str], None] | None = None,
    on_done: Callable[[NodeRegistration], None] | None = None,
    blocking: bool = True,
    python: str | None = None,
    warm=None,
    panel_words: bool = True,
) -> NodeRegistration:
    """Register the moving volume to the fixed one as ``parameters`` say; the result goes in its output
    transform node (a new one if none is given).

    ``parameters`` is the module's parameter node, or :func:`registration_parameters` in a script: the same
    names (``fixedVolume``, ``movingVolume``, ``preset``, ``fixedSegmentation``, ``segments``...). The
    result node's TransformFromParent maps fixed to moving (RAS): put the moving volume under it to see the
    two aligned. An unhardened parent transform on the moving volume, and the initial transform node, are
    the starting pose and are part of the result. With ``blocking`` (default) this returns the finished
    :class:`NodeRegistration`; otherwise it returns at once and :meth:`NodeRegistration.follow` (or
    :meth:`~NodeRegistration.poll`, from a timer) must be called. ``warm`` (a free
    :class:`..process.warm_worker.WarmWorker`) runs the job in that process, engines already imported.
    Two volumes one slice thick (slides, photographs, one slice) are registered as 2D images
    (:mod:`.registration_2d`). Errors and warnings name the panel's fields (:mod:`.panel_words`); with
    ``panel_words`` False, ``mmreg register``'s options (the Slicer batch script).
    """
    with panel_errors(RegistrationJob) if panel_words else nullcontext():
        registration = _started(parameters, on_progress, on_done, python, warm)
        registration.speaks_panel = panel_words
        if blocking:
            registration.wait()
        return registration


def _started(parameters, on_progress, on_done, python, warm) -> NodeRegistration:
    """The registration ``parameters`` describe, started in a worker (2D for two single-slice volumes)."""
    check_given_nodes(parameters, panel_defaults(RegistrationJob.panel_fields()))
    fixed, moving = (node_of(parameters, RegistrationJob, name) for name in ("fixed", "moving"))
    check_volume_pair(fixed, moving, otherwise="register to another volume")
    output_transform = node_of(parameters, RegistrationJob, "output_transform")
    check_output_transform(output_transform)
    check_output_not_a_start(output_transform, moving, node_of(parameters, RegistrationJob, "initial_transform"),
                             ATTRIBUTE_PREFIX)
    segmented = node_of(parameters, RegistrationJob, "fixed_segmentation") is not None
    guided = segmented or node_of(parameters, RegistrationJob, "guidance_fixed_points") is not None
    replaced = start_from_guidance(node_of(parameters, RegistrationJob, "init"), segmented)
    check_guided_start(moving, node_of(parameters, RegistrationJob, "initial_transform"), guided, replaced)
    output = node_of(parameters, RegistrationJob, "output_volume")
    for role, volume in (("fixed", fixed), ("moving", moving)):
        if output is not None and output is volume:
            raise InputError(f"the output volume is the {role} volume '{volume.GetName()}': the originals are never "
                             "modified, choose another output volume or create a new one")  # fmt: skip
    check_output_volume(output)
    masks = {f"{role} mask": node_of(parameters, RegistrationJob, f"{role}_mask") for role in ("fixed", "moving")}
    check_masks_apart(masks, {"fixed": fixed, "moving": moving})
    if slices.is_single_slice(fixed) and slices.is_single_slice(moving):
        return register_nodes_2d(parameters, on_progress, on_done, python, warm)
    with job_folder("mmreg-nodes-") as folder:
        outputs = {"output_transform": str(folder / "result.h5"), "output_inverse": str(folder / "inverse.h5")}
        if node_of(parameters, RegistrationJob, "output_volume") is not None:
            outputs["output_volume"] = str(folder / "resampled.nrrd")
        job = preflight_registration(job_from_panel(RegistrationJob, parameters, folder, WRITERS, **outputs))
        worker = WorkerJob(job, python=python, on_progress=on_progress, warm=warm)
        return NodeRegistration(worker, folder, parameters, on_done)


def registration_parameters(**values) -> SimpleNamespace:
    """The registration panel's parameters for a script, by the module's parameter-node names, e.g.
    ``registration_parameters(fixedVolume=ct, movingVolume=mr, preset="affine")``; the rest at the panel's
    defaults. Unknown names are refused, naming the known ones."""
    return panel_parameters(RegistrationJob, **values)
