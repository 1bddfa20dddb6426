"""Each .ui widget bound to a parameter (SlicerParameterName) against the type of its parameterNodeWrapper field.

Slicer's parameterNodeWrapper binds a widget to a field only through a connector for that widget class and type
(Base/Python/slicer/parameterNodeWrapper/guiConnectors.py): a ctkPathLineEdit binds to a pathlib.Path and to
nothing else, a QComboBox needs a Choice, a spin box takes its range from the field's WithinRange and otherwise
resets it to the whole int or float range (the .ui's limits are lost), a qMRMLNodeComboBox's node types are
replaced by the field's. One widget without a connector makes connectGui raise, and then no widget of the panel
is bound (a str field on a ctkPathLineEdit did that to two panels; audit). Slicer cannot run here, so the rules
are read from the module source (AST) and the .ui files (XML).
"""

from __future__ import annotations

import ast
import math
import re
from xml.etree import ElementTree

import pytest
from data_paths import ROOT

MODULES = [
    (path.parent, path.stem)
    for path in sorted(ROOT.glob("*/*.py"))
    if (path.parent / "Resources" / "UI" / f"{path.stem}.ui").exists()
]
# Qt's own spin box limits when a .ui sets none.
QT_DEFAULT_RANGE = {"QSpinBox": (0.0, 99.0), "QDoubleSpinBox": (0.0, 99.99)}
PATH_TYPES = {"Path", "pathlib.Path", "PurePath", "pathlib.PurePath"}


def wrapper_fields(source: str) -> tuple[dict[str, ast.expr], dict]:
    """The parameterNodeWrapper class's field annotations, and a namespace holding the constants the module
    imports from the library (for evaluating WithinRange bounds)."""
    tree = ast.parse(source)
    namespace: dict = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("MultimodalRegistrationLib"):
            exec(compile(ast.Module([node], []), "<imports>", "exec"), namespace)  # noqa: S102
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:  # a module constant the annotations use (SPACING_RANGE_MM = (...))
                namespace[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "parameterNodeWrapper"
                                                  for d in node.decorator_list):  # fmt: skip
            return {item.target.id: item.annotation for item in node.body if isinstance(item, ast.AnnAssign)}, namespace
    return {}, namespace


def bound_widgets(path) -> list[tuple[str, str, str, dict]]:
    """(parameter, widget class, widget name, {property: text}) for every widget with a SlicerParameterName."""
    found = []
    for widget in ElementTree.parse(path).iter("widget"):
        properties = {}
        for prop in widget.findall("property"):
            value = next(iter(prop), None)
            properties[prop.get("name")] = None if value is None else value.text
            if value is not None and value.tag == "stringlist":
                properties[prop.get("name")] = [s.text for s in value.findall("string")]
        if properties.get("SlicerParameterName"):
            found.append((properties["SlicerParameterName"], widget.get("class"), widget.get("name"), properties))
    return found


def unannotated(annotation: ast.expr) -> tuple[str, list[ast.Call]]:
    """(the type's source text, the Annotated extras) of a field annotation."""
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Annotated":
        first, *extras = annotation.slice.elts
        return ast.unparse(first), [extra for extra in extras if isinstance(extra, ast.Call)]
    return ast.unparse(annotation), []


def annotation_named(extras: list[ast.Call], name: str) -> ast.Call | None:
    return next((extra for extra in extras if ast.unparse(extra.func) == name), None)


def node_types(type_text: str) -> set[str]:
    return set(re.findall(r"vtkMRML\w+", type_text))


def connector_problem(widget_class: str, properties: dict, annotation: ast.expr, namespace: dict) -> str | None:
    """Why Slicer's connectors would not bind this widget to this field, or lose the .ui's settings; None: fine."""
    kind, extras = unannotated(annotation)
    if widget_class in ("QCheckBox", "QPushButton"):
        return None if kind == "bool" else f"a {widget_class} binds to bool, not {kind}"
    if widget_class in ("QLineEdit", "QTextEdit"):
        return None if kind == "str" else f"a {widget_class} binds to str, not {kind}"
    if widget_class in ("ctkPathLineEdit", "ctkDirectoryButton"):
        return None if kind in PATH_TYPES else f"a {widget_class} binds only to pathlib.Path, not {kind}"
    if widget_class == "QComboBox":
        if kind in ("str", "int", "float", "bool") and annotation_named(extras, "Choice") is None:
            return "a QComboBox bound to a str needs Annotated[..., Choice([...])] (the connector fills the items)"
        return None
    if widget_class == "qMRMLNodeComboBox":
        types = node_types(kind)
        if not types:
            return f"a qMRMLNodeComboBox binds to MRML node types, not {kind}"
        listed = set(properties.get("nodeTypes") or [])
        if listed and listed != types:  # the connector replaces the .ui's nodeTypes with the field's
            return f"the .ui lists nodeTypes {sorted(listed)} but the field gives {sorted(types)}"
        return None
    if widget_class in ("QSpinBox", "QDoubleSpinBox", "QSlider", "ctkSliderWidget"):
        number = "int" if widget_class in ("QSpinBox", "QSlider") else "float"
        if kind != number:
            return f"a {widget_class} binds to {number}, not {kind}"
        bounds = annotation_named(extras, "WithinRange")
        if bounds is None:
            return f"no WithinRange: Slicer resets the {widget_class}'s range to the whole {number} range"
        tuple_of_bounds = ast.fix_missing_locations(ast.Expression(ast.Tuple(bounds.args, ast.Load())))
        low, high = eval(compile(tuple_of_bounds, "<bound>", "eval"), namespace)
        default_low, default_high = QT_DEFAULT_RANGE.get(widget_class, (None, None))
        ui_low = float(properties.get("minimum") or default_low)
        ui_high = float(properties.get("maximum") or default_high)
        if not (math.isclose(low, ui_low, abs_tol=1e-12) and math.isclose(high, ui_high, abs_tol=1e-12)):
            return f"WithinRange({low}, {high}) replaces the .ui's range {ui_low}..{ui_high}: make them agree"
        return None
    return f"no rule for a bound {widget_class}: add one from Slicer's guiConnectors.py"


@pytest.mark.parametrize("folder, name", MODULES, ids=[name for _, name in MODULES])
def test_every_bound_widget_has_a_connector_for_its_field(folder, name):
    fields, namespace = wrapper_fields((folder / f"{name}.py").read_text())
    problems = [
        f"{widget} ({widget_class}) -> {parameter}: {problem}"
        for parameter, widget_class, widget, properties in bound_widgets(folder / "Resources" / "UI" / f"{name}.ui")
        if (problem := connector_problem(widget_class, properties, fields[parameter], namespace))
    ]
    assert problems == []


def test_the_rules_catch_what_broke_two_panels():
    """A str field on a path widget (both the registration and the QA panel lost every binding), and a spin box
    field without its range (the .ui's 1..20 restarts became any int)."""
    field = ast.parse("x: str = ''").body[0].annotation
    assert "binds only to pathlib.Path" in connector_problem("ctkPathLineEdit", {}, field, {})
    spin = ast.parse("x: int = 5").body[0].annotation
    assert "no WithinRange" in connector_problem("QSpinBox", {"minimum": "1", "maximum": "20"}, spin, {})
    ranged = ast.parse("x: Annotated[int, WithinRange(1, 20)] = 5").body[0].annotation
    assert connector_problem("QSpinBox", {"minimum": "1", "maximum": "20"}, ranged, {}) is None
    assert "replaces the .ui's range" in connector_problem("QSpinBox", {"maximum": "64"}, ranged, {})
    combo = ast.parse("x: str = 'rigid'").body[0].annotation
    assert "needs Annotated" in connector_problem("QComboBox", {}, combo, {})
    assert len(MODULES) == 4
