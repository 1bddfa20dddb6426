"""Presets are data files under ``Resources/Presets``: elastix parameter files and ANTs JSON.

``presets.json`` names each engine's presets, their descriptions and files. A custom preset is a
path to one elastix parameter file (``.txt``) or one ANTs JSON file. Every preset is checked as it
loads (``preset_checks``): a misspelled name is refused with a "did you mean" before any engine runs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.choices import ENGINES
from ..core.errors import InputError
from .preset_checks import check_ants_recipe, check_elastix_entries

_MANIFEST = "presets.json"
_ENTRY = re.compile(r"^\s*\((\w+)\s+(.*)\)\s*$")
_TOKEN = re.compile(r'"[^"]*"|[^\s"]+')


@dataclass(frozen=True)
class Preset:
    """One engine's recipe: elastix parameter maps or ANTs registration stages."""

    engine: str
    name: str
    description: str
    elastix_maps: list[dict[str, list[str]]] = field(default_factory=list)
    ants: dict = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def is_linear(self) -> bool:
        if self.engine == "elastix":
            return all(m.get("Transform", [""])[0] != "BSplineTransform" for m in self.elastix_maps)
        return all(stage.get("transform") in ("Rigid", "Similarity", "Affine", "Translation") for stage in self.ants["stages"])


def presets_dir() -> Path:
    """The folder holding ``presets.json``: ``$MMREG_PRESETS_DIR``, the source tree, or the installed module."""
    candidates = []
    if os.environ.get("MMREG_PRESETS_DIR"):
        candidates.append(Path(os.environ["MMREG_PRESETS_DIR"]))
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidates.append(parent / "Resources" / "Presets")
    for candidate in candidates:
        if (candidate / _MANIFEST).is_file():
            return candidate
    raise InputError(
        "the preset folder (Resources/Presets/presets.json) was not found: "
        "reinstall the extension or set MMREG_PRESETS_DIR to it"
    )


def _manifest() -> dict:
    return json.loads((presets_dir() / _MANIFEST).read_text())


def elastix_entries(text: str) -> list[tuple[int, str, list[str]]]:
    """The ``(Key value ...)`` lines of an elastix parameter file as (line number from 1, key, values)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("//")[0].strip()
        if not stripped:
            continue
        match = _ENTRY.match(stripped)
        if not match:
            raise InputError(
                f"elastix parameter line is not '(Key value ...)': {stripped!r} (line {number}): fix the preset file"
            )
        entries.append((number, match.group(1), [token.strip('"') for token in _TOKEN.findall(match.group(2))]))
    return entries


def parse_elastix_parameters(text: str) -> tuple[dict[str, list[str]], str]:
    """Parse an elastix parameter file into ``{key: [values]}`` and its ``// Description:`` line."""
    description = ""
    for line in text.splitlines():
        match = re.match(r"//\s*Description:\s*(.*)", line.strip(), re.IGNORECASE)
        if match:
            description = match.group(1).strip()
            break
    return {key: values for _, key, values in elastix_entries(text)}, description


def _elastix_preset(name: str, description: str, files: list[Path]) -> Preset:
    maps = []
    for path in files:
        text = path.read_text()
        parameters, file_description = parse_elastix_parameters(text)
        if "Transform" not in parameters:
            raise InputError(f"elastix preset {path} has no (Transform ...) line: add one")
        check_elastix_entries(elastix_entries(text), f"elastix preset {path}", presets_dir())
        maps.append(parameters)
        description = description or file_description
    return Preset("elastix", name, description, elastix_maps=maps, files=[str(p) for p in files])


def _ants_preset(name: str, description: str, path: Path) -> Preset:
    text = path.read_text()
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"ANTs preset {path} is not valid JSON ({error}): fix the file") from None
    check_ants_recipe(recipe, text, f"ANTs preset {path}", presets_dir())
    if not isinstance(recipe.get("stages"), list) or not recipe["stages"]:
        raise InputError(f"ANTs preset {path} needs a non-empty 'stages' list: see Resources/Presets/ants/rigid.json")
    return Preset("ants", name, description or recipe.get("description", ""), ants=recipe, files=[str(path)])


def load_preset(engine: str, preset: str) -> Preset:
    """Load a named preset of ``engine``, or a custom preset file path."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}': choose one of {', '.join(ENGINES)}")
    candidate = Path(preset)
    if candidate.suffix in (".txt", ".json") and candidate.is_file():
        if engine == "elastix" and candidate.suffix == ".txt":
            return _elastix_preset(candidate.stem, "", [candidate])
        if engine == "ants" and candidate.suffix == ".json":
            return _ants_preset(candidate.stem, "", candidate)
        raise InputError(f"preset file {candidate} does not suit engine '{engine}': elastix takes .txt, ANTs takes .json")
    entries = _manifest().get(engine, {})
    if preset not in entries:
        raise InputError(
            f"unknown {engine} preset '{preset}': choose one of {', '.join(entries)} or give a preset file path"
        )
    entry = entries[preset]
    root = presets_dir()
    if engine == "elastix":
        return _elastix_preset(preset, entry.get("description", ""), [root / stage for stage in entry["stages"]])
    return _ants_preset(preset, entry.get("description", ""), root / entry["file"])


def list_presets(engine: str | None = None) -> list[Preset]:
    """Every named preset, of one engine or of all."""
    engines = [engine] if engine else list(ENGINES)
    manifest = _manifest()
    return [load_preset(name, preset) for name in engines for preset in manifest.get(name, {})]


def guidance_defaults(engine: str) -> dict:
    """The default guidance weights of ``engine`` ({"segments": w, "points": w}, relative to the image
    term's 1) and the signed-distance clamp (``distance_clamp_mm``, mm), from ``guidance.json``."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}': choose one of {', '.join(ENGINES)}")
    path = presets_dir() / "guidance.json"
    try:
        record = json.loads(path.read_text())
        return {**record[engine], "distance_clamp_mm": float(record["distance_clamp_mm"])}
    except (OSError, KeyError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is missing or damaged ({error}): reinstall the extension") from None
