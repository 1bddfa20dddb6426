"""elastix presets: parameter files read into maps, and what elastix's samplers need. No ITK here.

elastix's random samplers draw NumberOfSpatialSamples points per iteration inside the fixed mask's
bounding box on the coarsest pyramid level, giving up after 10 tries per sample; a sample counts as
valid only where the transform maps it inside the moving image buffer (and mask), and elastix stops
("Too many samples map outside moving image buffer") with fewer than RequiredRatioOfValidSamples
(default 0.25) valid. Measured consequences are in ``registration/masks``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from .preset_checks import check_elastix_entries, check_user_metrics
from .presets import Preset, preset_text, presets_dir, stage_flags, stage_kind
from .registry import EngineSpec
from .sampling import StageSampling, parameter_number

# elastix's default RequiredRatioOfValidSamples.
DEFAULT_VALID_RATIO = 0.25
RANDOM_SAMPLERS = ("RandomCoordinate", "Random", "MultiInputRandomCoordinate")
# elastix's random samplers try at most this many points per sample they need (hard-coded in elastix).
TRIES_PER_SAMPLE = 10
_ENTRY = re.compile(r"^\s*\((\w+)\s+(.*)\)\s*$")
_TOKEN = re.compile(r'"[^"]*"|[^\s"]+')
_LINEAR = ("EulerTransform", "AffineTransform", "SimilarityTransform", "TranslationTransform")
_SCALING = ("AffineTransform", "SimilarityTransform")  # stages that change size


def elastix_entries(text: str) -> list[tuple[int, str, list[str]]]:
    """The ``(Key value ...)`` lines of an elastix parameter file as (line number from 1, key, values)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("//")[0].strip()
        if not stripped:
            continue
        match = _ENTRY.match(stripped)
        if not match or stripped.count('"') % 2:  # an odd quote: elastix refuses the file
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


def read_preset(spec: EngineSpec, name: str, description: str, files: list[Path]) -> Preset:
    """One parameter file per stage, run in order; checked for unknown names before any engine runs."""
    maps = []
    for path in files:
        text = preset_text(path, "elastix")
        parameters, file_description = parse_elastix_parameters(text)
        if "Transform" not in parameters:
            raise InputError(f"elastix preset {path} has no (Transform ...) line: add one")
        check_elastix_entries(elastix_entries(text), f"elastix preset {path}", presets_dir() / spec.name)
        check_user_metrics(parameters, f"elastix preset {path}")
        maps.append(parameters)
        description = description or file_description
    flags = stage_flags(_kinds(maps))
    return Preset(spec.name, name, description, recipe=maps, files=[str(p) for p in files], **flags)


def _kinds(maps: list[dict]) -> list[tuple[str, str]]:
    """Each map's Transform and kind: "rigid" (Euler, translation), "scaling" (similarity, affine) or
    "deformable"."""
    return [(name, stage_kind(name, _LINEAR, _SCALING)) for name in (m.get("Transform", [""])[0] for m in maps)]


def stage_kinds(preset: Preset) -> list[tuple[str, str]]:
    """Each stage's Transform and kind (see :func:`_kinds`)."""
    return _kinds(preset.recipe)


def with_stages(preset: Preset, indices: list[int]) -> Preset:
    """``preset`` with only the stages at ``indices`` (one parameter file each)."""
    maps = [preset.recipe[i] for i in indices]
    flags = stage_flags(_kinds(maps))
    return replace(preset, recipe=maps, files=[preset.files[i] for i in indices], **flags)


def _stage(parameters: dict, spacing: np.ndarray, label: str) -> StageSampling:
    levels = int(parameter_number(parameters, "NumberOfResolutions", 3))
    pyramid = parameters.get("FixedImagePyramid", ["FixedSmoothingImagePyramid"])[0]
    schedule = parameters.get("FixedImagePyramidSchedule") or parameters.get("ImagePyramidSchedule")
    dimension = len(spacing)
    if "Smoothing" in pyramid:
        factors = np.ones(dimension)  # smooths without downsampling
    elif schedule and len(schedule) >= dimension:
        factors = np.array([float(v) for v in schedule[:dimension]])  # the first level is the coarsest
    else:
        factors = np.full(dimension, 2.0 ** (levels - 1))
    sampler = parameters.get("ImageSampler", ["Random"])[0]
    iterations = int(parameter_number(parameters, "MaximumNumberOfIterations", 500, max))
    renew = parameters.get("NewSamplesEveryIteration", ["false"])[0].lower() == "true"
    fraction = 1.0
    if sampler == "Grid":
        grid = [float(v) for v in parameters.get("SampleGridSpacing", ["2"] * dimension)[:dimension]]
        fraction = 1.0 / float(np.prod(grid))
    return StageSampling(
        label=label,
        voxel_mm=spacing * factors,
        random_box=sampler in RANDOM_SAMPLERS,
        tries_per_sample=TRIES_PER_SAMPLE,
        samples=int(parameter_number(parameters, "NumberOfSpatialSamples", 5000)),
        draws=levels * iterations if renew else levels,
        fraction=fraction,
        valid_ratio=parameter_number(parameters, "RequiredRatioOfValidSamples", DEFAULT_VALID_RATIO, max),
    )


def stage_sampling(preset: Preset, spacing: np.ndarray) -> list[StageSampling]:
    """Each parameter map's sampling at its coarsest level; ``spacing`` is the fixed voxel (mm)."""
    return [_stage(parameters, spacing, f"elastix {preset.name}") for parameters in preset.recipe]


def needed_valid_fraction(stages: list[StageSampling], volume_mm3: float) -> float:
    """RequiredRatioOfValidSamples, the largest over the stages."""
    return max(stage.valid_ratio for stage in stages)


def field_shrink(preset: Preset, voxel_mm: float) -> int | None:
    """None: elastix keeps no dense displacement field (its B-spline grid is small), so no level to size (see
    ants_recipe)."""
    return None
