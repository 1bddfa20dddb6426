"""Slicer conventions in the module files: translatable texts, help links and citations, no sys.path
edits, the SampleData entry, FiducialPrealign's point placement and live preview, and "Copy as command".

Slicer cannot run here, so like test_module_contract these read the module code (ast) and the .ui files
(xml). Each check is a function returning the problems it found; the tests run it on the real files and on
a copy with one planted violation, which it must report.
"""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path
from xml.etree import ElementTree

import pytest
from MultimodalRegistrationLib.registration.summary import Provenance

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    """Module name -> its .py file, for each folder whose CMake names a scripted module."""
    found = {}
    for cmake in sorted(ROOT.glob("*/CMakeLists.txt")):
        name = re.search(r"set\(MODULE_NAME (\w+)\)", cmake.read_text())
        if name:
            found[name.group(1)] = cmake.parent / f"{name.group(1)}.py"
    return found


MODULES = _modules()
SOURCES = {name: path.read_text() for name, path in MODULES.items()}
TRANSLATORS = {"_", "translate"}
PARENT_TEXTS = ("title", "helpText", "acknowledgementText")
CITATIONS = (("Klein", "2010"), ("Shamonin", "2014"), ("Avants", "2008"), ("Fedorov", "2012"))
PANELS = (ROOT / "MultimodalRegistration" / "MultimodalRegistrationLib" / "nodes" / "panels.py").read_text()
HOMEPAGE = re.search(r'set\(EXTENSION_HOMEPAGE "([^"]+)"\)', (ROOT / "CMakeLists.txt").read_text()).group(1)


def _ui(name: str) -> ElementTree.ElementTree:
    return ElementTree.parse(MODULES[name].parent / "Resources" / "UI" / f"{name}.ui")


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    return None


def _untranslated(expr: ast.AST) -> list[str]:
    """String literals with a letter in ``expr`` that are not inside a _() or translate() call. Not text:
    dictionary keys (``outputs["report"]``) and docs page names given to ``.format`` (``page="qa.md"``)."""
    wrapped = {
        id(constant)
        for call in ast.walk(expr)
        if _call_name(call) in TRANSLATORS and isinstance(call.func, ast.Name)
        for constant in ast.walk(call)
    }
    wrapped |= {id(node.slice) for node in ast.walk(expr) if isinstance(node, ast.Subscript)}
    wrapped |= {
        id(keyword.value)
        for call in ast.walk(expr)
        if _call_name(call) == "format"
        for keyword in call.keywords
        if isinstance(keyword.value, ast.Constant) and re.fullmatch(r"[\w-]+\.md", str(keyword.value.value))
    }
    return [
        node.value
        for node in ast.walk(expr)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and re.search(r"[A-Za-z]", node.value) and id(node) not in wrapped
    ]  # fmt: skip


def _parent_assignments(tree: ast.AST) -> dict[str, ast.AST]:
    """``self.parent.<attr> = value`` in the module class: attr -> value."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
                    and target.value.attr == "parent"):  # fmt: skip
                found[target.attr] = node.value
    return found


def _literal_text(expr: ast.AST) -> str:
    return "".join(n.value for n in ast.walk(expr) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def _functions(tree: ast.AST) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def _calls(node: ast.AST) -> list[str]:
    """Dotted names of the calls in ``node`` ("self.refit", "qt.QApplication.clipboard().setText" as ".setText")."""
    names = []
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            names.append(ast.unparse(call.func))
    return names


def _module_constant(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(name)


# --------------------------------------------------------------------------- checks
def translation_problems(source: str) -> list[str]:
    """Module title, help and acknowledgement wrapped in _() (categories in translate()), and every status
    line, button text and error message the widget sets."""
    tree = ast.parse(source)
    parent = _parent_assignments(tree)
    problems = [f"self.parent.{attr} is not set" for attr in PARENT_TEXTS if attr not in parent]
    for attr in (*PARENT_TEXTS, "categories"):
        if attr in parent:
            problems += [f"self.parent.{attr}: {text!r} is not translatable" for text in _untranslated(parent[attr])]
    for category in getattr(parent.get("categories"), "elts", []):
        if _call_name(category) != "translate" or _literal_text(category.args[0]) != "qSlicerAbstractCoreModule":
            problems.append("a category is not translate('qSlicerAbstractCoreModule', ...)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "attr", None) == "text" for t in node.targets):
            problems += [f"line {node.lineno}: text {s!r} is not translatable" for s in _untranslated(node.value)]
        if _call_name(node) in ("tryWithErrorDisplay", "errorDisplay", "warningDisplay", "showStatusMessage"):
            for arg in [*node.args[:1], *(k.value for k in node.keywords if k.arg == "windowTitle")]:
                problems += [f"line {node.lineno}: message {s!r} is not translatable" for s in _untranslated(arg)]
    return problems


def citation_problems(source: str, panels: str = PANELS) -> list[str]:
    """The acknowledgement cites elastix (Klein 2010, Shamonin 2014), ANTs (Avants 2008) and Slicer (Fedorov 2012),
    each author and year in the same list item: in its own text, or in the shared ``CITATIONS_HTML`` of
    nodes/panels.py (``panels``) that it appends."""
    acknowledgement = _parent_assignments(ast.parse(source)).get("acknowledgementText", ast.Constant(""))
    text = _literal_text(acknowledgement)
    if any(getattr(node, "id", None) == "CITATIONS_HTML" for node in ast.walk(acknowledgement)):
        text += _module_constant(ast.parse(panels), "CITATIONS_HTML")
    items = text.split("<li>")
    return [f"no citation of {author} {year}" for author, year in CITATIONS
            if not any(author in item and year in item for item in items)]  # fmt: skip


def help_link_problems(source: str) -> list[str]:
    """The help text links a docs/ page of the project's homepage, and that page exists."""
    tree = ast.parse(source)
    help_text = _parent_assignments(tree).get("helpText")
    if help_text is None:
        return ["no help text"]
    if "<a href=" not in _literal_text(help_text):
        return ["the help text has no link"]
    try:
        docs_url = _module_constant(tree, "DOCS_URL")
    except KeyError:
        imported = any(isinstance(node, ast.ImportFrom) and node.module == "MultimodalRegistrationLib.nodes.panels"
                       and "DOCS_URL" in {alias.name for alias in node.names} for node in tree.body)  # fmt: skip
        if not imported:
            return ["no DOCS_URL"]
        docs_url = _module_constant(ast.parse(PANELS), "DOCS_URL")
    problems = [] if docs_url == f"{HOMEPAGE}/blob/main/docs/" else [f"DOCS_URL {docs_url} is not {HOMEPAGE}'s docs"]
    pages = [k.value.value for call in ast.walk(help_text) if isinstance(call, ast.Call)
             for k in call.keywords if k.arg == "page" and isinstance(k.value, ast.Constant)]  # fmt: skip
    if not pages:
        problems.append("the help text names no docs page")
    problems += [f"docs/{page} does not exist" for page in pages if not (ROOT / "docs" / page).is_file()]
    return problems


def sys_path_problems(source: str) -> list[str]:
    """A module file imports the library plainly: no sys.path (or site) edits."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            problems.append(f"line {node.lineno} touches sys.path")
        if isinstance(node, ast.Attribute) and node.attr == "addsitedir":
            problems.append(f"line {node.lineno} calls site.addsitedir")
    return problems


def sample_data_problems(source: str) -> list[str]:
    """A function registers the sample with SHA256:<64 hex> checksums (one per file) under the category
    'Multimodal Registration', and the module connects it to slicer.app's startupCompleted()."""
    tree = ast.parse(source)
    register = [(function, call) for function in _functions(tree).values() for call in ast.walk(function)
                if _call_name(call) == "registerCustomSampleDataSource"]  # fmt: skip
    if len(register) != 1:
        return [f"{len(register)} registerCustomSampleDataSource calls, expected 1"]
    function, call = register[0]
    keywords = {k.arg: k.value for k in call.keywords}
    problems = []
    if _literal_text(keywords.get("category", ast.Constant(""))) != "Multimodal Registration":
        problems.append("the category is not 'Multimodal Registration'")
    checksums = keywords.get("checksums")
    while isinstance(checksums, ast.Call) and _call_name(checksums) in ("list", "tuple"):
        checksums = checksums.args[0]
    try:
        values = (
            _module_constant(tree, checksums.id) if isinstance(checksums, ast.Name) else ast.literal_eval(checksums)
        )
    except (KeyError, ValueError, AttributeError):
        return problems + ["the checksums are not literal strings"]
    problems += [f"checksum {value!r} is not SHA256:<64 hex>" for value in values
                 if not re.fullmatch(r"SHA256:[0-9a-f]{64}", value)]  # fmt: skip
    file_names = ast.literal_eval(keywords["fileNames"]) if "fileNames" in keywords else []
    if not values or len(values) != len(file_names):
        problems.append(f"{len(values)} checksums for {len(file_names)} files")
    connected = any(
        _call_name(node) == "connect" and ast.unparse(node.func) == "slicer.app.connect"
        and [ast.unparse(a) for a in node.args] == ["'startupCompleted()'", function.name]
        for node in ast.walk(tree)
    )  # fmt: skip
    if not connected:
        problems.append(f"{function.name} is not connected to slicer.app's startupCompleted()")
    return problems


def placement_problems(source: str, ui: ElementTree.ElementTree) -> list[str]:
    """FiducialPrealign's .ui holds a point placement widget per list, each given the scene and kept on its
    list by the code; the point events restart a single-shot timer whose slot refits through the Logic
    (nodes.landmarks.fit_markups) once both lists hold >= 3 points."""
    problems = []
    placers = [w.get("name") for w in ui.iter("widget")
               if w.get("class") in ("qSlicerSimpleMarkupsWidget", "qSlicerMarkupsPlaceWidget")]  # fmt: skip
    if len(placers) < 2:
        problems.append(f"{len(placers)} point placement widgets in the .ui, expected one per list")
    given_scene = {
        c.findtext("receiver") for c in ui.iter("connection") if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    calls = _calls(ast.parse(source))
    for name in placers:
        if name not in given_scene:
            problems.append(f"{name} is not given the scene")
        if f"self.ui.{name}.setCurrentNode" not in calls:
            problems.append(f"{name} is never set to a point list")
    tree = ast.parse(source)
    declared = [
        n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "POINT_EVENTS"
    ]
    if not declared:
        return problems + ["no POINT_EVENTS"]
    events = {ast.unparse(event).split(".")[-1] for event in declared[0].elts}
    problems += [f"{event} is not observed" for event in ("PointModifiedEvent", "PointPositionDefinedEvent")
                 if event not in events]  # fmt: skip
    functions = _functions(tree)
    observer = [ast.unparse(c.args[2]) for c in ast.walk(tree)
                if _call_name(c) == "addObserver" and len(c.args) == 3 and ast.unparse(c.args[1]) == "event"]  # fmt: skip
    handlers = [functions[h.split(".")[-1]] for h in observer if h.split(".")[-1] in functions]
    timers = {c.split(".start")[0] for h in handlers for c in _calls(h) if c.endswith(".start")}
    if not timers:
        return problems + ["the point events start no timer"]
    timer = timers.pop()
    if f"{timer}.setSingleShot" not in calls:
        problems.append(f"{timer} is not single-shot")
    slots = [
        ast.unparse(c.args[0])
        for c in ast.walk(tree)
        if ast.unparse(getattr(c, "func", ast.Constant(0))) == f"{timer}.timeout.connect"
    ]
    if len(slots) != 1 or slots[0].split(".")[-1] not in functions:
        return problems + [f"{timer}'s timeout is not connected to a widget method"]
    preview = functions[slots[0].split(".")[-1]]
    reached = set(_calls(preview))
    for name in ("refit", "fit"):  # one level down each: the slot's refit, refit's logic.fit
        for call in list(reached):
            if call.split(".")[-1] == name and name in functions:
                reached |= set(_calls(functions[name]))
    if not any(call.endswith(("fit_markups", "fit_panel")) for call in reached):
        problems.append("the preview never reaches nodes.landmarks.fit_markups (or fit_panel)")
    try:
        minimum = _module_constant(tree, "PREVIEW_MIN_PAIRS")
    except KeyError:
        minimum = None
    if minimum != 3 or "PREVIEW_MIN_PAIRS" not in ast.unparse(preview):
        problems.append("the preview does not wait for 3 pairs (PREVIEW_MIN_PAIRS)")
    return problems


def copy_command_problems(source: str, ui: ElementTree.ElementTree) -> list[str]:
    """A 'Copy as command' button whose clicked slot puts the recorded provenance.command on the clipboard."""
    buttons = [w.get("name") for w in ui.iter("widget") if w.get("class") == "QPushButton"
               and w.findtext("property[@name='text']/string") == "Copy as command"]  # fmt: skip
    if len(buttons) != 1:
        return [f"{len(buttons)} 'Copy as command' buttons in the .ui"]
    tree = ast.parse(source)
    slots = [ast.unparse(c.args[0]).split(".")[-1] for c in ast.walk(tree)
             if isinstance(c, ast.Call) and ast.unparse(c.func) == f"self.ui.{buttons[0]}.clicked.connect"]  # fmt: skip
    functions = _functions(tree)
    if len(slots) != 1 or slots[0] not in functions:
        return [f"{buttons[0]} is not connected to a widget method"]
    problems = []
    if "qt.QApplication.clipboard().setText" not in _calls(functions[slots[0]]):
        problems.append(f"{slots[0]} does not set the clipboard's text")
    # The result's ``command`` is its summary's provenance.command (test_nodes checks that it is an mmreg line).
    if ".provenance.command" not in source and "registration.command" not in source:
        problems.append("the command copied is not the result's recorded command")
    return problems


# --------------------------------------------------------------------------- the real files
@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_texts_are_translatable(name):
    assert translation_problems(SOURCES[name]) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_acknowledgement_cites_elastix_ants_and_slicer(name):
    assert citation_problems(SOURCES[name]) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_help_links_an_existing_docs_page(name):
    assert help_link_problems(SOURCES[name]) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_file_touches_sys_path(name):
    assert sys_path_problems(SOURCES[name]) == []


def test_sample_data_pair_is_registered_with_sha256_checksums():
    assert sample_data_problems(SOURCES["MultimodalRegistration"]) == []


def test_fiducial_prealign_places_points_and_previews():
    assert placement_problems(SOURCES["FiducialPrealign"], _ui("FiducialPrealign")) == []


def test_copy_as_command_button_copies_the_recorded_command():
    assert "command" in {f.name for f in fields(Provenance)}, "the summary's provenance records no command"
    assert copy_command_problems(SOURCES["MultimodalRegistration"], _ui("MultimodalRegistration")) == []


# --------------------------------------------------------------------------- planted violations
def _planted(source: str, old: str, new: str) -> str:
    assert old in source, f"cannot plant: {old!r} is not in the source"
    return source.replace(old, new, 1)


MR, FP = "MultimodalRegistration", "FiducialPrealign"
PLANTED = {
    "bare title": (
        translation_problems,
        MR,
        'title = _("Multimodal Registration")',
        'title = "Multimodal Registration"',
    ),
    "bare category": (
        translation_problems,
        MR,
        '[translate("qSlicerAbstractCoreModule", "Registration")]',
        '["Registration"]',
    ),
    "bare status": (
        translation_problems,
        FP,
        '_("Select the fixed and the moving point lists.")',
        '"Select the lists."',
    ),
    "bare help": (translation_problems, MR, "helpText = _(", "helpText = str("),
    "no shared citations": (citation_problems, MR, "+ CITATIONS_HTML", '+ "<ul></ul>"'),
    "dead docs page": (help_link_problems, MR, 'page="slicer.md"', 'page="nowhere.md"'),
    "sys.path": (sys_path_problems, FP, "\nPOINT_EVENTS", "\nimport sys\nsys.path.insert(0, '.')\nPOINT_EVENTS"),
    "short checksum": (sample_data_problems, MR, "SHA256:6a5b6cac", "SHA256:6a5b"),
    "not at startup": (
        sample_data_problems,
        MR,
        '"startupCompleted()", registerSampleData',
        '"aboutToQuit()", registerSampleData',
    ),
    "no preview event": (placement_problems, FP, "PointPositionDefinedEvent,", "PointRemovedEvent,"),
    "preview without fit": (
        placement_problems,
        FP,
        "        self.refit()\n\n    def refit",
        "        pass\n\n    def refit",
    ),
    "multi-shot timer": (placement_problems, FP, "self._refitTimer.setSingleShot(True)", "pass"),
    "placer not synced": (placement_problems, FP, "self.ui.movingPlaceWidget.setCurrentNode", "print"),
    "copy unconnected": (
        copy_command_problems,
        MR,
        "self.ui.copyCommandButton.clicked.connect(self.onCopyCommandButton)",
        "pass",
    ),
    "no clipboard": (
        copy_command_problems,
        MR,
        "qt.QApplication.clipboard().setText(self._lastCommand)",
        "print(self._lastCommand)",
    ),
}


# Violations planted in nodes/panels.py, which holds the citations every acknowledgement appends.
PLANTED_CITATIONS = {"no Shamonin": ("Shamonin", "Someone"), "Avants year": ("26-41, 2008", "26-41, 2009")}


@pytest.mark.parametrize("case", sorted(PLANTED_CITATIONS))
def test_a_citation_planted_out_of_the_shared_list_is_reported(case):
    old, new = PLANTED_CITATIONS[case]
    assert citation_problems(SOURCES[MR], panels=_planted(PANELS, old, new))


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_planted_violation_is_reported(case):
    check, module, old, new = PLANTED[case]
    source = _planted(SOURCES[module], old, new)
    if check in (placement_problems, copy_command_problems):
        problems = check(source, _ui(module))
    else:
        problems = check(source)
    assert problems, f"{check.__name__} missed: {case}"


def test_a_ui_without_placement_widgets_is_reported(tmp_path):
    ui = _ui(FP)
    for parent in ui.iter():
        for child in list(parent):
            if child.tag == "item" and child.find("widget[@class='qSlicerSimpleMarkupsWidget']") is not None:
                parent.remove(child)
    assert "0 point placement widgets in the .ui, expected one per list" in placement_problems(SOURCES[FP], ui)


# --------------------------------------------------------------------------- .ui strings that are names, not text
NAME_PROPERTIES = ("SlicerParameterName", "nodeTypes")  # translated, they would break the binding or the filter


def ui_name_problems(ui: ElementTree.ElementTree) -> list[str]:
    """Strings that are names (parameter-node fields, MRML classes) are marked notr="true" for the translators."""
    return [
        f"{widget.get('name')}.{prop.get('name')}: {string.text!r} is offered for translation"
        for widget in ui.iter("widget")
        for prop in widget.findall("property")
        if prop.get("name") in NAME_PROPERTIES
        for string in prop.iter("string")
        if string.text and prop.find("stringlist[@notr='true']") is None and string.get("notr") != "true"
    ]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_ui_names_are_not_translated(name):
    assert ui_name_problems(_ui(name)) == []


def test_a_translatable_parameter_name_is_reported():
    ui = _ui(FP)
    next(s for s in ui.iter("string") if s.get("notr") == "true" and s.text == "fixedPoints").attrib.pop("notr")
    assert ui_name_problems(ui) == ["fixedPointsSelector.SlicerParameterName: 'fixedPoints' is offered for translation"]
