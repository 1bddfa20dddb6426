"""Registration QA with stability restarts, while the panel stays live (its progress callback runs Slicer's event
loop): a Cancel stops every restart's worker and writes nothing; a selection changed meanwhile does not change
which nodes the result is tagged with or shown on; a scene closed meanwhile ends as a clear error (audit M5)."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")

from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.metric import shrink_to_spacing
from MultimodalRegistrationLib.core.transforms import lps_ras_points
from MultimodalRegistrationLib.nodes import mrml
from MultimodalRegistrationLib.nodes.qa import ATTRIBUTE_PREFIX, assess_nodes, qa_parameters, table_values
from MultimodalRegistrationLib.nodes.registration import ATTRIBUTE_PREFIX as REGISTRATION_PREFIX

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers"),
]


def running_workers() -> list[int]:
    """The live worker processes this test process started (each gets MMREG_PARENT_PID, see process.worker),
    other tests' warm workers in this process (the session's warm elastix) included: compare with those before."""
    mark = f"MMREG_PARENT_PID={os.getpid()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ours = entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0")
            if ours and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":  # a zombie has ended
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.fixture
def coarse(scene, small_pair):
    """The phantom at 4 mm (restarts in seconds), its true transform recorded as an ANTs rigid result, and
    eight target landmarks on each side."""
    fixed = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.fixed, 4.0), "CT 4 mm")
    moving = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.moving, 4.0), "MR 4 mm")
    truth = mrml.transform_to_node(scene, small_pair.truth, name="truth")
    truth.SetAttribute(REGISTRATION_PREFIX + "engine", "ants")
    truth.SetAttribute(REGISTRATION_PREFIX + "preset", "rigid")
    points = small_pair.head_points[:8]
    fixed_targets = mrml.markups_from_points(scene, lps_ras_points(points), name="CT targets")
    moving_targets = mrml.markups_from_points(
        scene, lps_ras_points(small_pair.truth.transform_points(points)), name="MR targets"
    )
    return fixed, moving, truth, fixed_targets, moving_targets


def parameters_for(coarse, **values):
    fixed, moving, truth, fixed_targets, moving_targets = coarse
    return qa_parameters(transform=truth, fixedVolume=fixed, movingVolume=moving, fixedTargetPoints=fixed_targets,
                         movingTargetPoints=moving_targets, **values)  # fmt: skip


def scene_state(scene):
    """Every node (id, name, parent transform id) and every transform's matrix (4 x 4, RAS)."""
    nodes = [scene.GetNthNode(index) for index in range(scene.GetNumberOfNodes())]
    listed = [(n.GetID(), n.GetName(), n.GetTransformNodeID() if hasattr(n, "GetTransformNodeID") else None)
              for n in nodes]  # fmt: skip
    matrices = {n.GetID(): mrml.transform_from_node(n).matrix.copy() for n in nodes if n.IsA("vtkMRMLTransformNode")}
    return listed, matrices


def tags(table) -> dict:
    """The node IDs a QA table is tagged with, by role."""
    return {key: table.GetAttribute(f"{ATTRIBUTE_PREFIX}{key}NodeID") for key in ("fixed", "moving", "transform")}


def test_a_cancel_during_the_restarts_stops_every_worker_and_writes_nothing(scene, coarse):
    from MultimodalRegistrationLib.nodes.qa import QACancelled

    earlier = set(running_workers())  # other tests' warm workers in this process
    parameters = parameters_for(coarse)
    _, table = assess_nodes(parameters)  # a first result, without restarts: its table must stay as it is
    before_values = table_values(table)
    before_tags = tags(table)
    before_scene, before_matrices = scene_state(scene)
    parameters.stability, parameters.stabilityRestarts = True, 2
    seen = []

    def cancel_once_restarting(fraction, stage):
        if stage.startswith("restarts"):
            seen.append(set(running_workers()) - earlier)
            raise QACancelled()  # what the panel's _onProgress raises once Cancel was pressed

    with pytest.raises(QACancelled):
        assess_nodes(parameters, progress=cancel_once_restarting)
    assert len(seen) == 1 and len(seen[0]) >= 1  # workers were running when the cancel came
    assert set(running_workers()) - earlier == set()  # ... and none is left
    after_scene, after_matrices = scene_state(scene)
    assert after_scene == before_scene  # no node added or removed, none moved under another transform
    assert after_matrices.keys() == before_matrices.keys()
    for node_id, matrix in before_matrices.items():
        np.testing.assert_array_equal(after_matrices[node_id], matrix)
    assert parameters.metricsTable is table and table_values(table) == before_values
    assert tags(table) == before_tags


def test_a_selection_changed_during_the_restarts_does_not_change_the_nodes_the_result_is_for(scene, small_pair, coarse):
    """The user changes the panel's selectors while the restarts run (the panel is live): the table was tagged
    with the new selection and the new moving volume shown under the new transform, beside the old pair's numbers."""
    fixed, moving, truth, _, moving_targets = coarse
    other_fixed = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.fixed, 4.0), "other CT")
    other_moving = mrml.volume_node_from_image(scene, shrink_to_spacing(small_pair.moving, 4.0), "other MR")
    other_transform = mrml.transform_to_node(scene, small_pair.truth.inverse(), name="other transform")
    other_targets = mrml.markups_from_points(scene, lps_ras_points(small_pair.head_points[:8]), name="other targets")
    parameters = parameters_for(coarse, stability=True, stabilityRestarts=1)

    def change_selection(fraction, stage):
        if stage.startswith("restarts") and parameters.fixedVolume is fixed:
            parameters.fixedVolume, parameters.movingVolume = other_fixed, other_moving
            parameters.transform, parameters.movingTargetPoints = other_transform, other_targets

    metrics, table, inputs = assess_nodes(parameters, progress=change_selection, with_inputs=True)
    assert parameters.fixedVolume is other_fixed  # the selection did change mid-run
    assert metrics.stability is not None and metrics.stability.restarts == 1
    assert tags(table) == {"fixed": fixed.GetID(), "moving": moving.GetID(), "transform": truth.GetID()}
    assert table.GetName() == "truth QA"
    assert float(table_values(table)["TRE max after"]) < 1e-3  # the numbers are the measured pair's: exact truth
    from MultimodalRegistrationLib.nodes.qa import measured_nodes, show_moving_under  # what the panel shows

    shown_fixed, shown_moving, shown_transform, moving_side = measured_nodes(inputs)
    assert (shown_fixed, shown_moving, shown_transform) == (fixed, moving, truth)
    assert moving_targets in moving_side and other_targets not in moving_side
    show_moving_under(shown_transform, shown_moving, moving_side)  # as the panel's showAlignment does
    assert moving.GetTransformNodeID() == moving_targets.GetTransformNodeID() == truth.GetID()
    assert other_moving.GetTransformNodeID() is None and other_targets.GetTransformNodeID() is None


@pytest.mark.parametrize("how", ["close the scene", "remove the fixed volume"])
def test_the_scene_closed_during_the_restarts_ends_as_a_clear_error(scene, coarse, how):
    """Closing the scene during the restarts ended in "'NoneType' object has no attribute ..." (audit M5)."""
    fixed = coarse[0]
    parameters = parameters_for(coarse, stability=True, stabilityRestarts=1)
    done = []

    def close(fraction, stage):
        if stage.startswith("restarts") and not done:
            done.append(stage)
            if how == "close the scene":
                scene.Clear(0)  # File > Close Scene
            else:
                scene.RemoveNode(fixed)

    nodes, earlier = scene.GetNumberOfNodes(), set(running_workers())
    with pytest.raises(InputError, match="'CT 4 mm' was removed from the scene while it was measured .*nothing was "
                                         "written"):  # fmt: skip
        assess_nodes(parameters, progress=close)
    assert done and set(running_workers()) - earlier == set()
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 0  # no table made for the measurement
    assert scene.GetNumberOfNodes() == (0 if how == "close the scene" else nodes - 1)
