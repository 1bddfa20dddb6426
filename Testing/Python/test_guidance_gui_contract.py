"""The Guidance section of the MultimodalRegistration module: its .ui widgets, their binding to the parameter
node, the Logic's forwarding to register_nodes, and the one-line score description the widget shows.

Slicer cannot run here, so like test_module_contract this reads the module's code (ast) and its .ui (xml).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core import choices
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform
from MultimodalRegistrationLib.engines.registry import ENGINE_NAMES
from MultimodalRegistrationLib.registration.describe import describe_guidance
from MultimodalRegistrationLib.registration.guided.guidance import Guidance, prepare_guidance
from MultimodalRegistrationLib.registration.guided.score import guidance_score
from MultimodalRegistrationLib.registration.summary import GuidanceRecord, Provenance

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "MultimodalRegistration"
SOURCE = (MODULE / "MultimodalRegistration.py").read_text()
UI = ElementTree.parse(MODULE / "Resources" / "UI" / "MultimodalRegistration.ui")

SEGMENTATION_TYPES = {"vtkMRMLSegmentationNode", "vtkMRMLLabelMapVolumeNode"}
# widget name -> (class, SlicerParameterName, node types of a selector)
GUIDANCE_WIDGETS = {
    "fixedSegmentationSelector": ("qMRMLNodeComboBox", "fixedSegmentation", SEGMENTATION_TYPES),
    "movingSegmentationSelector": ("qMRMLNodeComboBox", "movingSegmentation", SEGMENTATION_TYPES),
    "segmentsLineEdit": ("QLineEdit", "segments", None),
    "fixedLandmarksSelector": ("qMRMLNodeComboBox", "fixedLandmarks", {"vtkMRMLMarkupsFiducialNode"}),
    "movingLandmarksSelector": ("qMRMLNodeComboBox", "movingLandmarks", {"vtkMRMLMarkupsFiducialNode"}),
    "guidanceWeightSpinBox": ("QDoubleSpinBox", "guidanceWeight", None),
    "metricComboBox": ("QComboBox", "metric", None),
}
# the guidance's parameter-node fields
GUIDANCE_KEYWORDS = (
    "fixedSegmentation", "movingSegmentation", "segments", "fixedLandmarks", "movingLandmarks", "guidanceWeight", "metric",
)  # fmt: skip


# --------------------------------------------------------------------------- reading the .ui and the code
def _widgets() -> dict[str, ElementTree.Element]:
    return {widget.get("name"): widget for widget in UI.iter("widget")}


def _property(widget: ElementTree.Element, name: str):
    """A widget's property as text, a list (stringlist) or None."""
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            value = prop[0]
            if value.tag == "stringlist":
                return [item.text for item in value.findall("string")]
            return value.text
    return None


def _bound_widgets() -> dict[str, ElementTree.Element]:
    """SlicerParameterName -> the widget bound to it."""
    return {_property(w, "SlicerParameterName"): w for w in UI.iter("widget") if _property(w, "SlicerParameterName")}


def _class(name: str) -> ast.ClassDef:
    return next(n for n in ast.parse(SOURCE).body if isinstance(n, ast.ClassDef) and n.name == name)


def _wrapper() -> ast.ClassDef:
    classes = [n for n in ast.parse(SOURCE).body if isinstance(n, ast.ClassDef)]
    return next(n for n in classes if any(getattr(d, "id", None) == "parameterNodeWrapper" for d in n.decorator_list))


def _fields() -> dict[str, ast.expr]:
    """Parameter-node field -> its annotation."""
    return {item.target.id: item.annotation for item in _wrapper().body if isinstance(item, ast.AnnAssign)}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _call_of(function: ast.AST, name: str) -> ast.Call:
    """The call of ``name`` (a function or method) inside ``function``."""
    return next(
        n for n in ast.walk(function)
        if isinstance(n, ast.Call) and name in (getattr(n.func, "id", None), getattr(n.func, "attr", None))
    )  # fmt: skip


def _method(cls: str, name: str) -> ast.FunctionDef:
    return next(n for n in _class(cls).body if isinstance(n, ast.FunctionDef) and n.name == name)


# --------------------------------------------------------------------------- the .ui
def test_guidance_section_is_a_collapsed_collapsible_button_holding_every_guidance_widget():
    widgets = _widgets()
    section = widgets.get("guidanceCollapsibleButton")
    assert section is not None and section.get("class") == "ctkCollapsibleButton"
    assert _property(section, "text") == "Guidance"
    assert _property(section, "collapsed") == "true", "the Guidance section must start collapsed"
    inside = {w.get("name") for w in section.iter("widget")}
    for name, (widget_class, parameter, node_types) in GUIDANCE_WIDGETS.items():
        assert name in inside, f"{name} is missing from the Guidance section"
        widget = widgets[name]
        assert widget.get("class") == widget_class, name
        assert _property(widget, "SlicerParameterName") == parameter, name
        assert _property(widget, "toolTip"), f"{name} needs a tooltip"
        if node_types is not None:
            assert set(_property(widget, "nodeTypes")) == node_types, name
            assert _property(widget, "noneEnabled") == "true", f"{name}: guidance is optional, None must be allowed"
    # The labels follow the file's naming: <section>Label<row>.
    labels = [w.get("name") for w in section.iter("widget") if w.get("class") == "QLabel"]
    assert labels == [f"guidanceCollapsibleButtonLabel{row}" for row in range(len(GUIDANCE_WIDGETS))]


def test_every_node_selector_gets_the_scene():
    """A qMRMLNodeComboBox lists nothing unless the module widget's scene reaches it through a connection."""
    selectors = {w.get("name") for w in UI.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    scene = ("mrmlSceneChanged(vtkMRMLScene*)", "setMRMLScene(vtkMRMLScene*)")
    connected = {
        c.findtext("receiver") for c in UI.iter("connection") if (c.findtext("signal"), c.findtext("slot")) == scene
    }
    assert selectors <= connected, f"selectors without a scene: {sorted(selectors - connected)}"


def test_metric_choices_and_the_tooltip_that_says_when_to_choose_segments():
    assert choices.GUIDANCE_METRICS == ("intensity", "segments")
    tooltip = _property(_widgets()["metricComboBox"], "toolTip")
    assert "intensity" in tooltip and "segments" in tooltip
    assert "ultrasound" in tooltip and "histology" in tooltip


def test_weight_tooltip_states_the_shipped_defaults_and_where_they_come_from():
    """0 means the engine's default: the tooltip must name guidance.json and give its current values."""
    record = json.loads((ROOT / "Resources" / "Presets" / "guidance.json").read_text())
    widget = _widgets()["guidanceWeightSpinBox"]
    tooltip = _property(widget, "toolTip")
    assert "Resources/Presets/guidance.json" in tooltip
    for engine in ENGINE_NAMES:
        weights = record[engine]
        stated = f"{engine}: segments {float(weights['segments'])}, landmarks {float(weights['points'])}"
        assert stated in tooltip, f"the tooltip no longer matches guidance.json: expected '{stated}'"
        for preset, own in weights.get("by_preset", {}).items():
            stated = f"{engine} {preset}: segments {float(own['segments'])}"
            stated += f", landmarks {float(own['points'])}" if "points" in own else ""
            assert stated in tooltip, f"the tooltip no longer matches guidance.json: expected '{stated}'"
    assert float(_property(widget, "minimum")) == 0.0 and float(_property(widget, "value")) == 0.0
    assert _property(widget, "specialValueText") == "default"


# --------------------------------------------------------------------------- the parameter node
def test_every_parameter_node_field_has_a_widget_or_is_set_by_the_widget_code():
    fields, bound = set(_fields()), set(_bound_widgets())
    set_in_code = set(re.findall(r"self\._parameterNode\.(\w+)\s*=[^=]", SOURCE))
    unbound = set(GUIDANCE_KEYWORDS) - bound
    assert not unbound, f"guidance fields without a widget: {sorted(unbound)}"
    missing = fields - bound - set_in_code
    assert not missing, f"parameter-node fields no widget shows: {sorted(missing)}"


def test_node_fields_are_typed_as_their_selectors_node_types():
    """The wrapper's MRML classes are the selector's nodeTypes; Optional fields are the ones that allow None."""
    bound = _bound_widgets()
    checked = 0
    for field, annotation in _fields().items():
        widget = bound.get(field)
        if widget is None or widget.get("class") != "qMRMLNodeComboBox":
            continue
        typed = {name for name in _names(annotation) if name.startswith("vtkMRML")}
        assert typed == set(_property(widget, "nodeTypes")), field
        optional = "Optional" in _names(annotation)
        assert optional == (_property(widget, "noneEnabled") == "true"), f"{field}: Optional must match noneEnabled"
        checked += 1
    assert checked >= 4 + 7  # the guidance selectors and the existing ones


def test_guidance_scalars_use_the_wrappers_validators():
    fields = _fields()
    assert ast.unparse(fields["segments"]) == "str"
    weight = fields["guidanceWeight"]
    assert "float" in _names(weight) and "WithinRange" in _names(weight)
    metric = fields["metric"]
    assert "str" in _names(metric) and "Choice" in _names(metric) and "GUIDANCE_METRICS" in _names(metric)
    # That every WithinRange matches its spin box's limits, in every module: test_ui_connectors.


# --------------------------------------------------------------------------- widget -> logic -> library
def test_the_register_button_hands_the_parameter_node_to_the_logic_and_nothing_else():
    apply = _method("MultimodalRegistrationWidget", "onApplyButton")
    call = _call_of(apply, "register")
    assert [getattr(a, "id", None) for a in call.args] == ["node"] and {k.arg for k in call.keywords} <= {
        "onProgress", "onDone"}  # fmt: skip
    register = _method("MultimodalRegistrationLogic", "register")
    assert [a.arg for a in register.args.args] == ["self", "parameterNode", "onProgress", "onDone"]
    forwarded = _call_of(register, "register_nodes")
    assert getattr(forwarded.args[0], "id", None) == "parameterNode"


def test_every_parameter_node_field_reaches_the_job():
    """The job builder reads the parameter node by the job fields' ``panel`` names: every field of the
    module's parameter node must be one of them, and every one of them a field (or script-only)."""
    from MultimodalRegistrationLib.nodes.panel import panel_names
    from MultimodalRegistrationLib.process.jobs import RegistrationJob

    read = {name for field in RegistrationJob.panel_fields() for name in panel_names(field)}
    assert set(_fields()) <= read, f"fields no job field reads: {sorted(set(_fields()) - read)}"
    script_only = {"prep", "log", "piecewise"}  # set from scripts and the command line, not (yet) in the panel
    assert read - set(_fields()) == script_only


def test_the_status_line_includes_the_guidance_description():
    import inspect

    from MultimodalRegistrationLib.nodes.registration_result import NodeRegistration

    done = _method("MultimodalRegistrationWidget", "_onDone")
    assert "registration.describe()" in ast.unparse(done)  # the status line is the result's own description
    assert "describe_guidance" in inspect.getsource(NodeRegistration.describe)


# --------------------------------------------------------------------------- describe_guidance
def test_describe_guidance_gives_dice_and_landmark_rms_at_start_and_result():
    guidance = {
        "metric": "intensity",
        "segments": [{"name": "gland", "fixed_value": 1, "moving_value": 1}],
        "points": 5,
        "score_start": {"mean_dice": 0.6213, "mean_surface_mm": 4.1, "points_rms_mm": 7.4321},
        "score_result": {"mean_dice": 0.9087, "mean_surface_mm": 0.7, "points_rms_mm": 1.2468},
    }
    line = describe_guidance(GuidanceRecord.from_dict(guidance))
    assert line == "guidance: Dice 0.62 -> 0.91, landmarks 7.4 -> 1.2 mm RMS"
    only_points = guidance | {
        "metric": "segments",
        "score_start": {"mean_dice": None, "points_rms_mm": 7.4},
        "score_result": {"mean_dice": None, "points_rms_mm": 1.2},
    }
    line = describe_guidance(GuidanceRecord.from_dict(only_points))
    assert line == "guidance (intensities ignored): landmarks 7.4 -> 1.2 mm RMS"
    # noisy clicks: the line says how far they scatter about their own best rigid fit
    scattered = guidance | {"points_fit_rms_mm": 1.31, "score_result": {"mean_dice": 0.9, "points_rms_mm": 1.42}}
    line = describe_guidance(GuidanceRecord.from_dict(scattered))
    assert line.endswith("landmarks 7.4 -> 1.4 mm RMS (a rigid fit of the landmarks themselves leaves 1.3)")
    assert describe_guidance(None) == ""
    # Landmarks given, and their own fit lost to the surfaces' start: the line says why they changed little.
    lost = "against segment surfaces, rotated 17 deg: -3.1 SD (the landmarks' fit wins unless worse by > 2 SD)"
    candidates = {"start_candidates": [{"name": "segment surfaces, rotated 17 deg", "reason": "chosen"},
                                       {"name": "landmarks", "reason": lost}],
                  "start_choice": {"chosen": "segment surfaces, rotated 17 deg"}}  # fmt: skip
    line = describe_guidance(GuidanceRecord.from_dict(guidance | candidates))
    assert line == f"guidance: Dice 0.62 -> 0.91, landmarks 7.4 -> 1.2 mm RMS; the landmarks' own fit was not the start ({lost})"
    candidates["start_choice"]["chosen"] = "landmarks"
    assert describe_guidance(GuidanceRecord.from_dict(guidance | candidates)).endswith("landmarks 7.4 -> 1.2 mm RMS")


def _ball(centre_lps, image: sitk.Image) -> sitk.Image:
    z, y, x = np.meshgrid(*[np.arange(n) for n in image.GetSize()[::-1]], indexing="ij")
    points = np.stack([x, y, z], -1) * image.GetSpacing()[0] + np.asarray(image.GetOrigin())
    inside = np.linalg.norm(points - centre_lps, axis=-1) < 12.0
    labels = sitk.GetImageFromArray(inside.astype(np.uint8))
    labels.CopyInformation(image)
    labels.SetMetaData("Segment0_Name", "gland")
    labels.SetMetaData("Segment0_LabelValue", "1")
    return labels


def test_describe_guidance_reads_the_record_a_guided_run_writes():
    """The provenance record built from real scores (as the registration writes it), through its JSON."""
    grid = sitk.Image([32] * 3, sitk.sitkFloat32)
    grid.SetSpacing([2.0] * 3)
    grid.SetOrigin([-31.0] * 3)
    shift = rigid_transform(0.0, [0, 0, 1], [6.0, -4.0, 2.0])
    landmarks = np.array([[10, 0, 0], [-10, 5, 0], [0, 10, -8], [4, -9, 9]], float)
    guidance = Guidance(
        fixed_segmentation=_ball([0, 0, 0], grid),
        moving_segmentation=_ball(shift.transform_points([[0, 0, 0]])[0], grid),
        fixed_points_lps=landmarks,
        moving_points_lps=shift.transform_points(landmarks),
    )
    prepared = prepare_guidance(grid, grid, guidance, "elastix")
    at_start, at_result = guidance_score(prepared, Transform.identity()), guidance_score(prepared, shift)
    record = prepared.describe() | {"score_start": at_start.to_dict(), "score_result": at_result.to_dict()}
    provenance = Provenance.from_dict(json.loads(json.dumps({"engine": "elastix", "guidance": record})))
    line = describe_guidance(provenance.guidance)
    assert line == (
        f"guidance: Dice {at_start.mean_dice:.2f} -> {at_result.mean_dice:.2f}, "
        f"landmarks {at_start.points_rms_mm:.1f} -> {at_result.points_rms_mm:.1f} mm RMS"
    )
    assert at_start.mean_dice < 0.8 < at_result.mean_dice and at_result.points_rms_mm == pytest.approx(0.0, abs=1e-3)
