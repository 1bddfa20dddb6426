"""Registration of two single-slice volume nodes (a slide, a photograph, one MR slice) as 2D images.

Slicer loads a PNG, TIFF or JPEG as a volume one slice thick (RGB as a vector volume). When both volumes of
the registration panel are one slice thick, :func:`.registration.register_nodes` runs this instead of the 3D
job: the same engines and preset names (``Presets/presets_2d.json``), the 2D any-pose search, in a worker
(:mod:`..process.register2d_job`).

The 2D job works in each image's pixel frame, pixel (i, j) at ``(i px, j px)`` mm. The result node's
TransformFromParent is that 2D matrix taken back through both volumes' IJK-to-RAS geometry, so it holds
whatever the volumes' origins and directions are: put the moving volume under it to see the two aligned.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.rotations import rotation_part
from ..core.transforms import Transform
from ..process.jobs import RegistrationJob
from ..process.register2d_job import Registration2DJob, Registration2DJobResult, Registration2DWorkerJob, inputs_2d
from ..registration.describe import describe_2d
from . import mrml, slices
from .job import REGISTRATION_ATTRIBUTE_PREFIX as ATTRIBUTE_PREFIX
from .job import job_folder
from .panel import node_of, panel_fields, panel_value
from .panel_words import field_words
from .registration_result import NodeRegistration
from .result_extras import earlier_extras

# Panel inputs the 2D job reads; any other input node set on the panel is for volumes only.
_READ_IN_2D = ("fixed", "moving", "output_transform", "output_volume")
# Panel choices the 2D job reads; any other one set away from its default is unused, and said so.
_CHOSEN_IN_2D = ("engine", "preset", "seed", "threads")


def pixel_mm(node, role: str) -> float:
    """The node's in-plane pixel size (mm); non-square pixels are refused, naming the fix."""
    spacing = node.GetSpacing()
    column, row, thickness = (spacing[axis] for axis in slices.slice_axes(node))
    # a thickness of 0 had run the whole registration, then failed placing the result (a singular matrix)
    if not all(np.isfinite(value) and value > 0 for value in (column, row, thickness)):
        raise InputError(
            f"the {role} image '{node.GetName()}' has spacing {column:g} x {row:g} x {thickness:g} mm: each must be "
            "a positive size; set it in the Volumes module, Volume Information (the slice thickness too: 1 if unknown)"
        )
    if not np.isclose(column, row, rtol=1e-4):
        raise InputError(
            f"the {role} image '{node.GetName()}' has {column:g} x {row:g} mm pixels: 2D registration needs square "
            "pixels; resample it (Resample Scalar Volume module) to one pixel size"
        )
    return float(column)


def write_slice(node, path: Path, role: str) -> float:
    """Write the node's one slice as a 2D NRRD (gray or RGB, as it is); returns its pixel size (mm)."""
    size = pixel_mm(node, role)
    array = slices.slice_array(node)
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 3)
    image.SetSpacing((size, size))
    sitk.WriteImage(image, str(path))
    return size


def ras_matrix(matrix_2d: np.ndarray, fixed, moving, fixed_mm: float, moving_mm: float) -> np.ndarray:
    """The 2D result (3x3, fixed -> moving in the pixel frames, mm) as a 4x4 fixed -> moving RAS matrix: fixed
    RAS -> fixed IJK -> its picture (column, row, slice: :func:`.slices.slice_to_ijk`) -> fixed pixel frame -> (the
    2D matrix, slice index kept) -> moving pixel frame -> moving picture -> moving IJK -> moving RAS. Either slice
    may be thin along any IJK axis (an axial, coronal or sagittal slice)."""
    embedded = np.eye(4)
    embedded[:2, :2], embedded[:2, 3] = matrix_2d[:2, :2], matrix_2d[:2, 2]
    fixed_frame, moving_frame = slices.slice_frame(fixed), slices.slice_frame(moving)
    # mm along the normal too, as T_3d.tfm keeps it: in slice indices, a 0.5 mm slide against a 1 mm slice had
    # scaled the normal 0.5, and a point 10 mm off the slice landed 5 mm off the moving one (a helper's sweep)
    thickness = [float(np.linalg.norm(frame[:3, 2])) for frame in (fixed_frame, moving_frame)]
    to_mm = np.diag([fixed_mm, fixed_mm, thickness[0], 1.0])
    from_mm = np.diag([1 / moving_mm, 1 / moving_mm, 1 / thickness[1], 1.0])
    return moving_frame @ from_mm @ embedded @ to_mm @ np.linalg.inv(fixed_frame)


def _turn_about_normal_deg(matrix_ras: np.ndarray, fixed) -> float:
    """The turn (degrees, right-handed about the fixed slice's normal, RAS) of a 4x4 fixed -> moving RAS result: the
    node's, where the 2D engine's angle is in the pixel frames (a moving slice whose node was turned 10 degrees
    had recorded -0.0007; a helper's scripted session)."""
    turn = rotation_part(np.asarray(matrix_ras, float)[:3, :3])
    normal = slices.slice_frame(fixed)[:3, 2]
    axis = np.array([turn[2, 1] - turn[1, 2], turn[0, 2] - turn[2, 0], turn[1, 0] - turn[0, 1]])
    sine = float(axis @ normal) / (2.0 * float(np.linalg.norm(normal)))
    return float(np.degrees(np.arctan2(sine, (np.trace(turn) - 1.0) / 2.0)))


def check_2d_panel(parameters) -> None:
    """Refuse the panel's inputs that 2D images cannot use (masks, segmentations, landmarks, a start), and a
    moving volume under a transform (the 2D search finds the start itself), naming each fix."""
    given = [  # in the panel's words: "fixedMask apply to 3D volumes only" (a node sweep)
        field_words(RegistrationJob, field)
        for field in panel_fields(RegistrationJob)
        if field.metadata.get("node") and field.name not in _READ_IN_2D and panel_value(parameters, field) is not None
    ]
    if given:
        raise InputError(f"2D images (one slice thick): {', '.join(given)} apply to 3D volumes only: clear them")
    moving = node_of(parameters, RegistrationJob, "moving")
    parent = moving.GetParentTransformNode()
    # under the output transform: this module's result, which the run replaces (a second Register after the panel
    # had put the slide under its result was refused, with the advice to harden it; a helper's sweep)
    if parent is not None and parent is not node_of(parameters, RegistrationJob, "output_transform"):
        raise InputError(
            f"the moving image '{moving.GetName()}' is under a transform: 2D registration searches every pose "
            "itself; harden the transform or take the image out of it"
        )


def unused_in_2d(parameters) -> str | None:
    """The warning for the panel's choices that a 2D run does not read (a start method, a largest rotation, a
    metric, a log file...), set away from their defaults; None when there are none. The 2D search tries every
    turn itself: a user who limited it had seen the run ignore the limit without a word."""
    unused = [
        field_words(RegistrationJob, field) for field in panel_fields(RegistrationJob)
        if not field.metadata.get("node") and field.name not in (*_CHOSEN_IN_2D, *_READ_IN_2D)
        and panel_value(parameters, field) not in (None, field.default)
    ]  # fmt: skip
    if not unused:
        return None
    words = ", ".join(unused)
    return (f"2D images (one slice thick): {words} apply to 3D volumes only and were not used; the 2D search tries "
            "every turn and size itself")  # fmt: skip


def _spacing_words(warning: str) -> str:
    """A 2D warning as the panel says it: each volume's pixel size is its spacing, set in Slicer, not an option."""
    return (warning.replace(" (given)", " (the volume's spacing)")
            .replace("--fixed-pixel-size, --moving-pixel-size", "set each volume's spacing to its pixel size in the "
                     "Volumes module, Volume Information"))  # fmt: skip


class NodeRegistration2D(NodeRegistration):
    """A 2D registration of two single-slice volume nodes in a worker; progress, wait and cancel as
    :class:`.job.NodeJob`. The result goes in the output transform node (and output volume node) on success."""

    panel_job = RegistrationJob  # the registration panel started it

    def __init__(self, worker, folder: Path, parameters, pixels: tuple[float, float], on_done=None):
        self.pixels = pixels  # (fixed, moving) pixel sizes (mm) the 2D job was given
        self.unused = unused_in_2d(parameters)
        super().__init__(worker, folder, parameters, on_done)

    def describe(self) -> str:
        """The 2D result in one line, then each warning (a size that suggests a wrong pixel size), in the panel's
        words: the pixel sizes are the volumes' spacings."""
        return "\n".join([describe_2d(self.summary), *(f"Warning: {warning}" for warning in self._said(self.summary))])

    def _said(self, summary) -> list[str]:
        """The run's warnings and its own QA's, as the panel says them."""
        return [self.in_panel_words(_spacing_words(w)) for w in (*summary.warnings, *summary.qa.get("warnings", []))]

    def _recorded_command(self) -> str:
        """The mmreg register2d line, when it repeats the run on the slices' own files: only for slices whose
        files hold them as the run compared them (thin along K, not turned for the view); else none."""
        as_read = all(np.array_equal(slices.slice_to_ijk(self.target(role)), np.eye(4)) for role in ("fixed", "moving"))
        return (self.summary.command or "") if as_read else ""

    def _apply(self, result: Registration2DJobResult) -> None:
        self.check_targets_present("during the registration", "register again")
        summary = result.summary
        if self.unused:
            summary.warnings.insert(0, self.unused)
        fixed, moving = self.target("fixed"), self.target("moving")
        matrix = ras_matrix(np.asarray(summary.matrix), fixed, moving, *self.pixels)
        node = self._result_node(Transform.from_matrix_ras(matrix))
        stale = earlier_extras(self.scene, node)
        self._record(node, {
            "dimension": 2, "engine": summary.engine, "engineVersion": summary.version, "preset": summary.preset,
            "libraryVersion": summary.mmreg_version, "seed": summary.seed, "threads": summary.threads,
            "rotationDeg": round(_turn_about_normal_deg(matrix, fixed), 4),
            "scales": ",".join(f"{s:g}" for s in summary.scales),
            "fixedNodeID": fixed.GetID(), "movingNodeID": moving.GetID(), "summary": json.dumps(summary.to_dict()),
        })  # fmt: skip
        if self.present_target("output_volume") is not None:
            # The 2D result on the fixed slice's grid, as one slice in the fixed slice's own place and direction.
            pixels = sitk.GetArrayFromImage(sitk.ReadImage(result.outputs.volume))  # the fixed slice's picture
            volume = sitk.GetImageFromArray(slices.slice_voxels(fixed, pixels), isVector=pixels.ndim == 3)
            if note := self._fill_output_volume(volume, node):
                summary.warnings.append(note)
            mrml.set_ijk_to_ras(self.output_volume_node, mrml.ijk_to_ras(fixed))
        # As a 3D result's: the engine's and the search's seconds, and the warnings as the panel says them (a JSON
        # list; the 2D run's own QA's too).
        node.SetAttribute(ATTRIBUTE_PREFIX + "seconds", str(round(sum(summary.timings.values()), 3)))
        node.SetAttribute(ATTRIBUTE_PREFIX + "warnings", json.dumps(self._said(summary)))
        mrml.remove_nodes_and_empty_folders(self.scene, stale)
        self.summary = summary


def register_nodes_2d(parameters, on_progress=None, on_done=None, python: str | None = None, warm=None):
    """Start the 2D registration the panel's ``parameters`` describe (both volumes one slice thick); returns the
    running :class:`NodeRegistration2D`. Inputs are checked first (InputError naming the fix)."""
    check_2d_panel(parameters)
    fixed, moving = node_of(parameters, RegistrationJob, "fixed"), node_of(parameters, RegistrationJob, "moving")
    with job_folder("mmreg-nodes-2d-") as folder:
        pixels = (
            write_slice(fixed, folder / "fixed.nrrd", "fixed"),
            write_slice(moving, folder / "moving.nrrd", "moving"),
        )
        choice = {name: node_of(parameters, RegistrationJob, name) for name in ("engine", "preset", "seed", "threads")}
        job = Registration2DJob(
            fixed=str(folder / "fixed.nrrd"), moving=str(folder / "moving.nrrd"), fixed_pixel_mm=pixels[0],
            moving_pixel_mm=pixels[1], output_transform=str(folder / "result.tfm"),
            output_volume=str(folder / "warped.nrrd") if node_of(parameters, RegistrationJob, "output_volume") else None,
            **{name: value for name, value in choice.items() if value is not None},
        ).resolved()  # fmt: skip
        inputs_2d(job)
        worker = Registration2DWorkerJob(job, python=python, on_progress=on_progress, warm=warm)
        return NodeRegistration2D(worker, folder, parameters, pixels, on_done)
