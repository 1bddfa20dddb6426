"""Serial sections stacked into a volume node: the call behind RegistrationPrep's "Stack serial sections".

The sections (a folder or glob of 2D images, in name order) are aligned without drift and stacked in a worker
process (:mod:`..process.stack_job`), like a preparation or a registration; every check that needs no
registration runs first, here (InputError naming the fix). The volume node is created (or filled) only when
the run succeeds, so a failed or cancelled run leaves the scene as it was. The node's spacing is (pixel, pixel,
section spacing) mm, its origin (0, 0, 0) LPS; RGB sections make a vector volume node. An optional reference
volume node (the MRI, its third voxel axis the cutting direction) ties every section to one frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..core.errors import InputError
from ..core.images import read_image, write_image
from ..core.images2d import read_header_2d
from ..core.records import Record
from ..core.transforms import Transform
from ..process.jobs import StackJob
from ..process.stack_job import StackWorkerJob, check_stack_job
from ..process.worker import WorkerFailure
from ..stack.sections import USABLE
from . import mrml
from .given_nodes import check_given_nodes
from .job import NodeJob, job_folder
from .panel import panel_fields, panel_path, panel_value

ATTRIBUTE_PREFIX = "StackSections."
NODE_NAME = "Stacked sections"
REFERENCE = "stackReference"  # the panel's reference volume node


def _panel(default, name: str, **more):
    return field(default=default, metadata={"panel": name, **more})


@dataclass
class StackParameters(Record):
    """What to stack: ``sections`` (folder or glob), ``section_mm`` apart, ``pixel_mm`` (None: from the files);
    ``affine`` alignment, ``neighbours`` registered to each section (None: 3), the first section's depth in the
    reference (``reference_offset_mm``), every ``reference_every``-th section registered to it (None: the default
    anchors, :mod:`..stack.anchors`), and an optional CSV of the per-section transforms (``output_transforms``,
    the ``mmreg stack`` contract)."""

    sections: str = _panel("", "stackSectionsFolder", read=panel_path)
    section_mm: float = _panel(1.0, "stackSectionMm")
    pixel_mm: float | None = _panel(None, "stackPixelMm", unset=0.0)  # the panel's 0: from the files
    affine: bool = _panel(False, "stackAffine")
    neighbours: int | None = None
    reference_offset_mm: float = _panel(0.0, "stackReferenceOffsetMm")
    reference_every: int | None = None
    output_transforms: str | None = None

    @classmethod
    def from_panel(cls, parameters) -> StackParameters:
        """The parameters a panel's parameter node (or any object with its names) holds."""
        values = {f.name: panel_value(parameters, f) for f in panel_fields(cls)}
        return cls(**{name: value for name, value in values.items() if value is not None})


class NodeStack(NodeJob):
    """A stack running in a worker process. After success ``volume_node`` holds the volume and ``summary`` says
    what became of each section (``summary["sections"]``: status ok, small, large, mirrored, blank, missing or unaligned)."""

    cancelled_message = "the stack was cancelled; the scene is unchanged"
    reap_worker = True

    def __init__(self, scene, job: StackJob, folder: Path, output_node, python, on_progress, on_done,
                 reference_node=None):  # fmt: skip
        self.scene = scene
        self.folder = folder
        self.output_node = output_node
        self.reference_node = reference_node
        self.placement_node = None  # the transform that lays the volume on the reference, when one was given
        self.on_done = on_done
        self.volume_node = None
        self._started = time.perf_counter()
        self._worker = StackWorkerJob(job, python=python, on_progress=on_progress).start()

    @property
    def problems(self) -> list[dict]:
        """The sections that are not plainly aligned (damaged, missing, small, large), each with its note."""
        return [s for s in (self.summary or {}).get("sections", []) if s["status"] != "ok"]

    def _nodes_it_may_fill(self) -> list:
        node = self.output_node
        if node is None or not self.scene.IsNodePresent(node):
            return []
        return [node] + ([placed] if (placed := _placement_of(node)) is not None else [])

    def _apply(self, result: dict) -> None:
        image = read_image(result.outputs.volume, "stacked volume")
        node = self.output_node
        if node is None:
            node = mrml.volume_node_from_image(self.scene, image, self.scene.GenerateUniqueName(NODE_NAME))
        else:
            mrml.update_volume_node_from_image(node, image)
            if node.GetDisplayNode() is None:
                node.CreateDefaultDisplayNodes()
        summary = result.summary  # the stack summary as JSON (StackJob's result carries it so)
        node.SetAttribute(ATTRIBUTE_PREFIX + "sections", str(self._worker.job["sections"]))
        node.SetAttribute(ATTRIBUTE_PREFIX + "problems", str(sum(s["status"] != "ok" for s in summary["sections"])))
        self.volume_node = node
        placed = summary.get("volume_to_reference_lps")
        if placed is not None and self.reference_node is not None and self.scene.IsNodePresent(self.reference_node):
            self.placement_node = _place_on_reference(self.scene, node, self.reference_node, np.asarray(placed))
        elif _placement_of(node) is not None:  # an earlier stack's placement does not hold this one
            node.SetAndObserveTransformNodeID(None)
        self.summary = dict(summary, seconds=round(time.perf_counter() - self._started, 2))


def _placement_of(volume_node):
    """The transform node an earlier stack made to lay ``volume_node`` on a reference, or None."""
    node = volume_node.GetParentTransformNode()
    return node if node is not None and node.GetAttribute(ATTRIBUTE_PREFIX + "placesOnReference") else None


def _place_on_reference(scene, volume_node, reference_node, volume_to_reference: np.ndarray):
    """A linear transform node that shows the stacked volume on the reference (its TransformToParent: the volume's
    points to the reference's, ``volume_to_reference`` in LPS), under the reference's own parent transform; the
    volume goes under it. A node an earlier stack into this volume made is refilled."""
    node = _placement_of(volume_node)
    name = f"{volume_node.GetName()} on {reference_node.GetName()}"
    # Stored as TransformFromParent (the library's convention), so the inverse: TransformToParent is the placement.
    node = mrml.transform_to_node(scene, Transform.from_matrix(np.linalg.inv(volume_to_reference)), node, name=name)
    node.SetName(name)  # a refilled node is named after this reference
    node.SetAttribute(ATTRIBUTE_PREFIX + "placesOnReference", reference_node.GetID())
    node.SetAndObserveTransformNodeID(reference_node.GetTransformNodeID())
    volume_node.SetAndObserveTransformNodeID(node.GetID())
    return node


def _check_output_node(output_node, reference_node, components: int) -> None:
    if output_node is reference_node:
        raise InputError(
            f"the output volume '{output_node.GetName()}' is the reference: choose another node or a new one"
        )
    parent = output_node.GetParentTransformNode()
    if reference_node is not None and parent is not None and _placement_of(output_node) is None:
        # the placement on the reference had replaced the user's own transform without a word
        raise InputError(
            f"the output volume '{output_node.GetName()}' is under the transform '{parent.GetName()}', and a stack "
            "on a reference goes under its own placement: take the output volume out of that transform (or harden "
            "it), or choose a new output volume"
        )
    vector = bool(output_node.IsA("vtkMRMLVectorVolumeNode"))
    if output_node.IsA("vtkMRMLLabelMapVolumeNode") or vector != (components > 1):
        kind = "a vector volume (the sections are RGB)" if components > 1 else "a scalar volume"
        raise InputError(
            f"the output volume '{output_node.GetName()}' is not {kind}: choose {kind} or create a new one"
        )


def _components(paths: list[Path]) -> int:
    """Components per pixel of the first readable section (the volume's: 3 for RGB); 1 when none reads."""
    return next((header.components for header in filter(None, map(read_header_2d, paths))), 1)


def stack_sections(
    parameters: StackParameters,
    reference_node=None,
    output_node=None,
    scene=None,
    python: str | None = None,
    blocking: bool = True,
    on_progress: Callable[[float, str], None] | None = None,
    on_done: Callable[[NodeStack], None] | None = None,
) -> NodeStack:
    """Stack the sections of ``parameters`` into ``output_node`` (a new volume node when None) in a worker process.

    ``reference_node``: an optional volume node (see the module notes); ``scene``: where a new node goes (default:
    the reference's or the output's scene). With ``blocking`` (default) this returns the finished
    :class:`NodeStack` (raising :class:`..process.worker.WorkerFailure` on failure); otherwise it returns at once
    and :meth:`NodeStack.follow` (or ``poll``) must be called. ``python``: the worker's interpreter (``PythonSlicer``
    inside Slicer). Raises :class:`InputError` for bad parameters before anything runs.
    """
    # a node sweep: a removed output was filled outside the scene, a transform as reference ended in AttributeError,
    # a labelmap reference tied no section and was silently not stacked on
    given = {REFERENCE: reference_node, "outputVolume": output_node}
    check_given_nodes(SimpleNamespace(**given), given)
    if reference_node is not None and reference_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"the reference '{reference_node.GetName()}' is a labelmap: choose the image the sections "
                         "are laid on (an MR, a block-face photo stack)")  # fmt: skip
    scene = scene or next((n.GetScene() for n in (output_node, reference_node) if n is not None), None)
    if scene is None:
        raise InputError("no scene: give the scene the stacked volume goes into")
    if not parameters.sections:
        raise InputError("no sections: choose the folder that holds the sections")
    with job_folder("mmreg-stack-") as folder:
        job = StackJob(
            sections=str(Path(parameters.sections).expanduser()), section_mm=parameters.section_mm,
            output_volume=str(folder / "stack.nrrd"), output_transforms=parameters.output_transforms,
            pixel_mm=parameters.pixel_mm, affine=parameters.affine, neighbours=parameters.neighbours,
            reference_offset_mm=parameters.reference_offset_mm, reference_every=parameters.reference_every,
        ).resolved()  # fmt: skip
        if reference_node is not None:
            job.reference = str(folder / "reference.nrrd")
            write_image(mrml.image_from_volume_node(reference_node), job.reference, compress=False)
        paths, _, _ = check_stack_job(job)
        if output_node is not None:
            _check_output_node(output_node, reference_node, _components(paths))
        stack = NodeStack(scene, job, folder, output_node, python, on_progress, on_done, reference_node)
    if blocking:
        stack.wait()
    return stack


def stack_from_panel(parameters, **options) -> NodeStack:
    """The Stack button's one call: :func:`stack_sections` of the panel's parameters and reference node
    (``options``: its keywords from ``output_node`` on)."""
    return stack_sections(StackParameters.from_panel(parameters), getattr(parameters, REFERENCE, None), **options)


def status_text(stack: NodeStack) -> str:
    """What was stacked and which sections were damaged, missing, small or large, one line each."""
    if stack.error is not None:
        return f"Not stacked: {stack.error}"
    if stack.summary is None:
        return f"Stacking: {stack.stage}"
    summary = stack.summary
    sections = summary["sections"]
    aligned = sum(s["status"] in USABLE for s in sections)
    size = f"{summary['pixel_mm']:g} x {summary['pixel_mm']:g} x {summary['section_mm']:g} mm"
    name = stack.volume_node.GetName()
    lines = [
        f"Stacked {len(sections)} sections ({aligned} aligned) into '{name}' in {summary['seconds']:.1f} s: {size}."
    ]
    lines += [f"Section {s['section']} ({s['file']}): {s['status']}: {s['note']}" for s in stack.problems]
    return "\n".join(lines)


__all__ = ["NodeStack", "StackParameters", "WorkerFailure", "stack_from_panel", "stack_sections", "status_text"]
