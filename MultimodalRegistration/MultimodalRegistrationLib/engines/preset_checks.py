"""Preset checks that run before any engine: unknown names (with a "did you mean") and cheap value checks.

elastix ignores a parameter name it does not know and our ANTs engine ignores an unknown key, so a
misspelled name silently falls back to a default. The known names are data files next to the presets:
``elastix/known_parameters.txt`` and ``ants/known_keys.json``. No ITK here: this runs in the parent.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from ..core.errors import InputError

# Beside each engine's presets, in its own folder of Resources/Presets.
ELASTIX_NAMES = Path("known_parameters.txt")
ANTS_KEYS = Path("known_keys.json")

# The Transform components elastix 5.x registers (their names in a parameter file).
ELASTIX_TRANSFORMS = (
    "AffineDTITransform", "AffineLogStackTransform", "AffineLogTransform", "AffineTransform",
    "BSplineStackTransform", "BSplineTransform", "DeformationFieldTransform", "EulerStackTransform",
    "EulerTransform", "ExternalTransform", "MultiBSplineTransformWithNormal", "RecursiveBSplineTransform",
    "SimilarityTransform", "SplineKernelTransform", "TranslationStackTransform", "TranslationTransform",
    "WeightedCombinationTransform",
)  # fmt: skip

# Any parameter may be set for one numbered component only, e.g. Metric1NumberOfHistogramBins.
_COMPONENT = re.compile(
    r"(Registration|FixedImagePyramid|MovingImagePyramid|Interpolator|ImageSampler|Metric|Optimizer"
    r"|ResampleInterpolator|Resampler|Transform)(\d+)(\w+)"
)
_INDEX = "<i>"
_IGNORED = "elastix ignores names it does not know"
_WHOLE = re.compile(r"\+?\d+")


def _data_file(root: Path, relative: Path) -> Path:
    """``relative`` under the engine's preset folder in use (``root``), else under the extension's own
    Resources/Presets/<engine>."""
    own = [parent / "Resources" / "Presets" / root.name / relative for parent in Path(__file__).parents]
    candidates = [root / relative] + own
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(f"the list of known preset names ({relative}) was not found: reinstall the extension")


@lru_cache(maxsize=4)
def _elastix_names(path: Path) -> tuple[frozenset[str], tuple[str, ...]]:
    """Plain names and indexed templates (``Metric<i>Weight``) from the known-parameters file."""
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [name for name in names if name and not name.startswith("//")]
    return frozenset(n for n in names if _INDEX not in n), tuple(n for n in names if _INDEX in n)


@lru_cache(maxsize=4)
def _ants_keys(path: Path) -> dict:
    return json.loads(path.read_text())


@lru_cache(maxsize=64)
def _template_pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(re.escape(_INDEX), r"\d+"))


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to ``name``, ignoring case (elastix names are case-sensitive)."""
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    found = difflib.get_close_matches(name.lower(), by_lower, n=1, cutoff=0.75)
    return by_lower[found[0]] if found else None


def _known_elastix(name: str, plain: frozenset[str], templates: tuple[str, ...]) -> bool:
    if name in plain or any(_template_pattern(t).fullmatch(name) for t in templates):
        return True
    labelled = _COMPONENT.fullmatch(name)
    return bool(labelled) and labelled.group(3) in plain


def _suggest_elastix(name: str, plain: frozenset[str], templates: tuple[str, ...]) -> str | None:
    number = re.search(r"\d+", name)
    if number:  # Metric1Wieght -> Metric<i>Wieght -> Metric<i>Weight -> Metric1Weight
        template = _closest(name[: number.start()] + _INDEX + name[number.end() :], templates)
        if template:
            return template.replace(_INDEX, number.group())
        labelled = _COMPONENT.fullmatch(name)
        if labelled and (rest := _closest(labelled.group(3), plain)):
            return labelled.group(1) + labelled.group(2) + rest
    return _closest(name, plain)


def _elastix_values(key: str, values: list[str]) -> str | None:
    """What is wrong with the values of ``key``, for the few parameters cheap to check; None if fine."""
    shown = " ".join(values)
    if key == "NumberOfResolutions" and not (len(values) == 1 and _WHOLE.fullmatch(values[0]) and int(values[0]) > 0):
        return f"NumberOfResolutions is '{shown}', not one positive whole number: give one, such as (NumberOfResolutions 3)"
    if key in ("NumberOfSpatialSamples", "NumberOfHistogramBins", "MaximumNumberOfIterations"):
        smallest = 0 if key == "MaximumNumberOfIterations" else 1
        if not all(_WHOLE.fullmatch(v) and int(v) >= smallest for v in values):
            kind = "whole numbers of 0 or more" if smallest == 0 else "positive whole numbers"
            return f"{key} is '{shown}', not {kind}: give one per resolution, such as ({key} 256 256 128)"
    if key == "Transform":
        for value in values:
            if value not in ELASTIX_TRANSFORMS:
                near = _closest(value, ELASTIX_TRANSFORMS)
                fix = (
                    f"did you mean '{near}'? (fix the name)" if near else f"use one of {', '.join(ELASTIX_TRANSFORMS)}"
                )
                return f"Transform '{value}' is not an elastix transform: {fix}"
    return None


# Parameters with one value per resolution (or one for all): a shorter list had reused its first value at the finer
# levels (a 4 mm step at the finest), silently (a helper's preset sweep).
PER_RESOLUTION = ("MaximumNumberOfIterations", "NumberOfSpatialSamples", "MaximumStepLength", "NumberOfHistogramBins",
                  "SP_a", "SP_A", "SP_alpha", "NumberOfJacobianMeasurements")  # fmt: skip
PYRAMID_SCHEDULES = ("ImagePyramidSchedule", "FixedImagePyramidSchedule", "MovingImagePyramidSchedule")


def _file_problems(entries: list[tuple[int, str, list[str]]], where: str) -> list[str]:
    """What is wrong with the file as a whole: a parameter given twice (elastix refuses such a file; two maps
    pasted into one had run as the last), an empty value list, lists whose lengths do not match
    NumberOfResolutions, transforms combined otherwise than composed, an image metric other than mutual
    information."""
    problems, first = [], {}
    for line, key, values in entries:
        if key in first:
            problems.append(f"{where} lines {first[key]} and {line}: {key} is given twice: keep one (one parameter "
                            "map per file; a stage of its own goes in a file of its own)")  # fmt: skip
        first.setdefault(key, line)
        if not values:
            problems.append(f"{where} line {line}: ({key} ) has no value: give one, or remove the line")
    found = {key: values for _, key, values in entries}
    resolutions = found.get("NumberOfResolutions", ["1"])
    count = int(resolutions[0]) if len(resolutions) == 1 and _WHOLE.fullmatch(resolutions[0]) else None
    for line, key, values in entries if count else ():
        if key in PER_RESOLUTION and values and len(values) not in (1, count):
            problems.append(f"{where} line {line}: {key} has {len(values)} values for {count} resolutions: give one "
                            f"for all, or one per resolution ({count})")  # fmt: skip
        if key in PYRAMID_SCHEDULES and values and len(values) != 3 * count:  # elastix falls back to its default
            problems.append(f"{where} line {line}: {key} has {len(values)} values, not a shrink factor per axis for "
                            f"each of the {count} resolutions: give {3 * count} (3 axes x {count})")  # fmt: skip
    combine = found.get("HowToCombineTransforms") or ["Compose"]
    if combine != ["Compose"]:
        problems.append(f"{where}: HowToCombineTransforms is '{' '.join(combine)}': the stages of a result are "
                        'composed: set (HowToCombineTransforms "Compose")')  # fmt: skip
    metric = (found.get("Metric") or [""])[0]
    if metric and "MutualInformation" not in metric:
        problems.append(f"{where}: the image metric is '{metric}': images of two modalities are compared by mutual "
                        'information: use (Metric "AdvancedMattesMutualInformation"), a penalty after it')  # fmt: skip
    return problems


def check_elastix_entries(entries: Iterable[tuple[int, str, list[str]]], where: str, root: Path) -> None:
    """Refuse unknown parameter names and wrong values in one parameter file; ``where`` names the file."""
    plain, templates = _elastix_names(_data_file(root, ELASTIX_NAMES))
    entries = list(entries)
    problems = _file_problems(entries, where)
    for line, key, values in entries:
        if not _known_elastix(key, plain, templates):
            near = _suggest_elastix(key, plain, templates)
            fix = f"did you mean '{near}'? (fix the name; {_IGNORED})" if near else f"fix or remove it ({_IGNORED})"
            problems.append(f"{where} line {line}: unknown parameter '{key}': {fix}")
        elif wrong := _elastix_values(key, values):
            problems.append(f"{where} line {line}: {wrong}")
    if problems:
        raise InputError("; ".join(problems))


def _key_lines(text: str, key: str) -> list[int]:
    """Line numbers (from 1) where ``"key":`` appears in a JSON text, in order."""
    pattern = re.compile(r'"' + re.escape(key) + r'"\s*:')
    return [number for number, line in enumerate(text.splitlines(), start=1) if pattern.search(line)]


def _unknown_keys(mapping: dict, known: list[str], where: str, part: str, text: str, seen: dict, problems: list) -> set:
    """Add a problem for each key of ``mapping`` not in ``known`` (``part`` names the stage); return the suggestions."""
    suggested = set()
    for key in mapping:
        if key in known:
            continue
        lines = _key_lines(text, key)
        occurrence = seen[key] = seen.get(key, -1) + 1
        at = f" line {lines[occurrence]}" if occurrence < len(lines) else ""
        near = _closest(key, known)
        suggested.add(near)
        fix = f"did you mean '{near}'?" if near else f"use one of {', '.join(known)}"
        problems.append(
            f"{where}{at}{part}: unknown key '{key}': {fix} (fix the name; the ANTs engine ignores keys it does not know)"
        )
    return suggested


def _ants_stage_values(stage: dict, keys: dict, misspelled: set) -> list[str]:
    """What is wrong with one stage's values: missing keys (unless ``misspelled``), unknown names, level counts."""
    missing = [k for k in keys["required_stage"] if k not in stage and k not in misspelled]
    wrong = [f"has no '{k}': add it, as in Resources/Presets/ants/rigid.json" for k in missing]
    if "transform" in stage and stage["transform"] not in keys["transforms"]:
        wrong.append(f"transform '{stage['transform']}' is not supported: use one of {', '.join(keys['transforms'])}")
    if "metric" in stage and stage["metric"] not in keys["metrics"]:
        wrong.append(f"metric '{stage['metric']}' is not multimodal: use one of {', '.join(keys['metrics'])}")
    if "smoothing_units" in stage and stage["smoothing_units"] not in keys["smoothing_units"]:
        wrong.append(
            f"smoothing_units '{stage['smoothing_units']}' is not known: use one of {', '.join(keys['smoothing_units'])}"
        )
    iterations = stage.get("iterations")
    if "iterations" in stage:
        if not (isinstance(iterations, list) and iterations and all(type(n) is int and n >= 0 for n in iterations)):
            return wrong + [
                f"iterations {iterations!r} is not a list of whole numbers, one per level: give e.g. [100, 50, 25]"
            ]
        for per_level in ("smoothing_sigmas", "shrink_factors", "level_spacing_mm"):
            if per_level in stage and (
                not isinstance(stage[per_level], list) or len(stage[per_level]) != len(iterations)
            ):
                wrong.append(
                    f"{per_level} {stage[per_level]!r} needs one value per level, like iterations ({len(iterations)})"
                )
    return wrong + _ants_sampling_values(stage)


ANTS_SAMPLINGS = ("None", "Regular", "Random")


def _ants_sampling_values(stage: dict) -> list[str]:
    """Shrink factors, sampling and its share, which ANTs had refused only after the start search, with no cause
    stated (a helper's preset sweep); level_spacing_mm given beside shrink_factors, which it had silently replaced."""
    wrong = []
    if "level_spacing_mm" in stage and "shrink_factors" in stage:
        wrong.append("gives both level_spacing_mm and shrink_factors, and level_spacing_mm wins: keep one of them")
    factors = stage.get("shrink_factors", [1])
    if isinstance(factors, list) and not all(type(f) is int and f >= 1 for f in factors):
        wrong.append(f"shrink_factors {factors!r} are not whole numbers of 1 or more: give e.g. [4, 2, 1]")
    if stage.get("sampling", "Regular") not in ANTS_SAMPLINGS:
        wrong.append(f"sampling '{stage['sampling']}' is not one of {', '.join(ANTS_SAMPLINGS)}")
    share = stage.get("sampling_percentage", 0.25)
    if type(share) not in (int, float) or not 0 < share <= 1:
        wrong.append(f"sampling_percentage {share!r} is not a share of the voxels above 0 and up to 1: give e.g. 0.25")
    return wrong


def check_ants_recipe(recipe: object, text: str, where: str, root: Path) -> None:
    """Refuse unknown keys (with a "did you mean") and values ANTs would reject late, in one ANTs JSON preset."""
    keys = _ants_keys(_data_file(root, ANTS_KEYS))
    if not isinstance(recipe, dict):
        raise InputError(f"{where} is not a JSON object: see Resources/Presets/ants/rigid.json")
    problems: list[str] = []
    seen: dict[str, int] = {}
    _unknown_keys(recipe, keys["top_level"], where, "", text, seen, problems)
    winsorize = recipe.get("winsorize", [0.0, 1.0])
    numbers = isinstance(winsorize, list) and all(type(v) in (int, float) for v in winsorize)
    if not (numbers and len(winsorize) == 2 and 0 <= winsorize[0] < winsorize[1] <= 1):
        problems.append(
            f"{where}: winsorize {winsorize!r} is not two quantiles, low then high: give e.g. [0.005, 0.995]"
        )
    stages = recipe.get("stages")
    for number, stage in enumerate(stages if isinstance(stages, list) else [], start=1):
        if not isinstance(stage, dict):
            problems.append(
                f'{where} (stage {number}): the stage is not a JSON object: write it as {{"transform": ..., "iterations": ...}}'
            )
            continue
        misspelled = _unknown_keys(stage, keys["stage"], where, f" (stage {number})", text, seen, problems)
        problems += [f"{where} (stage {number}): {wrong}" for wrong in _ants_stage_values(stage, keys, misspelled)]
    if problems:
        raise InputError("; ".join(problems))
