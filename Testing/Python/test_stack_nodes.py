"""Serial sections stacked into a volume node (nodes.stack, RegistrationPrep's "Stack serial sections") on real
slicer-core scenes: the work runs in a worker process; the node appears only when it succeeds."""

import numpy as np
import pytest
import stack_data

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")
import vtk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.nodes.stack import StackParameters, stack_sections, status_text
from MultimodalRegistrationLib.stack.output import read_transforms_csv
from PIL import Image
from vtk.util import numpy_support

CANVAS = (200.0, 230.0)
MOTION = stack_data.rigid(10.0, (4.0, -3.0), np.asarray(CANVAS) / 2)


@pytest.fixture
def sections(tmp_path):
    """Six unmoved sections 2 mm apart at 1 mm pixels; section 3 rotated 10 deg and moved (4, -3) mm, section 5
    a blank slide."""
    data = stack_data.serial_sections(
        tmp_path / "s", 6, 1.0, 2.0, max_deg=0.0, max_mm=0.0, first_z=-6.0, damage={5: "blank"}
    )
    Image.fromarray(stack_data.render(MOTION, -6.0 + 3 * 2.0, 1.0, CANVAS, seed=3)).save(data.paths[3])
    return tmp_path / "s"


def _ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def test_stack_sections_makes_a_volume_node_with_the_section_spacing(scene, sections, tmp_path):
    csv = tmp_path / "T.csv"
    fractions = []
    parameters = StackParameters(sections=str(sections), section_mm=2.0, pixel_mm=1.0, output_transforms=str(csv))
    stack = stack_sections(parameters, scene=scene, on_progress=lambda fraction, _: fractions.append(fraction))

    node = stack.volume_node
    assert node.IsA("vtkMRMLVectorVolumeNode") and node.GetScene() is scene  # RGB sections: a vector volume
    assert node.GetImageData().GetDimensions() == (200, 230, 6)
    assert node.GetImageData().GetNumberOfScalarComponents() == 3
    assert np.allclose(node.GetSpacing(), (1.0, 1.0, 2.0))
    # LPS origin (0, 0, 0) and axes: RAS is diag(-1, -1, 1) times (i px, j px, k spacing).
    assert np.allclose(_ijk_to_ras(node), np.diag([-1.0, -1.0, 2.0, 1.0]))
    # The known motion of section 3 is found (x_in = A x_out + t): within 0.3 mm of it on the canvas.
    poses = read_transforms_csv(csv)
    miss = stack_data.miss_mm(poses[3] @ np.linalg.inv(poses[0]), MOTION)
    assert miss.max() < 0.3, miss
    # The volume's section 3 shows the section brought back: the unmoved section 2's tissue lines up with it.
    voxels = numpy_support.vtk_to_numpy(node.GetImageData().GetPointData().GetScalars()).reshape(6, 230, 200, 3)
    tissue = voxels.astype(float).mean(axis=-1) < 200
    overlap = (tissue[2] & tissue[3]).sum() / (tissue[2] | tissue[3]).sum()
    assert overlap > 0.95, overlap
    # The blank slide is reported, not fatal; the progress rose to the end of the alignment and beyond.
    assert [(s["section"], s["status"]) for s in stack.problems] == [(5, "blank")]
    assert "Section 5" in status_text(stack) and "blank" in status_text(stack)
    assert fractions == sorted(fractions) and fractions[-1] > 0.85
    assert node.GetAttribute("StackSections.problems") == "1"


def test_bad_parameters_are_refused_before_the_worker_and_leave_the_scene_as_it_was(scene, sections, tmp_path):
    before = scene.GetNumberOfNodes()
    cases = [
        (StackParameters(sections=str(tmp_path / "nowhere"), section_mm=1.0, pixel_mm=1.0), "does not exist"),
        (StackParameters(sections=str(sections), section_mm=0.0, pixel_mm=1.0), "distance between sections"),
        (StackParameters(sections=str(sections), section_mm=1.0), "give it with --pixel-size"),
        (StackParameters(sections=str(sections), section_mm=1.0, pixel_mm=1.0, output_transforms=str(tmp_path / "T.txt")),
         "use one of .csv"),
    ]  # fmt: skip
    for parameters, fragment in cases:
        with pytest.raises(InputError, match=fragment):
            stack_sections(parameters, scene=scene)
    scalar = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not RGB")
    with pytest.raises(InputError, match="not a vector volume"):
        stack_sections(StackParameters(sections=str(sections), section_mm=1.0, pixel_mm=1.0), output_node=scalar)
    assert scene.GetNumberOfNodes() == before + 1
    assert not (tmp_path / "T.txt").exists()


def test_a_cancelled_stack_leaves_the_scene_and_the_disk_as_they_were(scene, sections, tmp_path):
    csv = tmp_path / "T.csv"
    before = scene.GetNumberOfNodes()
    parameters = StackParameters(sections=str(sections), section_mm=2.0, pixel_mm=1.0, output_transforms=str(csv))
    stack = stack_sections(parameters, scene=scene, blocking=False)
    stack.cancel()
    assert stack.error is not None and stack.error.kind == "cancelled"
    assert stack.volume_node is None and scene.GetNumberOfNodes() == before
    assert not csv.exists() and not stack.folder.exists()


def test_the_panel_parameters_reach_the_stack(scene, sections):
    """The Stack button hands the parameter node alone: its names become the parameters (the path widget's "."
    and the pixel size's 0 mean "not given") and its reference node is read beside them."""
    from types import SimpleNamespace

    from MultimodalRegistrationLib.nodes.stack import REFERENCE, stack_from_panel

    panel = SimpleNamespace(
        stackSectionsFolder=".", stackSectionMm=2.0, stackPixelMm=0.0, stackAffine=True, stackReferenceOffsetMm=1.5
    )
    empty = StackParameters.from_panel(panel)
    assert (empty.sections, empty.section_mm, empty.pixel_mm, empty.affine, empty.reference_offset_mm) == (
        "",
        2.0,
        None,
        True,
        1.5,
    )
    with pytest.raises(InputError, match="choose the folder"):
        stack_from_panel(panel, scene=scene)
    panel.stackSectionsFolder, panel.stackPixelMm, panel.stackAffine = sections, 1.0, False
    setattr(panel, REFERENCE, None)
    stack = stack_from_panel(panel, scene=scene)
    assert np.allclose(stack.volume_node.GetSpacing(), (1.0, 1.0, 2.0))
    assert stack.volume_node.GetImageData().GetDimensions() == (200, 230, 6)


def test_a_stack_with_a_reference_is_shown_on_the_reference(scene, tmp_path, monkeypatch):
    """Audit: with a reference the volume came at origin 0, away from the MRI, and only the summary held the 3x3
    pose. The volume now sits under a transform that lays it on the reference (under the reference's own parent
    transform): each section's anatomy lands, in world coordinates, where the truth puts it in the reference."""
    from MultimodalRegistrationLib.core.phantom import rigid_transform
    from MultimodalRegistrationLib.nodes import mrml

    first_z, offset = -7.0, 3.0
    data = stack_data.serial_sections(tmp_path / "s", 8, 1.0, 2.0, first_z=first_z, seed=5)
    motion = stack_data.rigid(7.0, (12.0, -9.0), np.asarray(CANVAS) / 2)
    image = stack_data.reference_volume(data, motion, offset, first_z=first_z)
    reference = mrml.volume_node_from_image(scene, image, "MR")
    shift = mrml.transform_to_node(scene, rigid_transform(0.0, (0, 0, 1), (5.0, -4.0, 3.0)), name="MR placement")
    reference.SetAndObserveTransformNodeID(shift.GetID())
    csv = tmp_path / "T.csv"
    parameters = StackParameters(sections=str(tmp_path / "s"), section_mm=2.0, pixel_mm=1.0,
                                 reference_offset_mm=offset, output_transforms=str(csv))  # fmt: skip
    stack = stack_sections(parameters, reference_node=reference, scene=scene)
    volume = stack.volume_node
    assert volume.GetParentTransformNode() is stack.placement_node
    assert stack.placement_node.GetParentTransformNode() is shift
    poses = read_transforms_csv(csv)
    volume_to_world = mrml.world_transform(volume).inverse()
    reference_to_world = mrml.world_transform(reference).inverse()
    for k in range(8):
        inside = data.points[k] @ data.truth[k][:2, :2].T + data.truth[k][:2, 2]  # section k's image (mm)
        out = (np.linalg.inv(poses[k]) @ np.c_[inside, np.ones(len(inside))].T).T[:, :2]
        shown = volume_to_world.transform_points(np.c_[out, np.full(len(out), 2.0 * k)])
        reference_mm = data.points[k] @ motion[:2, :2].T + motion[:2, 2]
        depth = (offset + 2.0 * k) / image.GetSpacing()[2]
        truth = [image.TransformContinuousIndexToPhysicalPoint((x / image.GetSpacing()[0], y / image.GetSpacing()[1],
                 depth)) for x, y in reference_mm]  # fmt: skip
        error = np.linalg.norm(shown - reference_to_world.transform_points(np.array(truth)), axis=1).mean()
        assert error < 1.5, (k, error)
    # Stacked again onto the reference, failing while it is placed (after the volume was filled): the volume and
    # its placement hold what they held (a review: only a registration's outputs were put back).
    from MultimodalRegistrationLib.nodes import stack as node_stack
    from MultimodalRegistrationLib.process.worker import WorkerFailure

    size, placement = volume.GetImageData().GetDimensions(), _ijk_to_ras(volume)
    matrix = mrml.transform_from_node(stack.placement_node).matrix

    def broken(*args):
        raise MemoryError("cannot place the stack")

    monkeypatch.setattr(node_stack, "_place_on_reference", broken)
    coarser = StackParameters(sections=str(tmp_path / "s"), section_mm=2.0, pixel_mm=2.0, reference_offset_mm=offset)
    with pytest.raises(WorkerFailure, match="MemoryError: cannot place the stack"):
        stack_sections(coarser, reference_node=reference, output_node=volume, scene=scene)
    assert volume.GetImageData().GetDimensions() == size and np.array_equal(_ijk_to_ras(volume), placement)
    assert volume.GetParentTransformNode() is stack.placement_node
    assert np.array_equal(mrml.transform_from_node(stack.placement_node).matrix, matrix)
    monkeypatch.undo()
    # Stacked again into the same volume without a reference: the earlier placement no longer holds it (review).
    again = stack_sections(StackParameters(sections=str(tmp_path / "s"), section_mm=2.0, pixel_mm=1.0),
                           output_node=volume, scene=scene)  # fmt: skip
    assert again.volume_node is volume and volume.GetParentTransformNode() is None and again.placement_node is None


def test_an_output_volume_under_its_own_transform_is_not_moved_onto_the_reference(scene, sections):
    """Stacked onto a reference, the output volume goes under its placement: a volume the user had put under a
    transform of their own lost it without a word. It is refused before anything runs."""
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.phantom import rigid_transform
    from MultimodalRegistrationLib.nodes import mrml

    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 100, (20, 120, 110)).astype(np.float32))
    image.SetSpacing((2.0, 2.0, 2.0))
    reference = mrml.volume_node_from_image(scene, image, "MR")
    output = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "stack")
    own = mrml.transform_to_node(scene, rigid_transform(0.0, (0, 0, 1), (5.0, 0.0, 0.0)), name="my placement")
    output.SetAndObserveTransformNodeID(own.GetID())
    before = scene.GetNumberOfNodes()
    parameters = StackParameters(sections=str(sections), section_mm=2.0, pixel_mm=1.0)
    with pytest.raises(InputError, match="'stack' is under the transform 'my placement', and a stack on a reference "
                       "goes under its own placement: take the output volume out of that transform"):  # fmt: skip
        stack_sections(parameters, reference_node=reference, output_node=output, scene=scene)
    assert output.GetParentTransformNode() is own and scene.GetNumberOfNodes() == before
