"""Landmark prealignment on MRML nodes: two markups point lists in, a transform node and a residual
table node out. The call behind the FiducialPrealign module and the Python console.

Points are read in world RAS (parent transforms applied). The output node's TransformFromParent is
the fit (fixed -> moving, like every result of this extension): put the moving volume under it to
see it on the fixed volume, or use it as MultimodalRegistration's initial transform.
Only node methods are used here; :mod:`.mrml` is the one file that imports MRML.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import vtk

from ..core.errors import InputError
from ..core.version import __version__
from ..landmarks.fit import LandmarkFit, fit_landmarks
from ..landmarks.labels import leave_out_skipped
from ..process.jobs import PrealignJob
from . import mrml
from .checks import check_node_pair, check_output_transform
from .given_nodes import check_given_nodes
from .job import PREALIGN_ATTRIBUTE_PREFIX, forget_earlier_result
from .node_links import record_attributes, record_node_ids
from .panel import panel_parameters, panel_value
from .panel_words import panel_errors
from .result_extras import earlier_extras, named_forward

ATTRIBUTE_PREFIX = PREALIGN_ATTRIBUTE_PREFIX
# (name, unit) of the residual table's columns; positions are world RAS.
RESIDUAL_COLUMNS = (
    ("label", ""),
    ("moving label", ""),
    ("fixed R", "mm"),
    ("fixed A", "mm"),
    ("fixed S", "mm"),
    ("moving R", "mm"),
    ("moving A", "mm"),
    ("moving S", "mm"),
    ("mapped R", "mm"),
    ("mapped A", "mm"),
    ("mapped S", "mm"),
    ("error", "mm"),
    ("leave-one-out", "mm"),
    ("check", ""),
)
TEXT_COLUMNS = ("label", "moving label", "check")
DECIMALS = 3  # table values are rounded to 0.001 mm so that the table view shows short numbers
WORST_BY_LOO = "largest leave-one-out error"
WORST_BY_ERROR = "largest error"


@panel_errors(PrealignJob)
def fit_markups(
    fixed_markups,
    moving_markups,
    kind: str = "rigid",
    output_transform_node=None,
    reference_volume_node=None,
    table_node=None,
):
    """Fit a ``kind`` transform (see :func:`.landmarks.fit_landmarks`) to two point lists.

    Returns ``(fit, output_transform_node, table_node)``; the nodes are created when not given. The
    output's TransformFromParent maps fixed to moving (RAS). ``reference_volume_node`` is the grid a
    ``tps`` field is sampled on (default: a box around the fixed points at 2 mm, the spline's affine part beyond it). The point
    lists are never changed: the pair to check first is marked in the residual table. A point marked skipped
    is left out when the lists pair by label. Raises :class:`InputError` (nothing is changed) when no fit is
    possible.
    """
    for role, node in (("fixed", fixed_markups), ("moving", moving_markups)):
        if node is None or not node.IsA("vtkMRMLMarkupsNode"):
            raise InputError(f"select the {role} point list: a markups point list is needed")
        if not node.IsA("vtkMRMLMarkupsFiducialNode"):
            raise InputError(
                f"the {role} list '{node.GetName()}' is a {mrml_kind(node)} markup, not a point list: its control points are not landmarks; select a point list"
            )
    check_node_pair(fixed_markups, moving_markups, "prealignment", "the fixed point list", "the moving point list",
                    "select two different lists")  # fmt: skip
    given = {"fixedPoints": fixed_markups, "movingPoints": moving_markups, "outputTransform": output_transform_node,
             "referenceVolume": reference_volume_node, "residualTable": table_node}
    check_given_nodes(SimpleNamespace(**given), given)
    scene = fixed_markups.GetScene()
    if scene is None:
        raise InputError(f"point list '{fixed_markups.GetName()}' is not in a scene: add it to the scene first")
    check_output_transform(output_transform_node)
    if output_transform_node is not None:
        for role, node in (("fixed", fixed_markups), ("moving", moving_markups)):
            if mrml.is_under(node, output_transform_node):
                raise InputError(
                    f"the {role} point list '{node.GetName()}' is under the output transform "
                    f"'{output_transform_node.GetName()}', so the result would move its own points: take the list "
                    "out of that transform (Data module), or choose another output transform"
                )
    reference = None
    if reference_volume_node is not None:
        if reference_volume_node.GetParentTransformNode() is not None:
            raise InputError(
                f"the reference volume '{reference_volume_node.GetName()}' is under a transform: choose the fixed "
                "volume, or harden that transform first"
            )
        reference = mrml.image_from_volume_node(reference_volume_node)

    fixed_ras, fixed_labels, fixed_skipped = placed_and_skipped(fixed_markups, "fixed")
    moving_ras, moving_labels, moving_skipped = placed_and_skipped(moving_markups, "moving")
    skipped = leave_out_skipped(
        fixed_labels,
        moving_labels,
        {"fixed": fixed_skipped, "moving": moving_skipped},
        {"fixed": f"'{fixed_markups.GetName()}'", "moving": f"'{moving_markups.GetName()}'"},
    )
    fit = fit_landmarks(fixed_ras, moving_ras, kind, fixed_labels, moving_labels, reference_image=reference)
    fit.warnings[:0] = skipped

    stale = []
    if output_transform_node is None:
        name = scene.GenerateUniqueName(f"{moving_markups.GetName()} to {fixed_markups.GetName()} prealign")
        output_transform_node = mrml.transform_to_node(scene, fit.transform, name=name)
    else:  # a former registration result: its engine's inverse and segment nodes go with it, and Invert's " (-)"
        stale = earlier_extras(scene, output_transform_node)
        named_forward(output_transform_node)
        mrml.transform_to_node(scene, fit.transform, output_transform_node)
    attributes = {
        "type": fit.kind,
        "pairedBy": fit.paired_by,
        "fixedPointsNodeID": fixed_markups.GetID(),
        "movingPointsNodeID": moving_markups.GetID(),
        "referenceVolumeNodeID": reference_volume_node.GetID() if reference_volume_node is not None else "",
        "freRmsMm": round(fit.fre_rms_mm, 4),
        "looRmsMm": "" if fit.loo_rms_mm is None else round(fit.loo_rms_mm, 4),
        "mirrors": "true" if fit.mirrors else "false",
        "warnings": json.dumps(list(fit.warnings)),
        "libraryVersion": __version__,
    }
    forget_earlier_result(output_transform_node)
    record_attributes(output_transform_node, ATTRIBUTE_PREFIX, attributes)
    mrml.remove_nodes_and_empty_folders(scene, stale)

    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{output_transform_node.GetName()} residuals")
    fill_residual_table(table_node, fit, worst_point(fit))
    record_node_ids(table_node, {ATTRIBUTE_PREFIX + "transformNodeID": output_transform_node.GetID()})
    return fit, output_transform_node, table_node


@panel_errors(PrealignJob)
def fit_panel(parameters):
    """:func:`fit_markups` as the FiducialPrealign panel's ``parameters`` say: its point lists, transform type,
    output transform, reference volume and residual table, each read through the
    :class:`..process.jobs.PrealignJob` field that names its attribute. ``parameters`` is the module's parameter
    node, or :func:`prealign_parameters` in a script. Returns ``(fit, output_transform_node, table_node)``."""
    node = {f.name: panel_value(parameters, f) for f in PrealignJob.panel_fields()}
    return fit_markups(node["fixed_points"], node["moving_points"], node["type"] or "rigid", node["output_transform"],
                       node["reference_image"], node["report"])  # fmt: skip


def prealign_parameters(**values) -> SimpleNamespace:
    """The FiducialPrealign panel's parameters for a script, by the module's parameter-node names, e.g.
    ``prealign_parameters(fixedPoints=a, movingPoints=b, transformType="affine")``; the rest at the panel's
    defaults. Unknown names are refused, naming the known ones."""
    return panel_parameters(PrealignJob, **values)


def status_text(fit: LandmarkFit) -> str:
    """One paragraph for a status line: FRE and leave-one-out RMS (mm), which to trust, the warnings."""
    loo = "not available (too few points)" if fit.loo_rms_mm is None else f"{fit.loo_rms_mm:.2f} mm"
    lines = [f"{fit.kind}: FRE RMS {fit.fre_rms_mm:.2f} mm, leave-one-out RMS {loo}."]
    if fit.kind == "tps":
        lines.append("The spline passes through every point (FRE ~0 by construction): trust the leave-one-out error.")
    else:
        lines.append("The leave-one-out error estimates the error away from the points; FRE does not.")
    lines.extend(f"Warning: {warning}" for warning in fit.warnings)
    return "\n".join(lines)


def mrml_kind(node) -> str:
    """'ClosedCurve' for a vtkMRMLMarkupsClosedCurveNode."""
    return node.GetClassName().removeprefix("vtkMRMLMarkups").removesuffix("Node")


def placement(markups) -> tuple[int, list[str], list[str]]:
    """How far a point list is placed: (placed points, labels of points still being placed, labels of points
    marked skipped: Slicer's Skip, not visible in this image)."""
    placed, placing, skipped = 0, [], []
    for index in range(markups.GetNumberOfControlPoints()):
        status = markups.GetNthControlPointPositionStatus(index)
        if status == markups.PositionDefined:
            placed += 1
        elif status == markups.PositionMissing:
            skipped.append(markups.GetNthControlPointLabel(index))
        else:
            placing.append(markups.GetNthControlPointLabel(index))
    return placed, placing, skipped


def placed_and_skipped(markups, role: str) -> tuple[np.ndarray, list[str], list[str]]:
    """World RAS positions (mm) and labels of the placed points, and the labels of points marked skipped;
    refuses an empty list and points that are not placed yet."""
    if markups.GetNumberOfControlPoints() == 0:
        raise InputError(
            f"the {role} point list '{markups.GetName()}' has no points: place them, or leave the list out"
        )
    placed, placing, skipped = placement(markups)
    if placing:
        raise InputError(f"{role} point '{placing[0]}' in '{markups.GetName()}' is not placed: place it or delete it")
    if not placed:
        raise InputError(f"every {role} point in '{markups.GetName()}' is marked skipped: place some of them")
    points, labels = mrml.points_from_markups(markups)
    keep = defined_points(markups)
    return points[keep], [labels[i] for i in keep], skipped


def defined_points(markups) -> list[int]:
    """The indices of the control points that are placed (their position defined)."""
    return [i for i in range(markups.GetNumberOfControlPoints())
            if markups.GetNthControlPointPositionStatus(i) == markups.PositionDefined]  # fmt: skip


def placed_points(markups, role: str) -> tuple[np.ndarray, list[str]]:
    """World RAS positions (mm) and labels; refuses an empty list and points not placed or marked skipped."""
    points, labels, skipped = placed_and_skipped(markups, role)
    refuse_skipped(markups, role, skipped)
    return points, labels


def refuse_skipped(markups, role: str, skipped: list[str]) -> None:
    """Refuse a list with points marked skipped, where nothing pairs them by label to leave them out."""
    if skipped:
        raise InputError(
            f"{role} point '{skipped[0]}' in '{markups.GetName()}' is marked skipped (not visible in that image): "
            "place it or delete it"
        )


def worst_point(fit: LandmarkFit) -> int | None:
    """Index of the pair to check first: the largest leave-one-out error, else the largest residual.

    None when neither says anything: a single pair, or a spline (exact at every point) without
    leave-one-out errors.
    """
    loo = fit.loo_errors_mm
    if any(value is not None for value in loo):
        return max((value, index) for index, value in enumerate(loo) if value is not None)[1]
    if fit.kind == "tps" or len(fit.residuals) < 2:
        return None
    errors = [row.error_mm for row in fit.residuals]
    return errors.index(max(errors)) if max(errors) > 0 else None


def fill_residual_table(table_node, fit: LandmarkFit, worst: int | None = None) -> None:
    """One row per pair (columns :data:`RESIDUAL_COLUMNS`, world RAS mm); the worst pair is marked in
    the 'check' column. A leave-one-out error that could not be computed is NaN."""
    why = WORST_BY_LOO if any(value is not None for value in fit.loo_errors_mm) else WORST_BY_ERROR
    rows = []
    for index, row in enumerate(fit.residuals):
        loo = math.nan if row.loo_error_mm is None else row.loo_error_mm
        numbers = [*row.fixed_ras, *row.moving_ras, *row.mapped_ras, row.error_mm, loo]
        rows.append([row.label, row.moving_label, *(round(float(v), DECIMALS) for v in numbers),
                     why if index == worst else ""])  # fmt: skip
    was_modifying = table_node.StartModify()
    table_node.RemoveAllColumns()
    for column, (name, unit) in enumerate(RESIDUAL_COLUMNS):
        array = vtk.vtkStringArray() if name in TEXT_COLUMNS else vtk.vtkDoubleArray()
        array.SetName(name)
        for values in rows:
            array.InsertNextValue(values[column])
        table_node.AddColumn(array)
        if unit:
            table_node.SetColumnUnitLabel(name, unit)
    table_node.SetColumnDescription("mapped R", "where the fit sends the fixed point (world RAS)")
    table_node.SetColumnDescription("error", "distance between the mapped fixed point and the moving point")
    table_node.SetColumnDescription(
        "leave-one-out", "the same distance for a fit made without this pair (NaN: too few points left)"
    )
    if hasattr(table_node, "SetUseColumnTitleAsColumnHeader"):
        for name, unit in RESIDUAL_COLUMNS:
            table_node.SetColumnTitle(name, f"{name} ({unit})" if unit else name)
        table_node.SetUseColumnTitleAsColumnHeader(True)
    else:  # Slicer versions before column titles
        table_node.SetUseColumnNameAsColumnHeader(True)
    table_node.SetLocked(True)  # results, not input: edits would be overwritten at the next fit
    table_node.EndModify(was_modifying)
