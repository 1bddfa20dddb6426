"""The ExtensionsIndex entry (MultimodalRegistration.json) and the extension metadata in CMakeLists.txt.

The index builds the extension from the JSON entry and lists it with the CMake metadata; these checks
catch a broken icon or screenshot URL, a missing licence or an entry the index's schema refuses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "MultimodalRegistration.json"
SCHEMA_URL = re.compile(r"^https://raw\.githubusercontent\.com/Slicer/Slicer/main/Schemas/"
                        r"slicer-extension-catalog-entry-schema-v1\.0\.\d+\.json#?$")
# The fields schema v1.0.x allows (it sets additionalProperties to false) and the ones it requires.
ALLOWED = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
           "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
REQUIRED = {"$schema", "category", "scm_url"}


def cmake_metadata() -> dict[str, str]:
    """EXTENSION_* values set in the top-level CMakeLists.txt, by name without the prefix."""
    text = (ROOT / "CMakeLists.txt").read_text()
    return {name: value for name, value in re.findall(r'set\(EXTENSION_(\w+) "([^"]*)"\)', text)}


def entry() -> dict:
    return json.loads(ENTRY.read_text())


def test_entry_has_the_required_fields_and_no_others():
    fields = entry()
    assert REQUIRED <= set(fields), REQUIRED - set(fields)
    assert set(fields) <= ALLOWED, set(fields) - ALLOWED
    assert SCHEMA_URL.match(fields["$schema"]), fields["$schema"]
    assert fields["scm_type"] in ("git", "local")
    assert isinstance(fields["build_dependencies"], list)
    assert 1 <= fields["tier"] <= 5
    assert fields["enabled"] is True


def test_entry_builds_this_repository_from_its_top_level():
    fields, meta = entry(), cmake_metadata()
    assert fields["scm_url"].removesuffix(".git") == meta["HOMEPAGE"]
    assert fields["build_subdirectory"] == "."
    assert (ROOT / fields["build_subdirectory"] / "CMakeLists.txt").is_file()


def test_category_and_dependencies_agree_with_cmake():
    fields, meta = entry(), cmake_metadata()
    assert fields["category"] == meta["CATEGORY"] == "Registration"
    depends = [] if meta["DEPENDS"] == "NA" else meta["DEPENDS"].split()
    assert sorted(fields["build_dependencies"]) == sorted(depends)


def test_every_url_into_this_repository_names_a_file_that_exists():
    meta = cmake_metadata()
    raw = meta["HOMEPAGE"].replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    urls = [meta["ICONURL"], *meta["SCREENSHOTURLS"].split()]
    assert len(urls) >= 2, "an icon and at least one screenshot"
    for url in urls:
        assert url.startswith(raw), f"{url} does not point into {raw}"
        path = ROOT / url.removeprefix(raw)
        assert path.is_file(), f"{url}: {path.relative_to(ROOT)} does not exist"
        assert path.suffix == ".png"


def test_contributors_are_not_a_placeholder():
    contributors = cmake_metadata()["CONTRIBUTORS"]
    assert contributors.strip()
    assert not re.search(r"\b(todo|fixme|your name|developers?)\b|John Doe", contributors, re.IGNORECASE), contributors


def test_licence_is_apache_as_pyproject_says():
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence


def test_minimum_slicer_version_is_stated_and_matches_python():
    """Slicer 5.10 ships Python 3.12, the first release at or above requires-python (3.10); 5.8 has Python 3.9
    (a helper's audit: pip logs of 5.8.1 install cp39 wheels)."""
    requires = re.search(r'requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert requires and int(requires.group(1)) <= 12
    assert "Minimum Slicer version: 5.10" in (ROOT / "CMakeLists.txt").read_text()
    assert "Slicer 5.10 or later" in (ROOT / "README.md").read_text()


def test_each_module_registers_its_self_test_with_ctest():
    """The Slicer factory's dashboard shows a module's self-test only when CTest knows it."""
    modules = [path for path in sorted(ROOT.glob("*/CMakeLists.txt")) if "set(MODULE_NAME" in path.read_text()]
    assert len(modules) == 4
    for cmake in modules:
        text = cmake.read_text()
        name = re.search(r"set\(MODULE_NAME (\w+)\)", text).group(1)
        assert re.search(r"if\(BUILD_TESTING\)\s+slicer_add_python_unittest\(SCRIPT \$\{MODULE_NAME\}\.py\)", text), cmake
        script = (cmake.parent / f"{name}.py").read_text()
        assert re.search(rf"^class {name}Test\(ScriptedLoadableModuleTest\):", script, re.MULTILINE), name
