"""Piecewise registration: one rigid transform per segment (a bone), and one displacement field that blends
them without folding.

1. A global registration (or the one given) aligns the images as a whole.
2. Each named segment is registered rigidly on its own, starting from the global result: the engine
   sees only the segment grown by a margin (on the fixed side, and the paired segment on the moving
   side) and is guided by that segment alone, plus the landmarks inside the grown segment.
3. A result that strays far from the global one (by default 20 degrees or 20 mm) is refused: that
   segment keeps the global transform, with a warning.
4. The rigid transforms and the global one are blended into one field (:mod:`.polyrigid`): each
   segment's own motion inside it, the global motion far from all, no folding between.

Every transform maps fixed points to moving points (LPS mm).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...core.errors import EngineError, InputError
from ...core.images import index_to_physical_matrix
from ...core.labels import segment_name_key
from ...core.metric import mutual_information
from ...core.rotations import pose_difference
from ...core.transforms import Transform
from ...engines.presets import Preset, load_preset
from ...engines.sampling import stage_sampling
from ..guided.guidance import Guidance, PreparedGuidance, SegmentPair, pair_segments, prepare_guidance, segment_mask
from ..guided.score import guidance_score
from ..register import RegistrationResult, register
from ..rules.masks import check_fixed_mask_size, mask_centroid
from ..settings import RegistrationSettings, check_names
from .left_out import left_out_warnings
from .polyrigid import DEFAULT_REACH_MM, DEFAULT_SPACING_MM, PolyrigidField, RigidPiece, polyrigid_field
from .records import PiecewiseResult, SegmentResult

Progress = Callable[..., None]  # (fraction 0..1, stage name, **details)

SEGMENT_PRESET = "rigid"
DEFAULT_MARGIN_MM = 10.0
# A segment's own result further than this from the global one is not physically plausible here.
MAX_ROTATION_FROM_GLOBAL_DEG = 20.0
MAX_SHIFT_FROM_GLOBAL_MM = 20.0
# A grown segment too small for the sampler is grown again by this factor, at most this many times.
MARGIN_GROWTH = 1.5
MARGIN_GROWTHS = 3
# The field may leave a segment's rigid motion by this much (mm) before a warning says where.
EXACT_TOLERANCE_MM = 0.1


def _span(report: Progress, low: float, high: float, prefix: str) -> Progress:
    """A progress callback mapping 0..1 into ``low``..``high`` of ``report``, stages named after ``prefix``."""

    def inner(fraction: float, stage: str, **details) -> None:
        if "span" in details:
            details["span"] = [low + (high - low) * value for value in details["span"]]
        report(low + (high - low) * fraction, f"{prefix}: {stage}", **details)

    return inner


def grow_mask(mask: sitk.Image, margin_mm: float) -> sitk.Image:
    """The mask's voxels and every voxel within ``margin_mm`` mm of them (UInt8 0/1, same grid)."""
    distance = sitk.SignedMaurerDistanceMap(
        sitk.Cast(mask != 0, sitk.sitkUInt8), insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.Cast(distance <= margin_mm, sitk.sitkUInt8)


def coarsest_voxel_mm(recipe: Preset, fixed: sitk.Image) -> float:
    """The widest voxel (mm) the preset's engine sees the fixed image with, at its coarsest level."""
    return max(float(stage.voxel_mm.max()) for stage in stage_sampling(recipe, fixed))


def _grown_fixed_mask(
    recipe: Preset, fixed: sitk.Image, segment: sitk.Image, margin_mm: float, name: str
) -> tuple[float, sitk.Image, list[str]]:
    """The segment grown by ``margin_mm``, and by more until the engine's sampler accepts it (InputError
    if it still does not after MARGIN_GROWTHS growths). Returns (margin mm, mask, warnings).

    The margin is at least one voxel of the preset's coarsest level, so that level sees the segment's
    surroundings: at 3.5 mm voxels (14 mm at the coarsest level) a femoral head 28 mm wide came out
    0.8 to 1.8 mm off (mean over its targets) with a 10 mm margin, 0.1 to 0.5 mm with 14 mm.
    """
    margin, growths = max(float(margin_mm), coarsest_voxel_mm(recipe, fixed)), 0
    while True:
        mask = grow_mask(segment, margin)
        try:
            check_fixed_mask_size(recipe, fixed, mask)
            break
        except InputError as error:
            if growths == MARGIN_GROWTHS:
                raise InputError(f"segment '{name}' grown by {margin:.0f} mm: {error}") from None
        margin, growths = margin * MARGIN_GROWTH, growths + 1
    warnings = []
    if growths:
        warnings.append(
            f"grew the margin around '{name}' to {margin:.0f} mm: the segment was too small for the sampler"
        )
    return margin, mask, warnings


def _points_inside(points_lps: np.ndarray, mask: sitk.Image) -> np.ndarray:
    """Which points (N, 3; LPS mm) fall in a set voxel of ``mask`` (nearest voxel)."""
    inverse = np.linalg.inv(index_to_physical_matrix(mask))
    index = np.floor(np.asarray(points_lps, float) @ inverse[:3, :3].T + inverse[:3, 3] + 0.5).astype(np.int64)
    size = np.asarray(mask.GetSize())
    inside = np.all((index >= 0) & (index < size), axis=1)
    found = np.zeros(len(index), bool)
    array = sitk.GetArrayViewFromImage(mask)
    found[inside] = array[index[inside, 2], index[inside, 1], index[inside, 0]] != 0
    return found


def segment_guidance(guidance: Guidance, name: str, fixed_mask: sitk.Image) -> Guidance:
    """The guidance for one segment's own registration: that segment (``name``, or "FIXED=MOVING" for two named
    apart), and the landmarks whose fixed point lies inside ``fixed_mask`` (the grown segment); the weight and
    metric as given."""
    fixed_points, moving_points, labels = None, None, None
    if guidance.has_points:
        inside = _points_inside(guidance.fixed_points_lps, fixed_mask)
        if inside.any():
            fixed_points = np.asarray(guidance.fixed_points_lps, float)[inside]
            moving_points = np.asarray(guidance.moving_points_lps, float)[inside]
            labels = None if guidance.point_labels is None else [
                label for label, kept in zip(guidance.point_labels, inside) if kept]  # fmt: skip
    return replace(guidance, segments=[name], fixed_points_lps=fixed_points, moving_points_lps=moving_points,
                   point_labels=labels, input_warnings=[])  # fmt: skip


@dataclass
class _SegmentInputs:
    """One segment, ready to register: its masks (the grown ones for the engine) and its own guidance."""

    pair: SegmentPair
    fixed_segment: sitk.Image  # UInt8 on the fixed grid
    margin_mm: float
    fixed_mask: sitk.Image  # the segment grown by margin_mm, fixed grid
    moving_mask: sitk.Image  # the paired moving segment grown by margin_mm, moving grid
    guidance: Guidance
    prepared: PreparedGuidance  # for the scores before and after
    warnings: list[str]


def _segment_inputs(
    fixed: sitk.Image,
    moving: sitk.Image,
    guidance: Guidance,
    pair: SegmentPair,
    recipe: Preset,
    margin_mm: float,
    engine: str,
) -> _SegmentInputs:
    """Check and prepare one segment before any engine runs (InputError if its masks cannot work)."""
    fixed_segment = segment_mask(guidance.fixed_segmentation, pair.fixed_value, fixed, "fixed", pair.name,
                                 guidance.fixed_wholes)  # fmt: skip
    moving_segment = segment_mask(guidance.moving_segmentation, pair.moving_value, moving, "moving", pair.name,
                                  guidance.moving_wholes)  # fmt: skip
    margin, fixed_mask, warnings = _grown_fixed_mask(recipe, fixed, fixed_segment, margin_mm, pair.name)
    own_guidance = segment_guidance(guidance, _entry(pair), fixed_mask)
    return _SegmentInputs(
        pair=pair,
        fixed_segment=fixed_segment,
        margin_mm=margin,
        fixed_mask=fixed_mask,
        moving_mask=grow_mask(moving_segment, margin),
        guidance=own_guidance,
        prepared=prepare_guidance(fixed, moving, own_guidance, engine, recipe.name),
        warnings=warnings,
    )


@dataclass
class _SegmentRun:
    """What every segment's registration shares."""

    engine: str
    recipe: Preset
    start: Transform  # the global result (fixed -> moving)
    max_rotation_deg: float
    max_shift_mm: float
    seed: int
    threads: int | None
    workdir: str | Path | None


def _register_segment(
    fixed: sitk.Image, moving: sitk.Image, inputs: _SegmentInputs, run: _SegmentRun, progress: Progress
) -> SegmentResult:
    """One segment's own rigid registration, started from the global result, in the segment's grown masks."""
    started = time.perf_counter()
    name, warnings = inputs.pair.name, list(inputs.warnings)
    registration, reason, rotation, shift = None, "", None, None
    try:
        registration = register(
            fixed, moving, engine=run.engine, preset=run.recipe.name,
            fixed_mask=inputs.fixed_mask, moving_mask=inputs.moving_mask, initial_transform=run.start, init="none",
            seed=run.seed, threads=run.threads, progress=progress, workdir=run.workdir, guidance=inputs.guidance,
        )  # fmt: skip
    except (EngineError, InputError) as error:
        reason = f"its registration failed ({str(error).strip().splitlines()[0]})"
    if registration is not None:
        centre = mask_centroid(inputs.fixed_segment)
        rotation, shift = pose_difference(registration.transform.matrix, run.start.matrix, centre)
        if rotation > run.max_rotation_deg or shift > run.max_shift_mm:
            reason = (
                f"its result lies {rotation:.1f} degrees and {shift:.1f} mm from the global one (at most "
                f"{run.max_rotation_deg:g} degrees and {run.max_shift_mm:g} mm are plausible)"
            )
        # A grown segment covers a small share of the image by design: register's advice to crop does not apply.
        warnings += [warning for warning in registration.warnings if " mask covers " not in warning]
    kept = not reason
    transform = registration.transform if kept else run.start
    if not kept:
        warnings.append(f"kept the global transform for '{name}': {reason}")
    return SegmentResult(
        name=name,
        transform=transform,
        kept=kept,
        reason=reason,
        rotation_deg=rotation,
        shift_mm=shift,
        margin_mm=inputs.margin_mm,
        metric_before=mutual_information(fixed, moving, run.start, inputs.fixed_mask),
        metric_after=mutual_information(fixed, moving, transform, inputs.fixed_mask),
        score_before=guidance_score(inputs.prepared, run.start),
        score_after=guidance_score(inputs.prepared, transform),
        seconds=time.perf_counter() - started,
        registration=registration,
        warnings=warnings,
    )


def _entry(pair: SegmentPair) -> str:
    """How a segment pair is named to :func:`..guided.guidance.pair_segments` again: "FIXED=MOVING" when the two
    were paired as given (named apart), else the name."""
    return f"{pair.name}={pair.moving_name}" if pair.paired_by == "given" and pair.moving_name else pair.name


def _as_given(pieces: list[str], given: list[str] | None) -> list[str]:
    """Each piece named as the --segments entry that pairs it ("gland" -> "gland=prostate"), when one does: the
    pieces of a pair named apart had been refused, the refusal advising the --segments already given (a helper's
    walk through the README)."""
    pairs = {}
    for entry in given or []:
        if "=" in str(entry):
            for side in str(entry).split("=", 1):
                pairs.setdefault(segment_name_key(side), str(entry))
    return [piece if "=" in piece else pairs.get(segment_name_key(piece), piece) for piece in pieces]


def _checked_pairs(guidance: Guidance | None, segments: list[str]) -> list[SegmentPair]:
    if not segments:
        raise InputError(
            "piecewise registration needs the segments to register one by one: e.g. --piecewise sacrum,left_hip"
        )
    if guidance is None or not guidance.has_segments:
        raise InputError(
            "piecewise registration needs segmentations: add --fixed-segmentation and --moving-segmentation"
        )
    return pair_segments(guidance.fixed_segmentation, guidance.moving_segmentation,
                         _as_given(segments, guidance.segments), (guidance.fixed_wholes, guidance.moving_wholes))


def _field_warnings(blend: PolyrigidField) -> list[str]:
    warnings = []
    if blend.minimum_jacobian <= 0:
        warnings.append(
            f"the combined field folds (Jacobian determinant down to {blend.minimum_jacobian:.3f}): "
            "check the segments' transforms, or use a finer field spacing"
        )
    for name, error in blend.exact_error_mm.items():
        if error > EXACT_TOLERANCE_MM:
            warnings.append(
                f"the combined field leaves the rigid motion of '{name}' by up to {error:.2f} mm at its edge next to "
                "another segment that moves differently (there the field gives way rather than fold); the segment's "
                "own transform is exact"
            )
    return warnings


@dataclass(frozen=True)
class PiecewiseSettings:
    """How :func:`register_piecewise` runs.

    ``registration``: the global registration's settings (preset rigid unless given), whose engine, seed and
    threads the segments' own registrations share. ``global_result`` (linear) is used instead of running it.
    ``margin_mm``: how far (mm) around each segment its registration looks; at least one voxel of the
    rigid preset's coarsest level, and more when the sampler needs it.
    ``field_spacing_mm``/``reach_mm``: the field's grid spacing and how far (mm) a segment's motion reaches
    into its surroundings (see :mod:`.polyrigid`).
    A segment whose result lies more than ``max_rotation_from_global_deg`` degrees or
    ``max_shift_from_global_mm`` mm from the global result keeps the global transform, with a warning.
    """

    registration: RegistrationSettings = field(default_factory=lambda: RegistrationSettings(preset=SEGMENT_PRESET))
    global_result: RegistrationResult | None = None
    margin_mm: float = DEFAULT_MARGIN_MM
    field_spacing_mm: float = DEFAULT_SPACING_MM
    reach_mm: float = DEFAULT_REACH_MM
    max_rotation_from_global_deg: float = MAX_ROTATION_FROM_GLOBAL_DEG
    max_shift_from_global_mm: float = MAX_SHIFT_FROM_GLOBAL_MM

    def overridden(self, overrides: dict) -> PiecewiseSettings:
        """These settings with ``overrides``: names of these fields, or of the global registration's settings."""
        check_names(overrides, type(self), RegistrationSettings)
        own = {name: value for name, value in overrides.items() if name in {f.name for f in fields(self)}}
        others = {name: value for name, value in overrides.items() if name not in own}
        registration = own.pop("registration", self.registration).overridden(others)
        return replace(self, **own, registration=registration)


def register_piecewise(
    fixed: sitk.Image,
    moving: sitk.Image,
    guidance: Guidance,
    segments: list[str],
    settings: PiecewiseSettings | None = None,
    *,
    progress: Progress | None = None,
    workdir: str | Path | None = None,
    **overrides,
) -> PiecewiseResult:
    """Register ``moving`` to ``fixed`` (LPS images) piece by piece: a global registration, then one rigid
    registration per named segment, blended into one displacement field (fixed -> moving, LPS mm).

    ``guidance`` must hold both segmentations; ``segments`` names the segments (or label values) to register
    on their own. ``settings`` (see :class:`PiecewiseSettings`) and ``overrides``, its fields or those of
    the global registration's :class:`.RegistrationSettings` by name (``engine="ants"``, ``margin_mm=15``).
    ``workdir`` holds the engines' scratch folders.
    """
    started = time.perf_counter()
    report = progress or (lambda fraction, stage, **details: None)
    settings = (settings or PiecewiseSettings()).overridden(overrides)
    pairs = _checked_pairs(guidance, segments)
    engine, seed, threads = settings.registration.engine, settings.registration.seed, settings.registration.threads
    recipe = load_preset(engine, SEGMENT_PRESET)
    inputs = [_segment_inputs(fixed, moving, guidance, pair, recipe, settings.margin_mm, engine) for pair in pairs]
    global_result = settings.global_result
    if global_result is None:
        global_result = register(
            fixed, moving, settings.registration, progress=_span(report, 0.0, 0.4, "global"), workdir=workdir,
            guidance=guidance,
        )  # fmt: skip
    if not global_result.transform.is_linear:
        raise InputError(
            f"piecewise registration starts from a linear global result, not a {global_result.transform.kind} one: "
            "use the rigid or affine preset"
        )
    run = _SegmentRun(
        engine, recipe, global_result.transform, settings.max_rotation_from_global_deg,
        settings.max_shift_from_global_mm, seed, threads, workdir,
    )  # fmt: skip
    results: dict[str, SegmentResult] = {}
    for number, segment in enumerate(inputs):
        low, width = 0.4 + 0.52 * number / len(inputs), 0.52 / len(inputs)
        span = _span(report, low, low + width, segment.pair.name)
        results[segment.pair.name] = _register_segment(fixed, moving, segment, run, span)
    pieces = [RigidPiece(s.pair.name, s.fixed_segment, results[s.pair.name].transform) for s in inputs]
    report(0.92, "blending the segments' motions")
    blend = polyrigid_field(
        fixed, global_result.transform, pieces, spacing_mm=settings.field_spacing_mm, reach_mm=settings.reach_mm
    )
    warnings = [f"global: {warning}" for warning in global_result.warnings]
    # A segment's run repeats what the global run already said of the shared guidance (a lone pair's pairing).
    repeated = {warning for segment in inputs for warning in segment.prepared.warnings} & set(global_result.warnings)
    warnings += [f"{name}: {warning}" for name, result in results.items() for warning in result.warnings
                 if warning not in repeated]  # fmt: skip
    warnings += _field_warnings(blend)
    warnings += left_out_warnings(fixed, moving, guidance, [p.name for p in pairs], global_result.transform,
                                  blend.transform, engine)  # fmt: skip
    report(1.0, "done")
    return PiecewiseResult(
        global_result=global_result,
        segments=results,
        field=blend.transform,
        minimum_jacobian=blend.minimum_jacobian,
        blend=blend,
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )
