"""A preset's elastix parameter maps in elastix's multi-metric form, for a guided run. No ITK here.

Every guided map lists its metrics in this order:

1. the image metrics, metric i comparing image pair i: the intensities with the preset's own metric
   (AdvancedMattesMutualInformation), then one AdvancedMeanSquares per segment channel;
2. CorrespondingPointsEuclideanDistanceMetric, when there are landmarks (point files, LPS mm);
3. the preset's own penalties (the B-spline stage's bending energy), then weight-0 fillers.

Weights are relative (``UseRelativeWeights``): every iteration elastix rescales the gradient of
metric i to ``Metric<i>RelativeWeight`` times the gradient magnitude of metric 0, so a weight does
not depend on its metric's scale (mutual information, squared differences, mm between points).

The intensities stay in slot 0 even with the intensity weight 0 (they then count with weight 0):
AdaptiveStochasticGradientDescent needs an image metric there, and its step size, estimated from
metric 0's gradient, blows up when metric 0 is a smooth, noise-free term that starts at its
optimum (a distance-map channel or the landmarks after the rigid stage).

elastix 5.3 wants one image pair, pyramid and interpolator for all metrics, or one per metric, in
every map, and all maps of a run share the images. So with several image pairs every map is padded
to the same number of metrics with fillers (a weight-0 bending-energy penalty: on a linear
transform it returns 0 at once, after its sampler draws a few points), and the metrics past the
image metrics are given image pair 0 again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .guidance_terms import EngineGuidance

CHANNEL_METRIC = "AdvancedMeanSquares"
POINTS_METRIC = "CorrespondingPointsEuclideanDistanceMetric"
FILLER_METRIC = "TransformBendingEnergyPenalty"
PER_PAIR = ("FixedImagePyramid", "MovingImagePyramid", "Interpolator")
# A preset penalty pulls as hard as metric 0 unless its preset says otherwise (penalty_relative_weight).
PENALTY_RELATIVE_WEIGHT = 1.0
FILLER_SAMPLES = 16
_PER_METRIC = re.compile(r"Metric(\d+)(\w+)")


@dataclass(frozen=True)
class Term:
    """One metric of a guided map: its elastix name, relative weight, and index in the preset's own list."""

    metric: str
    weight: float
    own: int | None = None


def pair_count(guidance: EngineGuidance) -> int:
    """How many distinct fixed/moving image pairs the image metrics compare: the intensities and each channel."""
    return 1 + len(guidance.active_channels)


def map_terms(parameters: dict[str, list[str]], guidance: EngineGuidance) -> list[Term]:
    """The guided metrics of one preset map (whose own metrics are its image metric, then its penalties)."""
    metrics = parameters["Metric"]
    terms = [Term(metrics[0], guidance.intensity_weight, own=0)]
    terms += [Term(CHANNEL_METRIC, channel.weight) for channel in guidance.active_channels]
    terms += [Term(POINTS_METRIC, guidance.points_weight)] if guidance.has_points else []
    penalties = [(index, name) for index, name in enumerate(metrics) if index > 0]
    return terms + [Term(name, penalty_relative_weight(parameters, index), own=index) for index, name in penalties]


def penalty_relative_weight(parameters: dict[str, list[str]], index: int) -> float:
    """The relative weight of the preset's metric ``index`` (a penalty) in a guided map.

    Relative weights hold for every metric of a map, so the penalty's absolute ``Metric<i>Weight``
    (tuned against mutual information) cannot carry over. A preset may set ``Metric<i>RelativeWeight``
    for guided runs (unguided runs ignore it); otherwise the penalty's gradient is as long as metric 0's.
    """
    return float(parameters.get(f"Metric{index}RelativeWeight", [PENALTY_RELATIVE_WEIGHT])[0])


def guided_maps(maps: list[dict[str, list[str]]], guidance: EngineGuidance) -> list[dict[str, list[str]]]:
    """Each preset map in multi-metric form; with several image pairs, padded to one metric per image slot."""
    terms = [map_terms(parameters, guidance) for parameters in maps]
    pairs = pair_count(guidance)
    if pairs > 1:
        width = max(len(t) for t in terms)
        terms = [t + [Term(FILLER_METRIC, 0.0)] * (width - len(t)) for t in terms]
    return [guided_map(parameters, t, pairs) for parameters, t in zip(maps, terms)]


def guided_map(parameters: dict[str, list[str]], terms: list[Term], pairs: int) -> dict[str, list[str]]:
    """One preset map with ``terms`` as its metrics, over ``pairs`` image pairs."""
    result = {key: values for key, values in parameters.items() if not _PER_METRIC.fullmatch(key)}
    for key, values in parameters.items():  # the preset's own per-metric settings follow their metric
        match = _PER_METRIC.fullmatch(key)
        if match and match.group(2) not in ("Weight", "RelativeWeight", "Use"):
            for index, term in enumerate(terms):
                if term.own == int(match.group(1)):
                    result[f"Metric{index}{match.group(2)}"] = values
    slots = len(terms) if pairs > 1 else 1
    result["Registration"] = ["MultiMetricMultiResolutionRegistration"]
    result["Metric"] = [term.metric for term in terms]
    result.update({key: parameters[key][:1] * slots for key in PER_PAIR})
    result["ImageSampler"] = parameters["ImageSampler"][:1] * slots
    result["UseRelativeWeights"] = ["true"]
    result.update({f"Metric{i}RelativeWeight": [repr(float(term.weight))] for i, term in enumerate(terms)})
    for index, term in enumerate(terms):
        if term.metric == FILLER_METRIC and term.own is None:  # its sampler still runs every iteration: keep it small
            result[f"ImageSampler{index}NumberOfSpatialSamples"] = [str(FILLER_SAMPLES)]
    return result


def slot_pairs(maps: list[dict[str, list[str]]], pairs: int) -> list[int]:
    """The image pair each image slot holds: each pair once, then pair 0 for the metrics that compare none."""
    if pairs == 1:
        return [0]
    return list(range(pairs)) + [0] * (len(maps[0]["Metric"]) - pairs)


def mask_count(maps: list[dict[str, list[str]]]) -> int:
    """How many times each mask goes in: with several masks elastix gives mask i to metric i."""
    return max(len(parameters["Metric"]) for parameters in maps)


def write_points(points_lps: np.ndarray, path: Path) -> Path:
    """An elastix point file: ``point`` (physical coordinates, LPS mm), the count, then ``x y z`` per line."""
    points = np.asarray(points_lps, float).reshape(-1, 3)
    lines = ["point", str(len(points))] + [" ".join(repr(float(v)) for v in point) for point in points]
    path.write_text("\n".join(lines) + "\n")
    return path


def notes(maps: list[dict[str, list[str]]]) -> dict:
    """How elastix combined the terms, for provenance: the metrics and relative weights of each map."""
    return {
        "engine_weights": "relative: elastix rescales each term's gradient, every iteration, to its weight "
        "times the gradient magnitude of metric 0 (the intensities; UseRelativeWeights)",
        "engine_metrics": [
            [[name, float(m[f"Metric{i}RelativeWeight"][0])] for i, name in enumerate(m["Metric"])] for m in maps
        ],
    }
