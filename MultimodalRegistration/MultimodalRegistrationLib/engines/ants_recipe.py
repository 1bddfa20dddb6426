"""ANTs presets: a JSON recipe of antsRegistration stages, and what ANTs's sampler needs. No ANTs here.

ANTs samples ``sampling_percentage`` of the coarse voxels and keeps those inside the fixed mask; with
none it stops ("VirtualSampledPointSet must have 1 or more points"), and it counts a run as failed
only when no sample maps inside the moving image.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from .preset_checks import check_ants_recipe
from .presets import Preset, preset_text, presets_dir, stage_flags, stage_kind
from .registry import EngineSpec
from .sampling import StageSampling

LINEAR = ("Translation", "Rigid", "Similarity", "Affine")
SCALING = ("Similarity", "Affine")  # stages that change size
# Accepted chance that a run finds no valid sample (the same risk as registration/masks').
RISK = 0.01


def shrink_factors(stage: dict, voxel_mm: float) -> list[int]:
    """Per-level shrink factors: given, or derived from ``level_spacing_mm`` and the fixed voxel size (mm)."""
    if "level_spacing_mm" in stage:
        return [max(1, int(round(level / voxel_mm))) for level in stage["level_spacing_mm"]]
    return stage.get("shrink_factors", [1] * len(stage["iterations"]))


def read_preset(spec: EngineSpec, name: str, description: str, files: list[Path]) -> Preset:
    """One JSON file; checked for unknown keys before any engine runs."""
    (path,) = files
    text = preset_text(path, "ANTs")
    try:
        recipe = json.loads(text, object_pairs_hook=lambda pairs: _once(pairs, path))
    except json.JSONDecodeError as error:
        raise InputError(f"ANTs preset {path} is not valid JSON ({error}): fix the file") from None
    check_ants_recipe(recipe, text, f"ANTs preset {path}", presets_dir() / spec.name)
    if not isinstance(recipe.get("stages"), list) or not recipe["stages"]:
        raise InputError(f"ANTs preset {path} needs a non-empty 'stages' list: see Resources/Presets/ants/rigid.json")
    description = description or recipe.get("description", "")
    flags = stage_flags(_kinds(recipe["stages"]))
    return Preset(spec.name, name, description, recipe=recipe, files=[str(path)], **flags)


def _once(pairs: list[tuple[str, object]], path: Path) -> dict:
    """A JSON object whose keys each come once: a key given twice had silently kept its last value."""
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise InputError(f"ANTs preset {path} gives {', '.join(repr(k) for k in twice)} twice in one object: keep one")
    return dict(pairs)


def _kinds(stages: list[dict]) -> list[tuple[str, str]]:
    """Each stage's transform and kind: "rigid" (rigid, translation), "scaling" (similarity, affine) or
    "deformable"."""
    return [(name, stage_kind(name, LINEAR, SCALING)) for name in (stage.get("transform") for stage in stages)]


def stage_kinds(preset: Preset) -> list[tuple[str, str]]:
    """Each stage's transform and kind (see :func:`_kinds`)."""
    return _kinds(preset.recipe["stages"])


def with_stages(preset: Preset, indices: list[int]) -> Preset:
    """``preset`` with only the stages at ``indices`` (its one JSON file unchanged)."""
    stages = [preset.recipe["stages"][i] for i in indices]
    flags = stage_flags(_kinds(stages))
    return replace(preset, recipe={**preset.recipe, "stages": stages}, **flags)


def stage_sampling(preset: Preset, spacing: np.ndarray) -> list[StageSampling]:
    """Each stage's sampling at its coarsest level; ``spacing`` is the fixed voxel (mm)."""
    stages = []
    for stage in preset.recipe["stages"]:
        factor = max(shrink_factors(stage, float(spacing.min())))
        sampling = stage.get("sampling", "Regular")
        fraction = 1.0 if sampling == "None" else float(stage.get("sampling_percentage", 0.25))
        stages.append(
            StageSampling(
                label=f"ANTs {preset.name}",
                voxel_mm=spacing * factor,
                random_box=False,
                tries_per_sample=0,
                samples=0,
                draws=len(stage["iterations"]),
                fraction=fraction,
                valid_ratio=0.0,
            )
        )
    return stages


def needed_valid_fraction(stages: list[StageSampling], volume_mm3: float) -> float:
    """ANTs stops only when no sample is valid: the fraction of the region that leaves ln(1 / RISK)
    valid samples at its coarsest level."""
    fewest = min(stage.expected_samples(volume_mm3) for stage in stages)
    return min(1.0, math.log(1.0 / RISK) / max(fewest, 1e-9))


def field_shrink(preset: Preset, voxel_mm: float) -> int | None:
    """The shrink factor of the finest level of the preset's deformable stages, on which ANTs keeps its displacement
    fields, for a fixed image whose finest spacing is ``voxel_mm`` (mm); None for a linear preset (the pre-run memory
    check sizes the fields by it)."""
    stages = preset.recipe["stages"]
    factors = [shrink_factors(stage, voxel_mm)[-1] for stage, (_, kind) in zip(stages, _kinds(stages))
               if kind == "deformable"]  # fmt: skip
    return min(factors) if factors else None
