"""Registration preparation on MRML nodes: the call behind the RegistrationPrep module and the console.

Two volume nodes in; new (or chosen) volume and labelmap nodes out, holding the prepared images
and masks (:func:`..prep.pipeline.prepare`: spacing, downsampling, common-region crop, masks, N4). The
originals are never modified. The preparation runs in a worker process (:mod:`..process.prep_job`);
output nodes are created or filled only when it succeeds, so a failed or cancelled run leaves
the scene as it was.

Placement: the moving volume's unhardened parent transforms, then the optional current transform
node, place the moving image on the fixed one (fixed -> moving, like every transform here; see
:func:`.registration_inputs.initial_transform_of`). The prepared moving volume and mask are put under the same
parent transform as the original, so they show where it shows and a registration of the prepared
pair starts from the same pose. Crops keep their physical position, so a transform found on the
prepared pair applies to the originals (after a spacing fix, to the volume with that spacing). Only
node methods are used here; :mod:`.mrml` is the one file that imports MRML.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import Field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk
import vtk

from ..core.errors import InputError
from ..core.images import index_to_physical_matrix, read_image, write_image
from ..core.transforms import Transform, lps_ras_points
from ..prep.crop import DEFAULT_MARGIN_MM, common_region
from ..prep.options import MODALITIES, ROLES, PrepOptions, n4_target  # noqa: F401 (MODALITIES, n4_target: the module's API)
from ..prep.spacing import set_spacing
from ..process.jobs import PrepJob
from ..process.prep_job import OUTPUT_NAMES, PrepWorkerJob
from ..process.results import PrepJobResult
from ..process.worker import WorkerFailure
from . import mrml
from .checks import check_volume_pair
from .given_nodes import check_given_nodes
from .job import NodeJob, job_folder
from .node_links import record_attributes, recorded_node
from .panel import job_from_panel, node_of, panel_defaults, panel_fields, panel_parameters, panel_value, write_volumes
from .panel_words import panel_errors
from .prep_status import status_text  # noqa: F401 (prep_nodes.status_text, the panel's status line)
from .qa_labels import mask_in_frame
from .registration_inputs import initial_transform_of

ATTRIBUTE_PREFIX = "RegistrationPrep."
ROI_NAME = "Common region"
OUTPUT_SUFFIXES = {"fixed": "prep", "moving": "prep", "fixed_mask": "prep mask", "moving_mask": "prep mask"}


# --------------------------------------------------------------------------- inputs
def prepared_from(volume) -> str:
    """The ID of the volume a preparation made ``volume`` from, while it is in the scene ("" for a volume no
    preparation made, one whose source is gone, or None): a volume added since may hold a deleted source's ID."""
    source = recorded_node(volume, ATTRIBUTE_PREFIX + "sourceNodeID")[1] if volume is not None else None
    return source.GetID() if source is not None else ""


def was_prepared(volume) -> bool:
    """Whether a preparation made ``volume`` (None: no), its source in the scene or not."""
    return volume is not None and bool(recorded_node(volume, ATTRIBUTE_PREFIX + "sourceNodeID")[0])


def check_volumes(fixed_volume, moving_volume) -> None:
    """Raise :class:`InputError` naming the fix unless both are distinct scalar volumes, the fixed one untransformed."""
    check_volume_pair(fixed_volume, moving_volume, otherwise="put the transform on the moving volume")


def placement(moving_volume, current_transform_node=None) -> tuple[Transform, object | None]:
    """The fixed -> moving placement (LPS) and the transform node a registration must still be given.

    The moving volume's parent transforms count first; ``current_transform_node`` is added unless it
    is one of those parents (then it is counted once and None is returned for it).
    """
    if current_transform_node is not None and mrml.is_under(moving_volume, current_transform_node):
        current_transform_node = None
    return initial_transform_of(moving_volume, current_transform_node), current_transform_node


def _volume_image(node, spacing=None) -> sitk.Image:
    image = mrml.image_from_volume_node(node)
    return set_spacing(image, spacing) if spacing is not None else image


# --------------------------------------------------------------------------- common-region preview
def region_box(fixed: sitk.Image, region_lps: np.ndarray, margin_mm: float = 0.0):
    """The box a crop of ``fixed`` to ``region_lps`` keeps, before rounding to whole voxels.

    The box is aligned with the fixed image's axes: the region's bounds along them, widened by
    ``margin_mm`` and clipped to the image's voxel-edge box. Returns ``(center_ras, size_mm,
    axes_ras)``: centre (RAS mm), edge lengths (mm) along the columns of ``axes_ras``, a rotation
    whose columns are the image axes in RAS, reordered and signed to be closest to R, A, S.
    """
    matrix = index_to_physical_matrix(fixed)
    to_index = np.linalg.inv(matrix)
    index = np.asarray(region_lps, float) @ to_index[:3, :3].T + to_index[:3, 3]
    spacing = np.asarray(fixed.GetSpacing(), float)
    low = np.maximum(index.min(axis=0) - margin_mm / spacing, -0.5)
    high = np.minimum(index.max(axis=0) + margin_mm / spacing, np.asarray(fixed.GetSize(), float) - 0.5)
    center_lps = matrix[:3, :3] @ ((low + high) / 2) + matrix[:3, 3]
    size_mm = (high - low) * spacing
    axes = lps_ras_points(np.asarray(fixed.GetDirection(), float).reshape(3, 3).T).T  # columns: image axes, RAS
    order = np.argmax(np.abs(axes), axis=1)  # for R, A and S: the image axis closest to it
    if sorted(order) == [0, 1, 2]:
        axes, size_mm = axes[:, order], size_mm[order]
    axes = axes * np.where(np.diag(axes) < 0, -1.0, 1.0)  # flipping an axis leaves the box unchanged
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1.0
    return lps_ras_points(center_lps[None])[0], size_mm, axes


@panel_errors(PrepJob)
def common_region_roi(
    fixed_volume,
    moving_volume,
    current_transform_node=None,
    margin_mm: float = DEFAULT_MARGIN_MM,
    roi_node=None,
    spacing_fixed=None,
    spacing_moving=None,
):
    """Show the region both volumes cover (plus ``margin_mm``, within the fixed volume) as an ROI node.

    The region is :func:`..prep.crop.common_region` with the moving volume placed by its parent
    transforms and ``current_transform_node``; ``spacing_fixed``/``spacing_moving`` (mm) preview a
    spacing change. The ROI (world RAS) is aligned with the fixed volume's axes, oblique when they
    are, and locked: it shows what a crop keeps, it is not an input. ``roi_node`` is updated, or a
    new one is created. Raises :class:`InputError` when the volumes do not overlap.
    """
    given = {"fixedVolume": fixed_volume, "movingVolume": moving_volume, "initialTransform": current_transform_node,
             "commonRegion": roi_node}  # as the panel names them
    check_given_nodes(SimpleNamespace(**given), given)
    check_volumes(fixed_volume, moving_volume)
    if margin_mm < 0:
        raise InputError(f"margin {margin_mm} mm is negative: give 0 or more")
    fixed = _volume_image(fixed_volume, spacing_fixed)
    moving = _volume_image(moving_volume, spacing_moving)
    transform, _ = placement(moving_volume, current_transform_node)
    center_ras, size_mm, axes_ras = region_box(fixed, common_region(fixed, moving, transform), margin_mm)
    if roi_node is None:
        scene = fixed_volume.GetScene()
        roi_node = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", scene.GenerateUniqueName(ROI_NAME))
        roi_node.CreateDefaultDisplayNodes()
    object_to_node = np.eye(4)
    object_to_node[:3, :3], object_to_node[:3, 3] = axes_ras, center_ras
    was_modifying = roi_node.StartModify()
    roi_node.SetAndObserveTransformNodeID(None)  # world RAS, like the fixed volume
    matrix = vtk.vtkMatrix4x4()
    matrix.DeepCopy(object_to_node.ravel().tolist())
    roi_node.SetAndObserveObjectToNodeMatrix(matrix)
    roi_node.SetSize(*(float(s) for s in size_mm))
    roi_node.SetLocked(True)
    record_attributes(roi_node, ATTRIBUTE_PREFIX, {"fixedNodeID": fixed_volume.GetID(),
                                                   "movingNodeID": moving_volume.GetID(), "marginMm": f"{margin_mm:g}"})
    roi_node.EndModify(was_modifying)
    return roi_node


def preview_common_region(parameters):
    """:func:`common_region_roi` for the panel's volumes, current transform, margin and moving spacing (when its
    box is checked), into its ``commonRegion`` node (a new one if it holds none)."""
    options = {f.name: panel_value(parameters, f) for f in panel_fields(PrepOptions)}
    margin = DEFAULT_MARGIN_MM if options["margin_mm"] is None else options["margin_mm"]
    nodes = (node_of(parameters, PrepJob, name) for name in ("fixed", "moving", "initial_transform"))
    roi = getattr(parameters, "commonRegion", None)
    return common_region_roi(*nodes, margin, roi, spacing_moving=options["spacing_moving"])


# --------------------------------------------------------------------------- preparation
class NodePrep(NodeJob):
    """A preparation of volume nodes running in a worker process.

    :meth:`poll` or :meth:`follow` (non-blocking, for a GUI) and :meth:`wait` (blocking) put the result into
    the output nodes when it arrives; :meth:`cancel` stops the worker and leaves the scene untouched.
    After success, ``fixed_node``, ``moving_node``, ``fixed_mask_node`` and ``moving_mask_node``
    hold the outputs (a mask node is None when no mask was made) and ``summary`` says what was done.
    """

    cancelled_message = "the preparation was cancelled; the scene is unchanged"
    reap_worker = True

    def __init__(self, worker: PrepWorkerJob, folder: Path, parameters, on_done=None):
        self.parameters = parameters
        self.keep_targets(parameters, PrepJob, ("fixed", "moving", "initial_transform"))
        self._moving_parent_id = self._targets["moving"].GetTransformNodeID()
        self._outputs = {name: output_node(parameters, name) for name in OUTPUT_NAMES}
        self.scene = self.target("fixed").GetScene()
        self.folder = folder
        self.on_done = on_done
        self.fixed_node = self.moving_node = self.fixed_mask_node = self.moving_mask_node = None
        self.summary: dict | None = None
        self.error: WorkerFailure | None = None
        self._started = time.perf_counter()
        self._worker = worker.start()

    def _nodes_it_may_fill(self) -> list:
        return [node for node in self._outputs.values() if node is not None and self.scene.IsNodePresent(node)]

    def _output(self, name: str, source):
        """The output node chosen for ``name`` when the run started, unless it holds another volume's preparation
        (a previous run's output left in the selector): then None, and a new node is made."""
        node = self._outputs[name]
        if node is None or not self.scene.IsNodePresent(node):
            return None
        return None if was_prepared(node) and prepared_from(node) != source.GetID() else node

    @property
    def steps(self) -> list[dict]:
        return self.summary["steps"] if self.summary else []

    @property
    def warnings(self) -> list[str]:
        return self.summary["warnings"] if self.summary else []

    def _apply(self, result: PrepJobResult) -> None:
        doing, again = "while the volumes were being prepared", "run the preparation again"
        self.check_targets_present(doing, again)
        if self._moving_parent_id and self.scene.GetNodeByID(self._moving_parent_id) is None:
            raise InputError(f"the moving volume's transform (its placement) was removed from the scene {doing}: "
                             f"nothing was added; {again}")  # fmt: skip
        images = {name: read_image(path, f"prepared {name}") for name, path in result.outputs.items()}
        def done(role: str) -> str:  # each output lists its own image's steps: N4 on the MR is not the CT's
            return ", ".join(dict.fromkeys(step.step for step in result.summary.steps if step.image in (role, "both")))

        _, current = placement(self.target("moving"), self.target("initial_transform"))
        record = json.dumps(result.summary.to_dict())
        for name, image in images.items():
            role = name.split("_")[0]
            source = self.target(role)
            node = self._output(name, source)
            if node is None:
                node_name = self.scene.GenerateUniqueName(f"{source.GetName()} {OUTPUT_SUFFIXES[name]}")
                node = mrml.volume_node_from_image(self.scene, image, node_name, labelmap=name.endswith("mask"))
            else:
                mrml.update_volume_node_from_image(node, image)
                if node.GetDisplayNode() is None:
                    node.CreateDefaultDisplayNodes()
            # The moving outputs sit where the original moving volume sits; the fixed ones in world space.
            node.SetAndObserveTransformNodeID(self._moving_parent_id if role == "moving" else None)
            # and the whole record, as prep.json holds it (options, steps, modality, warnings, versions)
            attributes = {"sourceNodeID": source.GetID(), "steps": done(role),
                          "currentTransformNodeID": current.GetID() if current is not None else "",
                          "summary": record}  # fmt: skip
            record_attributes(node, ATTRIBUTE_PREFIX, attributes)
            setattr(self, f"{name}_node", node)
        # An earlier run's mask in an output this run made none for: stale, and the Send button would hand it to the
        # registration (it had kept the earlier grid; mmreg prep removes such files from its folder too).
        stale = [node for name, node in self._outputs.items() if name not in images and node is not None
                 and self.scene.IsNodePresent(node) and prepared_from(node) == self.target(name.split("_")[0]).GetID()]
        mrml.remove_nodes_and_empty_folders(self.scene, stale)
        self.summary = dict(result.summary.to_dict(), seconds=round(time.perf_counter() - self._started, 2))


def output_attribute(name: str) -> str:
    """The parameter-node attribute holding the output node of the prepared image ``name`` ("fixed_mask" ->
    "outputFixedMask")."""
    return "output" + name.title().replace("_", "")


def output_node(parameters, name: str):
    """The output node the panel chose for the prepared image ``name``, or None (a new one is made)."""
    return getattr(parameters, output_attribute(name), None)


def _check_outputs(parameters) -> None:
    inputs = [node_of(parameters, PrepJob, role) for role in ROLES]
    outputs = {name: output_node(parameters, name) for name in OUTPUT_NAMES}
    given = [node for node in outputs.values() if node is not None]
    for name, node in outputs.items():
        if node is None:
            continue
        what = name.replace("_", " ")
        if any(node is volume for volume in inputs):
            raise InputError(
                f"the output {what} is the input volume '{node.GetName()}': the originals are never modified, "
                "choose another output node or create a new one"
            )
        if name.endswith("mask") != bool(node.IsA("vtkMRMLLabelMapVolumeNode")):
            kind = "a labelmap volume" if name.endswith("mask") else "a scalar volume (not a labelmap)"
            raise InputError(f"the output {what} '{node.GetName()}' is not {kind}: choose {kind} or create a new one")
        if sum(other is node for other in given) > 1:
            raise InputError(f"'{node.GetName()}' is chosen for two outputs: choose a different node for each")


def _job_mask(option, role: str, folder: Path, volume):
    """A mask option the worker can read: an image, or a labelmap or segmentation node (on ``volume``'s grid), is
    written to the job folder, named as the user knows it (a node had stopped the run with a TypeError)."""
    if hasattr(option, "IsA"):  # an MRML node, read in its volume's frame as the registration reads it
        option, name = mask_in_frame(option, volume, role), option.GetName()
    elif isinstance(option, sitk.Image):
        name = f"the {role} mask image given"
    else:
        name = None
    if name is not None:
        path = folder / f"{re.sub(r'[^A-Za-z0-9 ._-]', '_', name)}.nrrd"
        write_image(option, path, compress=False)
        return str(path)
    if option is None or option == "auto":
        return option
    return str(Path(option).resolve())  # the worker runs in another folder


def options_of(parameters) -> PrepOptions:
    """The preparation ``parameters`` ask for: a script's whole ``prep`` options, else the panel's step boxes
    read through the options' own ``panel`` fields. Refused (:class:`InputError`) when no step is on."""
    (field,) = (f for f in PrepJob.panel_fields() if f.name == "prep")
    options = panel_value(parameters, field)
    if options is None:
        values = {f.name: panel_value(parameters, f) for f in panel_fields(PrepOptions)}
        options = PrepOptions(**{name: value for name, value in values.items() if value is not None})
    options.check()
    if not options.steps_on():
        raise InputError("no preparation step is switched on: choose one or more (crop, mask, N4, spacing, downsample)")
    return options


def write_options(parameters, folder: Path, fields: list[Field]) -> dict:
    """The options, a mask given as an image written into ``folder`` (the worker reads files)."""
    (field,) = fields
    options = options_of(parameters)
    masks = {f"mask_{role}": _job_mask(getattr(options, f"mask_{role}"), role, folder,
                                       node_of(parameters, PrepJob, role)) for role in ROLES}  # fmt: skip
    return {field.name: replace(options, **masks)}


def write_placement(parameters, folder: Path, fields: list[Field]) -> dict[str, str]:
    """The moving volume's placement (its parents and the current transform, counted once) as an ITK file,
    unless identity."""
    (field,) = fields
    transform, _ = placement(node_of(parameters, PrepJob, "moving"), panel_value(parameters, field))
    if transform.is_identity():
        return {}
    path = str(folder / "placement.h5")
    transform.write(path)
    return {field.name: path}


WRITERS = {"volume": write_volumes, "placement": write_placement, "options": write_options}


def prep_job(parameters, folder: Path) -> PrepJob:
    """The worker job ``parameters`` describe, its input nodes written into ``folder``; refused
    (:class:`InputError`) before anything is written when the nodes or options cannot be used."""
    check_given_nodes(parameters, [*panel_defaults(PrepJob.panel_fields()), *map(output_attribute, OUTPUT_NAMES)])
    check_volumes(node_of(parameters, PrepJob, "fixed"), node_of(parameters, PrepJob, "moving"))
    options_of(parameters)
    _check_outputs(parameters)
    return job_from_panel(PrepJob, parameters, folder, WRITERS, output_dir=str(folder / "out"))


@panel_errors(PrepJob)
def prepare_nodes(
    parameters,
    on_progress: Callable[[float, str], None] | None = None,
    on_done: Callable[[NodePrep], None] | None = None,
    blocking: bool = True,
    python: str | None = None,
) -> NodePrep:
    """Prepare two volume nodes for registration (see :func:`..prep.pipeline.prepare`) as ``parameters`` say.

    ``parameters`` is the RegistrationPrep module's parameter node, or :func:`prep_parameters` in a script:
    the same names (``fixedVolume``, ``movingVolume``, ``currentTransform``, the step boxes ``cropCommon``,
    ``maskFixed``..., the outputs ``outputFixed``...; or ``prep=PrepOptions(...)``). At least one step must
    be on. The moving volume is placed by its unhardened parent transforms and the current transform
    (fixed -> moving). Outputs: scalar volume nodes for the images, labelmap nodes for the masks; those not
    given are created. With ``blocking`` (default) this returns the finished :class:`NodePrep` (raising
    :class:`..process.worker.WorkerFailure` on failure); otherwise it returns at once and
    :meth:`NodePrep.follow` (or :meth:`~NodePrep.poll`, from a timer) must be called. ``python`` is the worker's
    interpreter (``PythonSlicer`` inside Slicer). Raises :class:`InputError` for unusable nodes.
    """
    with job_folder("mmreg-prep-") as folder:
        worker = PrepWorkerJob(prep_job(parameters, folder), python=python, on_progress=on_progress)
        prep = NodePrep(worker, folder, parameters, on_done)
    if blocking:
        prep.wait()
    return prep


def prep_parameters(**values) -> SimpleNamespace:
    """The RegistrationPrep panel's parameters for a script, by the module's parameter-node names, e.g.
    ``prep_parameters(fixedVolume=ct, movingVolume=mr, cropCommon=True, maskFixed=True)`` or
    ``prep_parameters(fixedVolume=ct, movingVolume=mr, prep=PrepOptions(crop_common=True))``; the rest off.
    Unknown names are refused, naming the known ones."""
    outputs = {output_attribute(name): None for name in OUTPUT_NAMES}
    return panel_parameters(PrepJob, panel_defaults(panel_fields(PrepOptions)) | outputs, **values)
