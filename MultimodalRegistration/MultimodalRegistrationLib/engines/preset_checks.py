"""Preset checks that run before any engine: unknown names (with a "did you mean") and cheap value checks.

elastix ignores a parameter name it does not know and our ANTs engine ignores an unknown key, so a
misspelled name silently falls back to a default. The known names are data files next to the presets:
``elastix/known_parameters.txt`` and ``ants/known_keys.json``. No ITK here: this runs in the parent.
"""

from __future__ import annotations

import difflib
import json
import math
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
            if value not in READABLE_TRANSFORMS:  # had run all its levels, then failed reading the result back
                return (f"Transform '{value}' writes a result ITK cannot read, so it cannot be a result here: use one "
                        f"of {', '.join(READABLE_TRANSFORMS)}")  # fmt: skip
        if len(values) > 1:
            return (f"Transform names {len(values)} transforms ({shown}): one parameter map has one; a stage of "
                    "its own goes in a file of its own (register with the first file, then give its result to the "
                    "next as --initial-transform)")  # fmt: skip
    return None


def _value_problems(key: str, values: list[str]) -> str | None:
    """Values elastix or this library would misread: a capitalised boolean, a decimal comma, a word where a
    number goes, two parameters on one line (each had failed in elastix or with a traceback, or set nothing; a
    helper's preset sweep)."""
    if any(token in ("(", ")") or token.startswith("(") or token.endswith(")") for token in values):
        return f"holds more than one parameter (({key} ...) then another): give one parameter per line"
    if capital := next((v for v in values if v in ("True", "False", "TRUE", "FALSE")), None):
        return f'{key} is "{capital}": elastix reads only "true" or "false" in lower case'
    if comma := next((v for v in values if _DECIMAL_COMMA.fullmatch(v)), None):
        return f"{key} has '{comma}': write decimals with a point ({comma.replace(',', '.')})"
    if _numeric(key) and (word := next((v for v in values if not _finite(v)), None)):
        return f"{key} has '{word}', not a number: give numbers only"
    return None


def _numeric(key: str) -> bool:
    return key in NUMERIC_PARAMETERS or bool(re.fullmatch(r"Metric\d+Weight", key))


def _finite(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


# Transforms whose results ITK reads back (elastix writes the others, AffineLogTransform and the stack transforms,
# as classes ITK does not know).
READABLE_TRANSFORMS = ("EulerTransform", "SimilarityTransform", "AffineTransform", "TranslationTransform",
                       "BSplineTransform", "RecursiveBSplineTransform")  # fmt: skip
# Metrics that are not image metrics: a penalty on the transform, or the landmarks' distance.
NOT_IMAGE_METRICS = re.compile(r".*Penalty|CorrespondingPointsEuclideanDistanceMetric")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")

# Parameters with one value per resolution (or one for all): a shorter list had reused its first value at the finer
# levels (a 4 mm step at the finest), silently (a helper's preset sweep).
PER_RESOLUTION = ("MaximumNumberOfIterations", "NumberOfSpatialSamples", "MaximumStepLength", "NumberOfHistogramBins",
                  "SP_a", "SP_A", "SP_alpha", "NumberOfJacobianMeasurements")  # fmt: skip
PYRAMID_SCHEDULES = ("ImagePyramidSchedule", "FixedImagePyramidSchedule", "MovingImagePyramidSchedule")
# Numbers this library reads itself, or that elastix casts (a word there stopped it late).
NUMERIC_PARAMETERS = (*PER_RESOLUTION, *PYRAMID_SCHEDULES, "SampleGridSpacing", "RequiredRatioOfValidSamples",
                      "GridSpacingSchedule", "FinalGridSpacingInPhysicalUnits", "FinalGridSpacingInVoxels",
                      "DefaultPixelValue")  # fmt: skip


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
        if key == "GridSpacingSchedule" and values and len(values) not in (count, 3 * count):  # elastix: "Invalid"
            problems.append(f"{where} line {line}: GridSpacingSchedule has {len(values)} values for {count} "
                            f"resolutions: give one per resolution ({count}) or one per axis and resolution "
                            f"({3 * count})")  # fmt: skip
    if "TransformParameters" in found or "NumberOfParameters" in found:
        problems.append(f"{where} is an elastix result (it holds TransformParameters), not a parameter file: give "
                        "the parameter file that made it as the preset (a result is a start: see "
                        "troubleshooting.md for TransformParameters.0.txt)")  # fmt: skip
    combine = found.get("HowToCombineTransforms") or ["Compose"]
    if combine != ["Compose"]:
        problems.append(f"{where}: HowToCombineTransforms is '{' '.join(combine)}': the stages of a result are "
                        'composed: set (HowToCombineTransforms "Compose")')  # fmt: skip
    metrics = found.get("Metric") or []
    if metrics and "MutualInformation" not in metrics[0]:
        problems.append(f"{where}: the image metric is '{metrics[0]}': images of two modalities are compared by "
                        'mutual information: use (Metric "AdvancedMattesMutualInformation"), a penalty after '
                        "it")  # fmt: skip
    registration = (found.get("Registration") or ["MultiResolutionRegistration"])[0]
    if len(metrics) > 1 and registration != "MultiMetricMultiResolutionRegistration":
        problems.append(f"{where}: {len(metrics)} metrics need "
                        f"(Registration \"MultiMetricMultiResolutionRegistration\"), not '{registration}'")  # fmt: skip
    return problems


def check_user_metrics(parameters: dict[str, list[str]], where: str) -> None:
    """A preset file's metrics after the first (the guided maps the library writes add its own: mean squares on
    the segments' distance maps, the landmarks' distance): another image metric than mutual information, or the
    landmarks' metric, which the run adds when landmarks guide it (without them elastix had stopped, exit 1)."""
    later = (parameters.get("Metric") or [])[1:]
    problems = [f"{where}: the image metric is '{metric}': images of two modalities are compared by mutual "
                'information: use (Metric "AdvancedMattesMutualInformation"), a penalty after it'
                for metric in later if "MutualInformation" not in metric and not NOT_IMAGE_METRICS.fullmatch(metric)]
    if "CorrespondingPointsEuclideanDistanceMetric" in later:
        problems.append(f"{where}: CorrespondingPointsEuclideanDistanceMetric is added by the run when landmarks "
                        "guide it (--fixed-points and --moving-points, weighted by --guidance-weight): remove it "
                        "from the preset")  # fmt: skip
    if problems:
        raise InputError("; ".join(problems[:2]))


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
        elif wrong := _value_problems(key, values) or _elastix_values(key, values):
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
    return wrong + _ants_sampling_values(stage) + _ants_numbers(stage)


# Numbers of a stage: (whole, smallest, the smallest itself allowed, an example). Each value outside had failed in
# ANTs with no cause named, crashed, or changed the result without a word: bins 0 returned the start (a helper's
# preset sweep).
ANTS_NUMBERS = {
    "bins": (True, 4, True, "32"), "convergence_window": (True, 1, True, "10"),
    "gradient_step": (False, 0, False, "0.1"), "convergence_threshold": (False, 0, True, "1e-06"),
    "update_field_variance": (False, 0, True, "3"), "total_field_variance": (False, 0, True, "0"),
}  # fmt: skip
ANTS_LEVEL_NUMBERS = {"smoothing_sigmas": (0, True, "[4, 2, 1]"), "level_spacing_mm": (0, False, "[8, 4, 2]")}


def _ants_number_ok(value: object, whole: bool, smallest: float, inclusive: bool) -> bool:
    if type(value) is not int and (whole or type(value) is not float or not math.isfinite(value)):
        return False
    return value >= smallest if inclusive else value > smallest


def _ants_numbers(stage: dict) -> list[str]:
    wrong = []
    for key, (whole, smallest, inclusive, example) in ANTS_NUMBERS.items():
        if key in stage and not _ants_number_ok(stage[key], whole, smallest, inclusive):
            kind = "a whole number" if whole else "a number"
            wrong.append(f"{key} {stage[key]!r} is not {kind} {'of' if inclusive else 'above'} {smallest}"
                         f"{' or more' if inclusive else ''}: give e.g. {example}")  # fmt: skip
    for key, (smallest, inclusive, example) in ANTS_LEVEL_NUMBERS.items():
        values = stage.get(key)
        if isinstance(values, list) and not all(_ants_number_ok(v, False, smallest, inclusive) for v in values):
            wrong.append(f"{key} {values!r} are not numbers {'of' if inclusive else 'above'} {smallest}"
                         f"{' or more' if inclusive else ''}, one per level: give e.g. {example}")  # fmt: skip
    return wrong


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
