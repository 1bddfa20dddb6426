"""Static contract between each Slicer module's code, its .ui file and the CMake files.

Slicer cannot run here, so these checks catch what would otherwise only fail inside Slicer.
"""

import ast
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

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
    listed = re.findall(r"^\s+([\w${}./-]+\.(?:py|png|ui|txt))\s*$", text, re.M)
    module_name = re.search(r"set\(MODULE_NAME (\w+)\)", text)
    for entry in listed:
        if module_name:
            entry = entry.replace("${MODULE_NAME}", module_name.group(1))
        assert (folder / entry).exists(), f"{cmake.relative_to(ROOT)} lists {entry}, which does not exist"
    for sub in re.findall(r"^add_subdirectory\((\w+)\)", text, re.M):
        assert (folder / sub / "CMakeLists.txt").exists()


def test_every_library_file_is_listed():
    module = ROOT / "MultimodalRegistration"
    cmake = (module / "CMakeLists.txt").read_text()
    library = module / "MultimodalRegistrationLib"
    missing = [str(p.relative_to(module)) for p in library.rglob("*.py") if str(p.relative_to(module)) not in cmake]
    assert not missing, f"add to MultimodalRegistration/CMakeLists.txt: {missing}"


def test_every_module_folder_is_built():
    top = (ROOT / "CMakeLists.txt").read_text()
    for folder, _ in MODULES:
        assert f"add_subdirectory({folder.name})" in top


def test_library_never_imports_gui_code():
    library = ROOT / "MultimodalRegistration" / "MultimodalRegistrationLib"
    for path in library.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import (qt|ctk)\b|from (qt|ctk) import|import slicer\.app|from slicer import app)", text, re.M), path
        assert "ScriptedLoadableModule" not in text, path
        if path.name != "mrml.py":
            assert not re.search(r"^\s*import slicer\b", text, re.M), f"{path.name} imports MRML: only mrml.py may"
