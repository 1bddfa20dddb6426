"""Landmark prealignment on MRML nodes (the FiducialPrealign module's logic) on real slicer-core scenes."""

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")
import vtk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points
from MultimodalRegistrationLib.nodes import mrml
from MultimodalRegistrationLib.nodes.landmarks import (
    ATTRIBUTE_PREFIX,
    RESIDUAL_COLUMNS,
    WORST_BY_LOO,
    fit_markups,
    status_text,
    worst_point,
)

TRUTH = rigid_transform(30.0, (1.0, -2.0, 0.5), (12.0, -7.0, 15.0))  # fixed -> moving, LPS mm
FIXED_LPS = np.random.default_rng(5).uniform(-50, 50, size=(7, 3))
LABELS = [f"L{i}" for i in range(7)]


def moving_lps(noise=0.0, seed=1):
    return TRUTH.transform_points(FIXED_LPS) + np.random.default_rng(seed).normal(0, noise, FIXED_LPS.shape)


def slicer_maps(node, points_ras):
    """Where Slicer itself sends RAS points through the node's TransformFromParent."""
    from_parent = node.GetTransformFromParent()
    return np.array([from_parent.TransformPoint(*map(float, p)) for p in points_ras])


def linear_parent(scene, transform: Transform, name):
    """A transform node whose ToParent (local -> world) is ``transform`` (LPS)."""
    return mrml.transform_to_node(scene, transform.inverse(), name=name)  # FromParent = inverse of ToParent


def column(table_node, name):
    table = table_node.GetTable()
    array = table.GetColumnByName(name)
    return [array.GetValue(row) for row in range(table.GetNumberOfRows())]


def box_volume(scene, low=-80.0, high=80.0, spacing=4.0):
    size = round((high - low) / spacing) + 1
    image = sitk.Image([size] * 3, sitk.sitkInt16)
    image.SetSpacing([spacing] * 3)
    image.SetOrigin([low] * 3)
    return mrml.volume_node_from_image(scene, image, "reference"), image


def test_markups_under_parent_transforms_are_read_in_world_ras(scene):
    fixed_parent = rigid_transform(40.0, (0, 0, 1), (20.0, 5.0, -10.0))
    moving_parent = rigid_transform(-15.0, (1, 1, 0), (-30.0, 0.0, 8.0))
    # Local positions chosen so that the world positions are FIXED_LPS and TRUTH(FIXED_LPS).
    fixed = mrml.markups_from_points(scene, lps_ras_points(fixed_parent.inverse().transform_points(FIXED_LPS)), LABELS)
    moving_local = moving_parent.inverse().transform_points(moving_lps())
    moving = mrml.markups_from_points(scene, lps_ras_points(moving_local), LABELS)
    fixed.SetAndObserveTransformNodeID(linear_parent(scene, fixed_parent, "fixed parent").GetID())
    moving.SetAndObserveTransformNodeID(linear_parent(scene, moving_parent, "moving parent").GetID())
    fit, node, _ = fit_markups(fixed, moving, "rigid")
    assert np.allclose([row.fixed_ras for row in fit.residuals], lps_ras_points(FIXED_LPS), atol=1e-6)
    assert np.abs(fit.transform.matrix - TRUTH.matrix).max() < 1e-6 and fit.fre_max_mm < 1e-6
    assert np.allclose(slicer_maps(node, lps_ras_points(FIXED_LPS)), lps_ras_points(moving_lps()), atol=1e-6)
    # Moving a parent moves the points: the next fit sees the new world positions.
    shift = np.eye(4)
    shift[:3, 3] = [0.0, 0.0, 5.0]
    mrml.transform_to_node(scene, fixed_parent.inverse() @ Transform.from_matrix(np.linalg.inv(shift)),
                           fixed.GetParentTransformNode())  # fmt: skip
    moved, _, _ = fit_markups(fixed, moving, "rigid", node)
    assert np.allclose([row.fixed_ras for row in moved.residuals], lps_ras_points(FIXED_LPS + [0, 0, 5]), atol=1e-6)


def test_rigid_output_node_is_linear_and_holds_the_fit(scene):
    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    moving = mrml.markups_from_points(scene, lps_ras_points(moving_lps(noise=1.0)), LABELS, "moving")
    fit, node, table = fit_markups(fixed, moving, "rigid")
    assert node.IsA("vtkMRMLLinearTransformNode") and node.IsLinear()
    from_parent = vtk.vtkMatrix4x4()
    node.GetMatrixTransformFromParent(from_parent)
    matrix = np.array([[from_parent.GetElement(r, c) for c in range(4)] for r in range(4)])
    assert np.abs(matrix - fit.transform.matrix_ras).max() < 1e-9
    assert np.abs(fit.transform.matrix - TRUTH.matrix).max() > 1e-4  # noisy: the fit, not the truth
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "type") == "rigid"
    assert float(node.GetAttribute(ATTRIBUTE_PREFIX + "freRmsMm")) == pytest.approx(fit.fre_rms_mm, abs=1e-4)
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "fixedPointsNodeID") == fixed.GetID()
    # A refit reuses the nodes it is given: a field first, then a matrix again in the same node.
    count = scene.GetNumberOfNodes()
    _, same, same_table = fit_markups(fixed, moving, "tps", node, table_node=table)
    assert same is node and same_table is table and not node.IsLinear()
    assert np.abs(slicer_maps(node, lps_ras_points(FIXED_LPS)) - lps_ras_points(moving_lps(noise=1.0))).max() < 0.1
    again, same, _ = fit_markups(fixed, moving, "similarity", node, table_node=table)
    assert same is node and node.IsLinear() and scene.GetNumberOfNodes() == count
    node.GetMatrixTransformFromParent(from_parent)
    assert abs(from_parent.GetElement(0, 3) - again.transform.matrix_ras[0, 3]) < 1e-9


def test_a_landmark_fit_the_moving_volume_sits_under_is_refused_as_a_registrations_output(scene):
    """A landmark fit is the moving volume's start, not a registration's result: chosen as the output transform,
    the run would replace it and start from the identity. The fit's recorded IDs had flagged the node under the
    registration's prefix, which let it through (a review)."""
    from MultimodalRegistrationLib.nodes.checks import check_output_not_a_start
    from MultimodalRegistrationLib.nodes.job import REGISTRATION_ATTRIBUTE_PREFIX

    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    moving = mrml.markups_from_points(scene, lps_ras_points(moving_lps()), LABELS, "moving")
    _, prealignment, _ = fit_markups(fixed, moving, "rigid")
    volume, _ = box_volume(scene)
    volume.SetAndObserveTransformNodeID(prealignment.GetID())
    with pytest.raises(InputError, match="is the moving volume's own prealignment"):
        check_output_not_a_start(prealignment, volume, None, REGISTRATION_ATTRIBUTE_PREFIX)


def test_residual_table_has_one_row_per_pair_and_marks_the_worst(scene):
    moving = moving_lps(noise=0.5, seed=2)
    moving[4] += [0.0, 6.0, 0.0]  # L4 was placed 6 mm off
    order = [3, 6, 0, 4, 1, 5, 2]  # the moving list in another order: paired by label
    fixed_node = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    moving_node = mrml.markups_from_points(scene, lps_ras_points(moving[order]), [LABELS[i] for i in order], "moving")
    fit, _, table = fit_markups(fixed_node, moving_node, "rigid")
    assert fit.paired_by == "label"
    assert [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())] == [n for n, _ in RESIDUAL_COLUMNS]
    assert table.GetNumberOfRows() == 7 and column(table, "label") == LABELS
    assert np.allclose(column(table, "error"), [row.error_mm for row in fit.residuals], atol=1e-3)
    assert np.allclose(column(table, "leave-one-out"), fit.loo_errors_mm, atol=1e-3)
    assert np.allclose(
        np.c_[column(table, "fixed R"), column(table, "fixed A"), column(table, "fixed S")],
        lps_ras_points(FIXED_LPS), atol=1e-3,
    )  # fmt: skip
    mapped = lps_ras_points(fit.transform.transform_points(FIXED_LPS))
    assert np.allclose(np.c_[column(table, "mapped R"), column(table, "mapped A"), column(table, "mapped S")],
                       mapped, atol=1e-3)  # fmt: skip
    assert table.GetColumnUnitLabel("error") == "mm" and table.GetColumnTitle("error") == "error (mm)"
    assert table.GetUseColumnTitleAsColumnHeader()
    # The moving list's own labels and positions sit next to the fixed ones (paired by label: reordered).
    assert column(table, "moving label") == LABELS
    assert np.allclose(np.c_[column(table, "moving R"), column(table, "moving A"), column(table, "moving S")],
                       lps_ras_points(moving), atol=1e-3)  # fmt: skip
    # The misplaced pair is the worst, marked in the table only: the input lists are never changed (F6).
    assert column(table, "check") == [WORST_BY_LOO if label == "L4" else "" for label in LABELS]
    assert fit.loo_errors_mm[4] > 4 and fit.loo_errors_mm[4] == max(fit.loo_errors_mm)
    assert all(fixed_node.GetNthControlPointSelected(i) for i in range(7))
    assert all(moving_node.GetNthControlPointSelected(i) for i in range(7))
    # Fixing the point refits into the same table: no extra columns, a new worst pair.
    moving_node.SetNthControlPointPositionWorld(order.index(4), *lps_ras_points([moving[4] - [0, 6, 0]])[0])
    refit, _, same = fit_markups(fixed_node, moving_node, "rigid", table_node=table)
    assert same is table and table.GetNumberOfColumns() == len(RESIDUAL_COLUMNS) and table.GetNumberOfRows() == 7
    assert column(table, "error")[4] == pytest.approx(refit.residuals[4].error_mm, abs=1e-3)
    assert refit.residuals[4].error_mm < 2.0 and refit.loo_errors_mm[4] < 3.0
    assert column(table, "check").count(WORST_BY_LOO) == 1 and column(table, "check")[4] == ""


def test_tps_on_a_reference_volume_is_a_field_mapping_fixed_to_moving(scene):
    fixed_lps = np.random.default_rng(8).uniform(-50, 50, size=(12, 3))
    bend = np.c_[6 * np.sin(fixed_lps[:, 1] / 30), 5 * np.cos(fixed_lps[:, 0] / 40), 4 * np.sin(fixed_lps[:, 2] / 35)]
    moving = TRUTH.transform_points(fixed_lps) + bend
    fixed_node = mrml.markups_from_points(scene, lps_ras_points(fixed_lps), name="fixed")
    moving_node = mrml.markups_from_points(scene, lps_ras_points(moving), name="moving")
    reference, image = box_volume(scene)
    fit, node, table = fit_markups(fixed_node, moving_node, "tps", reference_volume_node=reference)
    assert not node.IsLinear() and fit.transform.kind == "composite"
    # Slicer's own evaluation of the node sends the fixed points onto the moving points.
    assert np.abs(slicer_maps(node, lps_ras_points(fixed_lps)) - lps_ras_points(moving)).max() < 0.1
    # The bend on the reference grid grown by its fade, the affine part beyond: no tear at the grid's faces.
    field = fit.transform.components()[1].displacement_field()
    assert np.allclose(field.GetSpacing(), image.GetSpacing())
    assert np.all(np.asarray(field.GetOrigin()) < np.asarray(image.GetOrigin()))
    assert np.all(np.asarray(field.GetSize()) > np.asarray(image.GetSize()))
    assert max(column(table, "error")) < 0.1 and min(column(table, "leave-one-out")) > 0.1
    assert "FRE ~0 by construction" in status_text(fit)


def test_a_spline_without_leave_one_out_highlights_nothing(scene):
    fixed_node = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS[:4]), LABELS[:4], "fixed")
    moving_node = mrml.markups_from_points(scene, lps_ras_points(moving_lps(1.0)[:4]), LABELS[:4], "moving")
    fixed_node.SetNthControlPointSelected(2, False)  # the user's own selection: a fit leaves it as it is
    fit, _, table = fit_markups(fixed_node, moving_node, "tps")
    assert worst_point(fit) is None and fit.loo_rms_mm is None
    assert all(math.isnan(value) for value in column(table, "leave-one-out")) and set(column(table, "check")) == {""}
    assert [fixed_node.GetNthControlPointSelected(i) for i in range(4)] == [True, True, False, True]
    assert "leave-one-out RMS not available" in status_text(fit)


def test_bad_inputs_raise_with_the_fix_and_change_nothing(scene):
    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    moving = mrml.markups_from_points(scene, lps_ras_points(moving_lps()), LABELS, "moving")
    output = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "output")
    reference, _ = box_volume(scene)
    above = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "above")
    count = scene.GetNumberOfNodes()
    output.SetAndObserveTransformNodeID(above.GetID())  # the points put under it would be moved by both
    with pytest.raises(InputError, match="the output transform 'output' is under the transform 'above'"):
        fit_markups(fixed, moving, "rigid", output)
    output.SetAndObserveTransformNodeID(None)
    with pytest.raises(InputError, match="the fixed point list and the moving point list are the same node, 'fixed': select two different lists"):
        fit_markups(fixed, fixed)
    with pytest.raises(InputError, match="select the moving point list"):
        fit_markups(fixed, None)
    moving.SetAndObserveTransformNodeID(output.GetID())
    with pytest.raises(InputError, match="'moving' is under the output transform 'output'.*take the list out"):
        fit_markups(fixed, moving, "rigid", output)
    moving.SetAndObserveTransformNodeID(None)
    reference.SetAndObserveTransformNodeID(output.GetID())
    with pytest.raises(InputError, match="reference volume 'reference' is under a transform"):
        fit_markups(fixed, moving, "tps", output, reference)
    moving.UnsetNthControlPointPosition(2)  # as 'Unset position' in the Markups module
    with pytest.raises(InputError, match="moving point 'L2' in 'moving' is not placed: place it or delete it"):
        fit_markups(fixed, moving, "rigid", output)
    moving.RemoveNthControlPoint(2)
    for index in range(6):  # no label in common: the lists pair only by order
        moving.SetNthControlPointLabel(index, f"M{index}")
    with pytest.raises(InputError, match="7 fixed landmarks but 6 moving landmarks, and they cannot be paired by label"):
        fit_markups(fixed, moving, "rigid", output)
    assert scene.GetNumberOfNodes() == count  # no output, table or storage node left behind
    assert output.GetAttribute(ATTRIBUTE_PREFIX + "type") is None
    assert all(fixed.GetNthControlPointSelected(i) for i in range(7))


def test_a_point_without_a_partner_is_left_out_and_the_worst_pair_is_marked_by_label(scene):
    moving_points = moving_lps()
    moving_points[5] += (6.0, 0.0, 0.0)  # 'L5' clicked 6 mm off
    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    moving = mrml.markups_from_points(scene, lps_ras_points(moving_points), LABELS, "moving")
    moving.RemoveNthControlPoint(2)  # 'L2' on the fixed list only: after it, fixed and moving indices differ
    fit, _, table = fit_markups(fixed, moving, "rigid")
    assert [row.label for row in fit.residuals] == [label for label in LABELS if label != "L2"]
    assert any(warning == "landmarks without a partner were left out: L2" for warning in fit.warnings)
    assert fit.residuals[worst_point(fit)].label == "L5"
    assert column(table, "check") == [WORST_BY_LOO if row.label == "L5" else "" for row in fit.residuals]
    assert all(fixed.GetNthControlPointSelected(i) for i in range(7))
    assert all(moving.GetNthControlPointSelected(i) for i in range(6))


def test_the_prealign_panel_fits_through_the_prealign_jobs_fields(scene):
    """The FiducialPrealign panel's lists, type, output transform and residual table reach the fit by the
    PrealignJob fields naming their attributes; a refit fills the same output nodes."""
    from MultimodalRegistrationLib.nodes.landmarks import fit_panel, prealign_parameters

    truth = rigid_transform(20.0, (0.2, 1.0, 0.3), (5.0, -8.0, 12.0))
    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    moving = mrml.markups_from_points(scene, lps_ras_points(truth.transform_points(FIXED_LPS)), LABELS, "moving")
    output = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "chosen output")
    output.SetAttribute("MultimodalRegistration.metricAfter", "0.7")  # it held a registration result before
    parameters = prealign_parameters(fixedPoints=fixed, movingPoints=moving, transformType="similarity",
                                     outputTransform=output)  # fmt: skip
    fit, node, table = fit_panel(parameters)
    assert node is output and fit.kind == "similarity" and fit.fre_rms_mm < 1e-6
    assert node.GetAttribute("MultimodalRegistration.metricAfter") is None
    assert table.GetNumberOfRows() == len(LABELS)
    parameters.residualTable, parameters.transformType = table, "translation"
    fit, node, same_table = fit_panel(parameters)
    assert node is output and same_table is table and fit.kind == "translation" and fit.fre_rms_mm > 1.0
    with pytest.raises(InputError, match="unknown parameters \\['type'\\]"):
        prealign_parameters(type="rigid")


def test_an_empty_point_list_is_named(scene):
    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    empty = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "MR points")
    count = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="the moving point list 'MR points' has no points: place them, or leave"):
        fit_markups(fixed, empty, "rigid")
    assert scene.GetNumberOfNodes() == count


def test_a_skipped_point_is_left_out_when_paired_by_label_and_named_by_order(scene):
    from MultimodalRegistrationLib.nodes.landmarks import placed_points, placement

    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    moving = mrml.markups_from_points(scene, lps_ras_points(moving_lps()), LABELS, "moving")
    moving.SetNthControlPointPositionMissing(3)  # Slicer's Skip: not visible in the moving image
    assert placement(moving) == (6, [], ["L3"])
    fit, _, table = fit_markups(fixed, moving, "rigid")
    assert column(table, "label") == [label for label in LABELS if label != "L3"] and fit.fre_max_mm < 1e-6
    assert fit.warnings[0].startswith("moving point 'L3' in 'moving' is marked skipped (not visible in that image)")
    with pytest.raises(InputError, match="moving point 'L3' in 'moving' is marked skipped"):
        placed_points(moving, "moving")  # QA and guidance cannot leave it out: they say so
    for index in range(7):  # no label in common: paired by order, leaving it out would shift the later pairs
        moving.SetNthControlPointLabel(index, f"M{index}")
    with pytest.raises(InputError, match="'M3' in 'moving' is marked skipped .* the lists pair by order"):
        fit_markups(fixed, moving, "rigid")


def test_curves_are_not_landmark_lists(scene):
    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    curve = scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", "outline")
    for point in lps_ras_points(moving_lps()):
        curve.AddControlPoint(vtk.vtkVector3d(*point))
    with pytest.raises(InputError, match="the moving list 'outline' is a ClosedCurve markup, not a point list"):
        fit_markups(fixed, curve, "rigid")


def test_the_output_node_records_warnings_version_reference_and_mirror(scene):
    from MultimodalRegistrationLib.core.version import __version__

    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS, "fixed")
    mirrored = moving_lps() * [-1.0, 1.0, 1.0]  # a mirrored histology section is legitimate: kept, recorded
    moving = mrml.markups_from_points(scene, lps_ras_points(mirrored), LABELS, "moving")
    reference, _ = box_volume(scene)
    fit, node, table = fit_markups(fixed, moving, "affine", reference_volume_node=reference)
    attribute = lambda key: node.GetAttribute(ATTRIBUTE_PREFIX + key)
    assert json.loads(attribute("warnings")) == fit.warnings and any("mirror" in w for w in fit.warnings)
    assert attribute("mirrors") == "true" and fit.determinant == pytest.approx(-1.0, abs=1e-6)
    assert attribute("libraryVersion") == __version__ and attribute("referenceVolumeNodeID") == reference.GetID()
    assert table.GetAttribute(ATTRIBUTE_PREFIX + "transformNodeID") == node.GetID()
    fit, node, _ = fit_markups(fixed, mrml.markups_from_points(scene, lps_ras_points(moving_lps()), LABELS), "rigid")
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "mirrors") == "false"
    assert node.GetAttribute(ATTRIBUTE_PREFIX + "referenceVolumeNodeID") == ""


def test_point_lists_are_guessed_only_by_names_that_say_their_role(scene):
    from MultimodalRegistrationLib.nodes.roles import guess_roles as guess_point_lists

    def lists(*names):
        return [scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name) for name in names]

    assert guess_point_lists(lists("F", "F_1")) == (None, None)  # creation order says nothing
    moving, fixed = lists("Moving MR points", "fixed CT points")  # made in the "wrong" order
    assert guess_point_lists([moving, fixed]) == (fixed, moving)
    assert guess_point_lists([moving, fixed, *lists("fixed copy")]) == (None, None)  # ambiguous: left unset


def test_volumes_are_preselected_only_by_names_that_say_their_role(scene):
    """A helper's GUI review: the registration, prep and QA panels took the first two volumes loaded as fixed and
    moving, so an MR loaded before the CT became fixed, and the result was the inverse."""
    import SimpleITK as sitk
    from MultimodalRegistrationLib.nodes.roles import guess_volumes

    def volumes(*names, labelmap=False):
        image = sitk.Image([4, 4, 4], sitk.sitkUInt8)
        return [mrml.volume_node_from_image(scene, image, name, labelmap=labelmap) for name in names]

    volumes("MRBrainT1", "CTBrain")
    assert guess_volumes(scene) == (None, None)  # loaded MR first: no role said, none chosen
    volumes("fixed mask", labelmap=True)
    moving, fixed = volumes("moving MR", "fixed CT")
    assert guess_volumes(scene) == (fixed, moving)  # a labelmap saying 'fixed' is not a volume to register
    from types import SimpleNamespace

    from MultimodalRegistrationLib.nodes.roles import preselect_volumes

    chosen = SimpleNamespace(fixedVolume=None, movingVolume=moving)  # one chosen already: left as it is
    preselect_volumes(chosen, scene)
    assert (chosen.fixedVolume, chosen.movingVolume) == (None, moving)
    empty = SimpleNamespace(fixedVolume=None, movingVolume=None)
    preselect_volumes(empty, scene)
    assert (empty.fixedVolume, empty.movingVolume) == (fixed, moving)


def test_a_fit_into_a_former_registration_result_takes_its_inverse_away(scene):
    """A helper's console sweep: a fit into a node that had held a deformable result (inverted by the panel's Invert)
    dropped the result's attributes but kept its reference to the engine's inverse, and that node: Invert would turn
    the stale inverse too, and QA read it."""
    from MultimodalRegistrationLib.nodes.job import REGISTRATION_ATTRIBUTE_PREFIX
    from MultimodalRegistrationLib.nodes.result_extras import invert_result

    result = mrml.transform_to_node(scene, TRUTH, name="MR to CT")
    inverse = mrml.transform_to_node(scene, TRUTH.inverse(), name="MR to CT inverse")
    result.SetNodeReferenceID(REGISTRATION_ATTRIBUTE_PREFIX + "inverse", inverse.GetID())
    invert_result(result)
    fixed = mrml.markups_from_points(scene, lps_ras_points(FIXED_LPS), LABELS)
    moving = mrml.markups_from_points(scene, lps_ras_points(moving_lps()), LABELS)
    fit, node, _ = fit_markups(fixed, moving, "rigid", result)
    assert node is result and node.GetName() == "MR to CT"
    assert node.GetNodeReference(REGISTRATION_ATTRIBUTE_PREFIX + "inverse") is None and inverse.GetScene() is None
    assert np.allclose(slicer_maps(node, lps_ras_points(FIXED_LPS)), lps_ras_points(moving_lps()), atol=1e-6)
