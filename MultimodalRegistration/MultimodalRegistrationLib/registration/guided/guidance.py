"""What guides a registration besides intensities: paired segmentations and landmarks.

Segments are paired by name when both labelmaps carry Slicer's segment names (ignoring case and spacing),
else by label value; two segmentations of one segment each are paired whatever their names or values, with a
warning (two annotators rarely name or number a gland alike).
Each paired segment becomes one pair of clamped signed distance maps (mm, scaled to [-1, 1]) that the
engine compares by mean squares beside mutual information; landmarks become a corresponding-points
term. The same segments and points give the starting pose (:mod:`.guided_start`) and the scores by
which a guided result is kept or refused (:mod:`.guided_score`). All coordinates are LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ...core.choices import GUIDANCE_METRICS
from ...core.errors import InputError
from ...core.images import same_grid
from ...core.labels import as_labelmap, check_distinct_names, label_names, lone_segments_paired, segment_name_key
from ...core.pairs import check_pair
from ...core.segment_layers import said_renumbered, segment_values, single_layer, whole_mask
from ...engines.guidance_terms import Channel, EngineGuidance
from ...engines.presets import guidance_defaults, load_preset
from .landmark_size import size_change_warning
from .pair_checks import named_without_voxels, pairing_doubts, unpaired_warning
from .segment_grids import swapped_segmentations

TIE_SHARE = 0.499  # a segment resampled linearly keeps the voxels halfway between its voxels in and out


@dataclass
class Guidance:
    """The user's guidance for one registration.

    ``fixed_points_lps``/``moving_points_lps`` are paired (row i with row i) landmarks in LPS mm.
    ``segments`` names the segments (or label values) that guide; None means every paired one.
    ``weight`` (None: the engine's default from ``Resources/Presets/guidance.json``) is the weight of
    the segment and landmark terms against the image term's 1. ``metric`` "segments" drops the image
    term, for modalities whose intensities do not correspond (ultrasound, histology).
    """

    fixed_segmentation: sitk.Image | None = None
    moving_segmentation: sitk.Image | None = None
    segments: list[str] | None = None
    fixed_points_lps: np.ndarray | None = None
    moving_points_lps: np.ndarray | None = None
    point_labels: list[str] | None = None  # each pair's label, for the record
    points_paired_by: str | None = None  # "label" or "order"
    weight: float | None = None
    metric: str = "intensity"
    # Said of the segmentations when they were read (multi-layer segmentations merged into one labelmap).
    input_warnings: list[str] = field(default_factory=list, repr=False)
    # The segments a multi-layer segmentation's merge drew others over, whole (see core.segment_layers), so that
    # each segment guides as drawn; with the merged labelmap they belong to (``replace()`` of a segmentation
    # drops them).
    fixed_wholes: dict[int, sitk.Image] = field(default_factory=dict, repr=False)
    moving_wholes: dict[int, sitk.Image] = field(default_factory=dict, repr=False)
    wholes_of: tuple[sitk.Image | None, sitk.Image | None] = field(default=(None, None), repr=False)

    def __post_init__(self) -> None:
        owners = list(self.wholes_of)
        given = (self.fixed_segmentation, self.moving_segmentation)
        for side, role in enumerate(("fixed", "moving")):
            image = getattr(self, f"{role}_segmentation")
            if image is not None and image.GetNumberOfComponentsPerPixel() > 1:
                merged = single_layer(image, f"{role} segmentation")
                setattr(self, f"{role}_segmentation", merged.labels)
                setattr(self, f"{role}_wholes", merged.wholes)
                owners[side] = merged.labels
                said = merged.warnings + said_renumbered(merged, given[1 - side], self.segments)
                self.input_warnings = self.input_warnings + said  # a copy: replace() shares the list
            elif owners[side] is not image:  # another segmentation than the one they came from
                setattr(self, f"{role}_wholes", {})
                owners[side] = None
        self.wholes_of = (owners[0], owners[1])

    @property
    def has_segments(self) -> bool:
        return self.fixed_segmentation is not None

    @property
    def has_points(self) -> bool:
        return self.fixed_points_lps is not None and len(self.fixed_points_lps) > 0

    @property
    def is_empty(self) -> bool:
        return not (self.has_segments or self.has_points) and self.metric == "intensity"


@dataclass
class SegmentPair:
    """One segment present in both labelmaps: its name and its label value on each side."""

    name: str
    fixed_value: int
    moving_value: int
    paired_by: str = "name"  # "name", "label value", "only segment" (one on each side), or "given" (fixed=moving)
    moving_name: str = ""  # the moving segment's own name, when paired_by is "only segment" or "given"


@dataclass
class PreparedGuidance:
    """The checked guidance: the paired segments as masks on each image's grid, and the engine's terms."""

    guidance: Guidance
    pairs: list[SegmentPair]
    fixed_masks: list[sitk.Image]  # UInt8, on the fixed image's grid, one per pair
    moving_masks: list[sitk.Image]  # UInt8, on the moving image's grid
    engine_terms: EngineGuidance
    warnings: list[str] = field(default_factory=list)
    fixed_image: sitk.Image | None = field(default=None, repr=False, compare=False)  # their fields of view: .views
    moving_image: sitk.Image | None = field(default=None, repr=False, compare=False)

    def describe(self) -> dict:
        """For provenance: the segments, the landmark count, the metric and the weights."""
        return {
            "metric": self.guidance.metric,
            "segments": [{"name": p.name, "fixed_value": p.fixed_value, "moving_value": p.moving_value,
                          "paired_by": p.paired_by} for p in self.pairs],
            "points": len(self.guidance.fixed_points_lps) if self.guidance.has_points else 0,
            **({"point_labels": list(self.guidance.point_labels), "points_paired_by": self.guidance.points_paired_by}
               if self.guidance.has_points and self.guidance.point_labels else {}),
            "engine_terms": self.engine_terms.describe(),
        }


def values_and_names(labels: sitk.Image, wholes: dict[int, sitk.Image] | None = None) -> dict[int, str]:
    """Each segment's label value and name (its value as text when it has none); ``wholes``: segments drawn over."""
    values = segment_values(labels, wholes or {})
    names = label_names(labels)
    return {int(value): names.get(int(value), str(int(value))) for value in sorted(values)}


def only_segments_warning(pairs: list[SegmentPair]) -> str | None:
    """The warning for two lone segments paired though their names or label values differ, else None."""
    pair = next((p for p in pairs if p.paired_by == "only segment"), None)
    if pair is None:
        return None
    sides = [(value, None if name == str(value) else name)  # an unnamed segment is named by its value
             for value, name in ((pair.fixed_value, pair.name), (pair.moving_value, pair.moving_name))]  # fmt: skip
    return lone_segments_paired(*sides, "segmentation") + ". If they are not, segment that structure on both images"


def pair_segments(
    fixed_segmentation: sitk.Image,
    moving_segmentation: sitk.Image,
    wanted: list[str] | None = None,
    wholes: tuple[dict[int, sitk.Image], dict[int, sitk.Image]] = ({}, {}),
) -> list[SegmentPair]:
    """The segments of both labelmaps, paired by name when both carry names (case and spacing ignored), else
    by label value; when neither pairs anything and each side holds one segment, those two. ``wholes``: each
    side's segments drawn over (:class:`Guidance`), which count though no voxel shows them.

    ``wanted`` keeps only the named segments (names or label values as text), in that order; "FIXED=MOVING"
    pairs two segments named apart (the fixed one first).
    """
    return _paired(fixed_segmentation, moving_segmentation, wanted, wholes)[0]


def _paired(
    fixed_segmentation: sitk.Image, moving_segmentation: sitk.Image, wanted: list[str] | None,
    wholes: tuple[dict[int, sitk.Image], dict[int, sitk.Image]],
) -> tuple[list[SegmentPair], str | None]:
    """:func:`pair_segments`, and without ``wanted`` the warning for segments found on one side only (the user
    who chose the segments needs no word on the others)."""  # fmt: skip
    fixed_found = values_and_names(as_labelmap(fixed_segmentation, "fixed segmentation"), wholes[0])
    moving_found = values_and_names(as_labelmap(moving_segmentation, "moving segmentation"), wholes[1])
    for role, found in (("fixed", fixed_found), ("moving", moving_found)):
        if not found:
            raise InputError(
                f"the {role} segmentation is empty (every voxel is 0): give the labelmap with the segments"
            )
    named = bool(label_names(fixed_segmentation)) and bool(label_names(moving_segmentation))
    key = "name" if named else "label value"
    if named:
        check_distinct_names(fixed_found, "fixed segmentation")
        check_distinct_names(moving_found, "moving segmentation")
        by_name = {segment_name_key(name): value for value, name in moving_found.items()}
        pairs = [SegmentPair(name, value, by_name[segment_name_key(name)]) for value, name in fixed_found.items()
                 if segment_name_key(name) in by_name]  # fmt: skip
    else:
        pairs = [SegmentPair(name, value, value, "label value") for value, name in fixed_found.items()
                 if value in moving_found]  # fmt: skip
    if not pairs and len(fixed_found) == len(moving_found) == 1:
        ((fixed_value, fixed_name),), ((moving_value, moving_name),) = fixed_found.items(), moving_found.items()
        pairs = [SegmentPair(fixed_name, fixed_value, moving_value, "only segment", moving_name)]
    given = {entry: given_pair(entry, fixed_found, moving_found) for entry in wanted or [] if "=" in entry}
    if not pairs and not given:
        raise InputError(
            f"no segment is in both segmentations (fixed {sorted(fixed_found.values())}, moving "
            f"{sorted(moving_found.values())}): give the same structure the same {key} in both, or pair two "
            "segments with --segments FIXED=MOVING (e.g. gland=prostate)"
        )
    if not wanted:
        named = (label_names(fixed_segmentation), label_names(moving_segmentation))
        return pairs, unpaired_warning(fixed_found, moving_found, key, pairs, named)
    chosen = {str(p.fixed_value): p for p in pairs}
    chosen |= {str(p.moving_value): p for p in pairs if p.paired_by == "only segment"}
    chosen |= {segment_name_key(name): p for p in pairs for name in (p.moving_name, p.name) if name}
    chosen |= given
    unknown = [name for name in wanted if name not in chosen and segment_name_key(name) not in chosen]
    if unknown:
        found = (f"{[p.name if p.moving_name in (None, '', p.name) else f'{p.name} (moving: {p.moving_name})' for p in pairs]}"
                 if pairs
                 else f"none is in both (fixed {sorted(fixed_found.values())}, moving {sorted(moving_found.values())})")
        empty = _empty_sides(unknown, (fixed_found, moving_found), (fixed_segmentation, moving_segmentation))
        raise InputError(
            f"segments {unknown} are not in both segmentations{empty}: choose from {found}, or pair two segments "
            "named apart with FIXED=MOVING (e.g. gland=prostate)"
        )  # fmt: skip
    picked = [chosen.get(name) or chosen[segment_name_key(name)] for name in wanted]
    first: dict[tuple[int, int], SegmentPair] = {}
    for pair in picked:  # each pair once, in the order first named
        first.setdefault((pair.fixed_value, pair.moving_value), pair)
    pairs = list(first.values())
    for side, value_of in (("fixed", lambda p: p.fixed_value), ("moving", lambda p: p.moving_value)):
        values = [value_of(p) for p in pairs]
        twice = sorted({p.name if side == "fixed" else p.moving_name or p.name
                        for p in pairs if values.count(value_of(p)) > 1})  # fmt: skip
        if twice:
            raise InputError(f"--segments pairs the {side} segment {twice} with two segments: pair each segment once")
    return pairs, None


def _empty_sides(names: list[str], found: tuple[dict, dict], segmentations: tuple) -> str:
    """" ('lesion' is empty in the fixed segmentation (named, no voxels))" for each of ``names`` a file names
    without voxels (a helper's sweep: such a segment had been called absent); "" for none."""
    said, asked = [], {segment_name_key(name) for name in names}
    for side, role in enumerate(("fixed", "moving")):
        named = label_names(segmentations[side])
        empty = named_without_voxels(named, found[side]) & asked
        said += [f"'{name}' is empty in the {role} segmentation (named, no voxels)" for name in named.values()
                 if segment_name_key(name) in empty]  # fmt: skip
    return f" ({'; '.join(said)})" if said else ""


def given_pair(entry: str, fixed_found: dict[int, str], moving_found: dict[int, str]) -> SegmentPair:
    """The pair a user named as "FIXED=MOVING" (segment names, case and spacing ignored, or label values)."""
    fixed_key, moving_key = (part.strip() for part in entry.split("=", 1))
    values = []
    for role, key, found in (("fixed", fixed_key, fixed_found), ("moving", moving_key, moving_found)):
        match = [value for value, name in found.items()
                 if key == str(value) or segment_name_key(key) == segment_name_key(name)]  # fmt: skip
        if not match:
            raise InputError(
                f"segment '{key}' of '{entry}' is not in the {role} segmentation: choose from "
                f"{sorted(found.values())} (FIXED=MOVING names the fixed segment first)"
            )
        values.append(match[0])
    return SegmentPair(fixed_found[values[0]], values[0], values[1], "given", moving_found[values[1]])


def _with_filled_holes(mask: sitk.Image, segmentation: sitk.Image) -> sitk.Image:
    """``mask`` with the holes it encloses taken in where ``segmentation`` labels them; the work is done in the
    mask's bounding box (a CT of 80 million voxels took 1 s a segment on the whole grid)."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(mask)
    if not statistics.HasLabel(1):
        return mask
    box = statistics.GetBoundingBox(1)  # index (x, y, z), then size
    index = [max(i - 1, 0) for i in box[:3]]
    size = [min(i + n + 1, limit) - start for i, n, limit, start in zip(box[:3], box[3:], mask.GetSize(), index)]
    inside = sitk.RegionOfInterest(mask, size, index)
    enclosed = sitk.BinaryFillhole(inside, fullyConnected=False, foregroundValue=1)
    labelled = sitk.Cast(sitk.RegionOfInterest(segmentation, size, index) != 0, sitk.sitkUInt8)
    return sitk.Paste(mask, sitk.Or(inside, sitk.And(enclosed, labelled)), size, [0, 0, 0], index)


def segment_mask(
    segmentation: sitk.Image, value: int, image: sitk.Image, role: str, name: str,
    wholes: dict[int, sitk.Image] | None = None,
) -> sitk.Image:
    """Segment ``value`` on ``image``'s grid (UInt8 0/1), resampled if the grids differ: whole when others were
    drawn over it (``wholes``, as :class:`Guidance` keeps them from a multi-layer segmentation), and with the holes
    it encloses that another segment fills taken in: a single-layer labelmap holds one value per voxel, so a
    segment drawn inside another (a lesion in the gland) leaves a hole in it, often on one image only, and the
    hole's wall would guide as a surface. An unlabelled hole (a hollow organ's lumen) stays."""  # fmt: skip
    mask = _with_filled_holes(whole_mask(segmentation, value, wholes or {}), segmentation)
    if not same_grid(segmentation, image):
        # Linear, ties kept: nearest-neighbour rounded every tie one way (3 mm slices centred between a 1.5 mm
        # segmentation's moved an MR gland 0.76 mm along z: a helper's sweep); kept, a tie grows both faces alike.
        share = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), image, sitk.Transform(), sitk.sitkLinear, 0.0)
        mask = sitk.Cast(share >= TIE_SHARE, sitk.sitkUInt8)
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        raise InputError(
            f"segment '{name}' of the {role} segmentation lies outside the {role} image: "
            f"give the segmentation made on the {role} image (check that fixed and moving are not swapped)"
        )
    return mask


def distance_channel(mask: sitk.Image, clamp_mm: float) -> sitk.Image:
    """The signed distance to the mask's surface (negative inside), clamped at ``clamp_mm`` and divided
    by it: a float32 image in [-1, 1] whose mean squares pull surfaces together from up to ``clamp_mm`` away."""
    distance = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    clamped = sitk.Clamp(distance, sitk.sitkFloat32, -clamp_mm, clamp_mm)
    return sitk.Cast(clamped / clamp_mm, sitk.sitkFloat32)


def _check_points(guidance: Guidance) -> None:
    fixed, moving = guidance.fixed_points_lps, guidance.moving_points_lps
    check_pair(fixed, moving, "landmark guidance", "the fixed points", "the moving points")
    if fixed is None:
        return
    fixed, moving = np.asarray(fixed, float), np.asarray(moving, float)
    if fixed.ndim != 2 or fixed.shape[1] != 3 or fixed.shape != moving.shape:
        raise InputError(
            f"landmark lists do not pair up ({len(fixed)} fixed, {len(moving)} moving points): "
            "give the same landmarks, with the same labels, in both lists"
        )


def _check_choices(guidance: Guidance) -> None:
    if guidance.metric not in GUIDANCE_METRICS:
        raise InputError(f"unknown metric '{guidance.metric}': choose one of {', '.join(GUIDANCE_METRICS)}")
    check_pair(guidance.fixed_segmentation, guidance.moving_segmentation, "segment guidance",
               "the fixed segmentation", "the moving segmentation")  # fmt: skip
    if guidance.segments and not guidance.has_segments:
        raise InputError(
            "segments were named but no segmentations given: add --fixed-segmentation and --moving-segmentation"
        )
    if guidance.metric == "segments" and not (guidance.has_segments or guidance.has_points):
        raise InputError("--metric segments needs segmentations or landmarks: give both segmentations")
    if guidance.weight is not None and not (np.isfinite(guidance.weight) and guidance.weight > 0):
        raise InputError(f"guidance weight {guidance.weight} is not a positive number: give e.g. --guidance-weight 1")


def _keeps_scale(engine: str, preset: str) -> bool:
    """Whether a guided run of this preset can follow a size change from its start: a linear preset that scales
    (a guided deformable run starts from its rigid stage and skips the affine one)."""
    recipe = load_preset(engine, preset)
    return recipe.is_linear and recipe.scales


def prepare_guidance(
    fixed: sitk.Image, moving: sitk.Image, guidance: Guidance, engine: str, preset: str | None = None
) -> PreparedGuidance:
    """Check the guidance against the images (LPS) and build the engine's terms, weighted as ``guidance``
    says, else as ``preset`` or ``engine`` does by default; refuses bad input with the fix."""
    _check_choices(guidance)
    _check_points(guidance)
    swapped = swapped_segmentations(guidance.fixed_segmentation, guidance.moving_segmentation, fixed, moving)
    defaults = guidance_defaults(engine, preset)
    pairs, fixed_masks, moving_masks, channels, unpaired = [], [], [], [], None
    if guidance.has_segments:
        pairs, unpaired = _paired(guidance.fixed_segmentation, guidance.moving_segmentation, guidance.segments,
                                  (guidance.fixed_wholes, guidance.moving_wholes))  # fmt: skip
        weight = guidance.weight if guidance.weight is not None else float(defaults["segments"])
        for pair in pairs:
            fixed_mask = segment_mask(guidance.fixed_segmentation, pair.fixed_value, fixed, "fixed", pair.name,
                                      guidance.fixed_wholes)  # fmt: skip
            moving_mask = segment_mask(guidance.moving_segmentation, pair.moving_value, moving, "moving", pair.name,
                                       guidance.moving_wholes)  # fmt: skip
            fixed_masks.append(fixed_mask)
            moving_masks.append(moving_mask)
            clamp = defaults["distance_clamp_mm"]
            channels.append(
                Channel(pair.name, distance_channel(fixed_mask, clamp), distance_channel(moving_mask, clamp),
                        weight / len(pairs))
            )  # fmt: skip
    terms = EngineGuidance(channels=channels, intensity_weight=0.0 if guidance.metric == "segments" else 1.0)
    if guidance.has_points:
        terms.fixed_points_lps = np.asarray(guidance.fixed_points_lps, float)
        terms.moving_points_lps = np.asarray(guidance.moving_points_lps, float)
        terms.points_weight = guidance.weight if guidance.weight is not None else float(defaults["points"])
    said = [swapped, only_segments_warning(pairs), unpaired]
    if guidance.has_segments:
        said += pairing_doubts(guidance.fixed_segmentation, guidance.moving_segmentation, pairs, fixed_masks, moving_masks)
    if guidance.has_points and preset is not None and not _keeps_scale(engine, preset):
        said.append(size_change_warning(terms.fixed_points_lps, terms.moving_points_lps, preset))
    warnings = guidance.input_warnings + [warning for warning in said if warning]
    return PreparedGuidance(guidance, pairs, fixed_masks, moving_masks, terms, warnings, fixed, moving)
