"""Presets are data files under ``Resources/Presets``: one folder per engine (its parameter files).

``presets.json`` names each engine's presets, their descriptions and files, and what a preset needs
besides the images (``"needs": "segments"``: both segmentations); ``"guided_from_start": true`` makes a guided
registration run the preset's rigid stages from the guided start, judged as a rigid run, and its deformable
stages from what they kept, without its similarity and affine stages; ``presets_2d.json`` the presets for two
2D images (their steps and pyramids in pixels, so that any pixel size works). A custom preset is a
path to one file of the engine's own kind (elastix: a parameter file, ANTs: a JSON recipe; see
:mod:`.registry`). Every preset is checked as it loads (``preset_checks``): a misspelled name is
refused with a "did you mean" before any engine runs. Each engine's recipe module reads its files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from .registry import ENGINE_NAMES, engine_spec

_MANIFEST = "presets.json"
_MANIFESTS = {3: _MANIFEST, 2: "presets_2d.json"}  # by image dimension


@dataclass(frozen=True)
class Preset:
    """One engine's recipe, in that engine's own form (elastix: parameter maps; ANTs: a JSON recipe)."""

    engine: str
    name: str
    description: str
    recipe: Any = None
    files: list[str] = field(default_factory=list)
    linear: bool = True  # every stage is linear (rigid, similarity, affine)
    scales: bool = False  # a stage changes size (similarity, affine, or a deformation after them)
    needs: str | None = None  # "segments": the preset registers the segmentations' distance maps, so needs both
    guided_from_start: bool = False  # guided: see :meth:`guided_parts`
    skipped: tuple[str, ...] = ()  # stages left out (the engine's names for their transforms)

    @property
    def is_linear(self) -> bool:
        return self.linear

    def guided_parts(self) -> tuple[Preset | None, Preset]:
        """This nonlinear preset as a guided run uses it: (its leading rigid stages, or None; its deformable
        stages). The similarity and affine stages before the first deformable one are left out, named in the
        deformable part's ``skipped``. A linear preset is returned whole, with no rigid part."""
        if self.linear:
            return None, self
        recipe = engine_spec(self.engine).recipe_module()
        kinds = recipe.stage_kinds(self)
        first = next(index for index, (_, kind) in enumerate(kinds) if kind == "deformable")
        rigid = [index for index, (_, kind) in enumerate(kinds[:first]) if kind == "rigid"]
        skipped = tuple(name for name, kind in kinds[:first] if kind == "scaling")
        deformable = replace(recipe.with_stages(self, list(range(first, len(kinds)))), skipped=skipped)
        rigid_part = replace(recipe.with_stages(self, rigid), name=f"{self.name} preset's rigid") if rigid else None
        return rigid_part, deformable

    def without_scaling(self) -> Preset:
        """This preset without its similarity and affine stages, named in ``skipped`` (the stages' engine names;
        none: the preset as it is, see :mod:`..registration.without_affine`)."""
        recipe = engine_spec(self.engine).recipe_module()
        kinds = recipe.stage_kinds(self)
        kept = [index for index, (_, kind) in enumerate(kinds) if kind != "scaling"]
        skipped = tuple(name for name, kind in kinds if kind == "scaling")
        return replace(recipe.with_stages(self, kept), skipped=skipped) if skipped else self

    def check_needs(self, has_segments: bool) -> None:
        """Refuse a run that lacks what the preset needs (``"needs": "segments"``), before any engine runs."""
        if self.needs == "segments" and not has_segments:
            raise InputError(
                f"the {self.engine} {self.name} preset registers the segments' distance maps: give both "
                "segmentations (--fixed-segmentation and --moving-segmentation), or choose another preset"
            )


def stage_kind(transform: str, linear: tuple[str, ...], scaling: tuple[str, ...]) -> str:
    """A stage's kind from its transform's name and its engine's ``linear`` and ``scaling`` names: "scaling"
    (similarity, affine), "rigid" (rigid, translation) or "deformable"."""
    return "scaling" if transform in scaling else "rigid" if transform in linear else "deformable"


def stage_flags(kinds: list[tuple[str, str]]) -> dict[str, bool]:
    """A preset's ``linear`` and ``scales`` from its stages' (transform, kind) pairs (see :func:`stage_kind`)."""
    return {"linear": all(kind != "deformable" for _, kind in kinds),
            "scales": any(kind == "scaling" for _, kind in kinds)}  # fmt: skip


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


def _manifest(dimension: int = 3) -> dict:
    return json.loads((presets_dir() / _MANIFESTS[dimension]).read_text())


def preset_text(path: Path, engine: str) -> str:
    """A custom preset file's text, refused (:class:`InputError`) when it is not UTF-8: a Latin-1 comment or a
    Notepad UTF-16 file had stopped the run with a traceback (a helper's preset sweep)."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{engine} preset {path} is not UTF-8 text: save it as UTF-8 (an editor's Save as, "
                         "encoding UTF-8)") from None  # fmt: skip


def load_preset(engine: str, preset: str, dimension: int = 3) -> Preset:
    """Load a named preset of ``engine`` for images of ``dimension`` (2 or 3), or a custom preset file path (3D
    only: the 2D runner and its start search take the named 2D presets' linear stages)."""
    spec = engine_spec(engine)
    recipe = spec.recipe_module()
    candidate = Path(preset)
    suffixes = {other.preset_suffix for other in map(engine_spec, ENGINE_NAMES)}
    if dimension == 2 and candidate.suffix in suffixes:
        raise InputError(
            f"2D images take a named 2D preset, not a preset file ({preset}): choose one of "
            f"{', '.join(_manifest(2).get(engine, {}))} (their files are in Resources/Presets, listed by mmreg presets --2d)"
        )
    if candidate.suffix in suffixes and candidate.is_file():
        if candidate.suffix == spec.preset_suffix:
            return recipe.read_preset(spec, candidate.stem, "", [candidate])
        raise InputError(
            f"preset file {candidate} does not suit engine '{engine}': {spec.label} takes {spec.preset_suffix} files"
        )
    if candidate.suffix in suffixes and dimension == 3:  # a path to a file that is not there (a helper's session)
        raise InputError(f"preset file {candidate} does not exist: check the path, or choose a named preset "
                         f"(mmreg presets lists them)")  # fmt: skip
    entries = _manifest(dimension).get(engine, {})
    if preset not in entries and candidate.is_file():  # Upper.TXT, my.param: "unknown preset" had misled
        takes = ", ".join(f"{other.label} {other.preset_suffix}" for other in map(engine_spec, ENGINE_NAMES))
        raise InputError(f"preset file {candidate}: a preset file ends in its engine's suffix ({takes}, in lower "
                         "case): rename it")  # fmt: skip
    if preset not in entries:
        kind, or_file = ("2D ", "") if dimension == 2 else ("", " or give a preset file path")
        others = [other for other in ENGINE_NAMES if other != engine and preset in _manifest(dimension).get(other, {})]
        elsewhere = f"it is a preset of {' and '.join(others)} only: choose that engine, or " if others else "choose "
        raise InputError(f"unknown {kind}{engine} preset '{preset}': {elsewhere}one of {', '.join(entries)}{or_file}")
    entry = entries[preset]
    files = [presets_dir() / name for name in entry["files"]]
    return replace(recipe.read_preset(spec, preset, entry.get("description", ""), files), needs=entry.get("needs"),
                   guided_from_start=bool(entry.get("guided_from_start", False)))  # fmt: skip


def companion_preset(engine: str, preset: str, dimension: int = 3) -> str | None:
    """The preset the manifest runs beside ``preset`` from the same start (its ``"also"``), or None."""
    return _manifest(dimension).get(engine, {}).get(preset, {}).get("also")


def list_presets(engine: str | None = None, dimension: int = 3) -> list[Preset]:
    """Every named preset for images of ``dimension``, of one engine or of all."""
    engines = [engine] if engine else list(ENGINE_NAMES)
    manifest = _manifest(dimension)
    return [load_preset(name, preset, dimension) for name in engines for preset in manifest.get(name, {})]


def guidance_defaults(engine: str, preset: str | None = None) -> dict:
    """The default guidance weights of ``engine`` ({"segments": w, "points": w}, relative to the image
    term's 1), with ``preset``'s own where ``guidance.json`` gives them (``by_preset``), and the
    signed-distance clamp (``distance_clamp_mm``, mm)."""
    engine_spec(engine)
    path = presets_dir() / "guidance.json"
    try:
        record = json.loads(path.read_text())
        weights = {key: value for key, value in record[engine].items() if key != "by_preset"}
        weights.update(record[engine].get("by_preset", {}).get(preset, {}))
        return {**weights, "distance_clamp_mm": float(record["distance_clamp_mm"])}
    except (OSError, KeyError, AttributeError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is missing or damaged ({error}): reinstall the extension") from None
