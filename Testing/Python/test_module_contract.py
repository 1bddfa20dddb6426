"""Static contract between each Slicer module's code, its .ui file and the CMake files.

Slicer cannot run here, so these checks catch what would otherwise only fail inside Slicer.
"""

import ast
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> list[tuple[Path, str]]:
    """(folder, module name) for each scripted module: the folder's CMake names the module."""
    found = []
    for cmake in sorted(ROOT.glob("*/CMakeLists.txt")):
        name = re.search(r"set\(MODULE_NAME (\w+)\)", cmake.read_text())
        if name:
            found.append((cmake.parent, name.group(1)))
    return found


MODULES = _modules()


def parameter_fields(source: str) -> set[str]:
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list):
            return {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
    return set()


def test_there_is_a_module():
    assert "MultimodalRegistration" in [name for _, name in MODULES]


@pytest.mark.parametrize("folder, name", MODULES, ids=[name for _, name in MODULES])
def test_ui_matches_the_module_code(folder, name):
    ui_path = folder / "Resources" / "UI" / f"{name}.ui"
    tree = ElementTree.parse(ui_path)
    widgets = {w.get("name") for w in tree.iter("widget")}
    source = (folder / f"{name}.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used and used <= widgets, f"widgets used in code but missing from the .ui: {sorted(used - widgets)}"
    fields = parameter_fields(source)
    bound = set()
    for widget in tree.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound.add(prop.find("string").text)
    assert bound and bound <= fields, f"SlicerParameterName without a parameter-node field: {sorted(bound - fields)}"


@pytest.mark.parametrize("cmake", sorted(ROOT.glob("**/CMakeLists.txt")), ids=lambda p: str(p.relative_to(ROOT)))
def test_cmake_lists_files_that_exist(cmake):
    text = cmake.read_text()
    folder = cmake.parent
    listed = re.findall(r"^\s+([\w${}./-]+\.(?:py|png|ui|txt))\s*$", text, re.MULTILINE)
    module_name = re.search(r"set\(MODULE_NAME (\w+)\)", text)
    for entry in listed:
        if module_name:
            entry = entry.replace("${MODULE_NAME}", module_name.group(1))
        assert (folder / entry).exists(), f"{cmake.relative_to(ROOT)} lists {entry}, which does not exist"
    for sub in re.findall(r"^add_subdirectory\((\w+)\)", text, re.MULTILINE):
        assert (folder / sub / "CMakeLists.txt").exists()


def test_the_whole_library_is_packaged():
    """The module's CMake file collects every library file with a glob, so moving a file cannot break packaging."""
    cmake = (ROOT / "MultimodalRegistration" / "CMakeLists.txt").read_text()
    glob = re.search(r"file\(GLOB_RECURSE (\w+) RELATIVE \$\{CMAKE_CURRENT_SOURCE_DIR\}\s+"
                     r"\$\{CMAKE_CURRENT_SOURCE_DIR\}/MultimodalRegistrationLib/\*\.py\)", cmake)
    assert glob, "MultimodalRegistration/CMakeLists.txt must collect MultimodalRegistrationLib/*.py with GLOB_RECURSE"
    scripts = re.search(r"set\(MODULE_PYTHON_SCRIPTS([^)]*)\)", cmake).group(1)
    assert "${" + glob.group(1) + "}" in scripts, "the globbed library must be part of MODULE_PYTHON_SCRIPTS"


def test_every_module_folder_is_built():
    top = (ROOT / "CMakeLists.txt").read_text()
    for folder, _ in MODULES:
        assert f"add_subdirectory({folder.name})" in top


def test_library_never_imports_gui_code():
    library = ROOT / "MultimodalRegistration" / "MultimodalRegistrationLib"
    for path in library.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import (qt|ctk)\b|from (qt|ctk) import|import slicer\.app|from slicer import app)", text, re.MULTILINE), path
        assert "ScriptedLoadableModule" not in text, path
        if path.name != "mrml.py":
            assert not re.search(r"^\s*import slicer\b", text, re.MULTILINE), f"{path.name} imports MRML: only mrml.py may"


# --------------------------------------------------------------------------- layers
LIBRARY = ROOT / "MultimodalRegistration" / "MultimodalRegistrationLib"
# A package may import its own files and the layers below it, never a layer above nor a peer.
LAYERS = {
    "core": 0,
    "engines": 1,
    "registration": 2,
    "prep": 2,
    "stack": 2,
    "landmarks": 2,
    "qa": 3,
    "process": 4,
    "nodes": 5,
    "cli": 5,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIBRARY.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_imports() -> dict[str, set[str]]:
    """Every library module and the library modules it imports, at the top or inside functions."""
    graph: dict[str, set[str]] = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if not module.startswith(LIBRARY.name):
                    continue
                for alias in node.names:  # "from . import mrml" imports a module
                    candidate = f"{module}.{alias.name}"
                    found = LIBRARY.parent.joinpath(*candidate.split("."))
                    targets.add(candidate if found.with_suffix(".py").exists() or found.is_dir() else module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name.startswith(LIBRARY.name))
        graph[name] = targets - {name}
    return graph


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_library_file_sits_in_a_layer():
    loose = [p.name for p in LIBRARY.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"put these in a layer package ({', '.join(LAYERS)}): {loose}"
    unknown = [p.name for p in LIBRARY.iterdir() if p.is_dir() and p.name not in LAYERS and p.name != "__pycache__"]
    assert not unknown, f"packages without a layer: {unknown}; add them to LAYERS with their rank"


def test_imports_go_one_way():
    wrong = []
    for module, targets in library_imports().items():
        source = _layer(module)
        for target in targets:
            destination = _layer(target)
            if destination is None or destination == source:
                # The top package only re-exports core names.
                if source is None and destination is None and target != LIBRARY.name:
                    wrong.append(f"{module} -> {target}")
                continue
            if source is None:
                if destination != "core":
                    wrong.append(f"{module} -> {target} (the top package may import core only)")
            elif LAYERS[destination] >= LAYERS[source]:
                wrong.append(f"{module} ({source}) -> {target} ({destination})")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = library_imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target in graph and not state.get(target):
                visit(target, trail + [target])
        state[module] = 2

    for module in graph:
        if not state.get(module):
            visit(module, [module])
    # A package's __init__ importing its own files is not a cycle that matters; two files whose names share
    # a prefix (qa.report, qa.report_types) are a cycle.
    cycles = [c for c in cycles if not _inside_one_package(c.split(" -> "))]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _inside_one_package(members: list[str]) -> bool:
    head = members[0]
    is_package = (LIBRARY.parent.joinpath(*head.split(".")) / "__init__.py").exists()
    return is_package and all(part == head or part.startswith(head + ".") for part in members)


def test_the_cycle_filter_keeps_a_cycle_between_files_with_a_common_prefix():
    library = LIBRARY.name
    assert not _inside_one_package([f"{library}.qa.report", f"{library}.qa.report_types", f"{library}.qa.report"])
    assert _inside_one_package([f"{library}.qa", f"{library}.qa.report", f"{library}.qa"])


MODULE_FILES = sorted(ROOT.glob("*/[A-Z]*.py"))
MODULE_LAYERS = {"nodes", "core"}  # module files reach the library through these only


def test_module_files_import_only_the_nodes_layer_and_core():
    assert len(MODULE_FILES) >= 4, [p.name for p in MODULE_FILES]
    wrong = []
    for path in MODULE_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LIBRARY.name):
                parts = node.module.split(".")
                layer = parts[1] if len(parts) > 1 else None
                if layer not in MODULE_LAYERS:
                    wrong.append(f"{path.name}: from {node.module}")
    assert not wrong, "module files importing below the nodes layer:\n" + "\n".join(wrong)


@pytest.mark.parametrize("folder, name", [m for m in MODULES if m[1] in ("MultimodalRegistration", "RegistrationPrep", "MultimodalRegistrationQA")],
                         ids=lambda value: value if isinstance(value, str) else "")  # fmt: skip
def test_every_node_selector_is_locked_while_a_run_goes_on(folder, name):
    """A run keeps the nodes it started with; a selector left enabled invites a change the run will not follow
    (GUI audit H2: the registration module locked none). Each qMRMLNodeComboBox is in the module's locked list."""
    tree = ElementTree.parse(folder / "Resources" / "UI" / f"{name}.ui")
    selectors = {w.get("name") for w in tree.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    source = (folder / f"{name}.py").read_text()
    locked = {a or b for a, b in re.findall(r'"(\w+Selector)"|ui\.(\w+Selector)\.enabled', source)}
    assert selectors and selectors <= locked, f"selectors a run does not lock: {sorted(selectors - locked)}"


LOCK_LISTS = {"MultimodalRegistration": "_LOCKED", "RegistrationPrep": "_LOCKED",
              "MultimodalRegistrationQA": "INPUT_WIDGETS"}  # module -> the tuple of widgets a run locks


@pytest.mark.parametrize("folder, name", [m for m in MODULES if m[1] in LOCK_LISTS],
                         ids=lambda value: value if isinstance(value, str) else "")  # fmt: skip
def test_every_choice_a_run_reads_is_locked_while_it_goes_on(folder, name):
    """A helper's GUI review: only the node selectors were locked, so an engine, preset, seed or prep step changed
    mid-run, and the status line then described a run that was not. Each widget bound to a parameter is locked by
    name or by the section (ctkCollapsibleButton) it sits in; the prep panel's section of stacks is its own job."""
    tree = ElementTree.parse(folder / "Resources" / "UI" / f"{name}.ui")
    source = ast.parse((folder / f"{name}.py").read_text())
    (lock_list,) = [node.value for node in ast.walk(source) if isinstance(node, ast.Assign)
                    and any(getattr(target, "id", None) == LOCK_LISTS[name] for target in node.targets)]  # fmt: skip
    locked = set(ast.literal_eval(lock_list))
    parent = {child: element for element in tree.iter() for child in element}
    unlocked = []
    for widget in tree.iter("widget"):
        if not any(p.get("name") == "SlicerParameterName" for p in widget.findall("property")):
            continue
        chain, node = [widget.get("name")], widget
        while node in parent:
            node = parent[node]
            if node.tag == "widget":
                chain.append(node.get("name"))
        if "stackCollapsibleButton" not in chain and not locked & set(chain):
            unlocked.append(widget.get("name"))
    assert not unlocked, f"{name}: widgets a run does not lock: {unlocked}"
