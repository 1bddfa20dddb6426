"""The one registration entry point, whichever engine runs it: check the inputs, choose the starts, run
the engine from each (:mod:`.runs`), keep a result no worse than its start, record how it was made
(:mod:`.outcome`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import EngineError, ImagesApartError
from ..core.field_reach import field_edge_warnings
from ..core.images import scaled_image
from ..core.metric import mutual_information
from ..core.transforms import Transform
from ..engines.run import lost_overlap
from .affine_opinion import warn_if_uneven_by_affine
from .guided.guidance import Guidance
from .guided.landmark_doubt import landmark_doubts
from .other_way import agreement, better_way, other_way_reason, swapped
from .outcome import (
    keep_no_worse,
    probe_if_slab,
    provenance,
    start_after_lost_overlap,
    start_if_scale_drifted,
    warn_if_far,
    warn_if_weak,
    warn_if_wrong_size,
)
from .placed_first import placed_first_reason, placed_then_registered
from .rigid_first import rigid_first
from .rules.size_check import check_sizes_apart
from .rules.thin_moving import thin_moving, thin_moving_hint
from .rules.tissue_shape import hint_if_doubted, hint_if_lost
from .runs import TIE, checked_run, pick_run, plan_runs, run_engines
from .settings import Progress, RegistrationSettings, check_kind
from .summary import Provenance, RegistrationSummary
from .without_affine import again_after_collapse, again_without_affine
from .working_scale import back_to_size, scale_for, scaled_guidance, scaled_transform

# What the summary calls the metric: the one mutual information of core/metric.py.
METRIC_NAME = "mutual_information"


@dataclass
class RegistrationResult:
    """A registration's outcome. ``transform`` maps fixed to moving points (LPS mm), initial transform included."""

    transform: Transform
    inverse: Transform | None
    metric_before: float  # MI (nats, higher is better) at the initial transform, else --init's start (image centres)
    metric_after: float
    seconds: float
    log: str  # the engine's log of every run, each under a header naming its start
    provenance: Provenance
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> RegistrationSummary:
        """The record of the result and how it was made (JSON-ready through ``to_dict``)."""
        linear = self.transform.is_linear
        return RegistrationSummary(
            transform_kind=self.transform.kind,
            matrix_lps=np.round(self.transform.matrix, 9).tolist() if linear else None,
            has_inverse=self.inverse is not None,
            metric_name=METRIC_NAME,
            metric_before=self.metric_before,
            metric_after=self.metric_after,
            seconds=round(self.seconds, 3),
            warnings=list(self.warnings),
            provenance=self.provenance,
        )


AUTOMATIC_STARTS = ("header", "centre", "any-pose")


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    settings: RegistrationSettings | None = None,
    *,
    progress: Progress | None = None,
    workdir: str | Path | None = None,
    guidance: Guidance | None = None,
    **overrides,
) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` (LPS images) and return the fixed -> moving transform (LPS mm).

    ``settings`` (engine, preset, masks, initial transform, init, seed...; see :class:`.RegistrationSettings`)
    and ``overrides``, the same fields by name (``register(fixed, moving, engine="ants", preset="rigid")``).
    ``init`` auto runs the engine from the any-pose start and, if it differs, from the image-centre start
    too, and keeps the result with the higher metric.
    ``guidance`` (segmentations, landmarks; see :mod:`.guided.guidance`) adds segment and landmark terms to
    the metric, gives the start under ``init`` auto (:mod:`.guided.start`; under geometry or moments, the
    segments' centroids), and must not get worse for the result to be kept. ``workdir`` holds the engine's
    scratch folders (default: the system's temp folder).
    Both images under 40 mm across (a mouse brain) are registered at a larger size (:mod:`.working_scale`).
    """
    for name, image in (("fixed", fixed), ("moving", moving)):
        check_kind(image, sitk.Image, name, "a SimpleITK image (core.images.read_image(path))")
    settings = (settings or RegistrationSettings()).overridden(overrides)
    check_sizes_apart(fixed, moving, settings.initial_transform)  # on the images' own mm, before any working scale
    k = scale_for(fixed, moving, settings)
    try:
        if k != 1.0:
            larger = replace(settings, fixed_mask=scaled_image(settings.fixed_mask, k),
                             moving_mask=scaled_image(settings.moving_mask, k),
                             initial_transform=scaled_transform(settings.initial_transform, k))  # fmt: skip
            result = back_to_size(_register(scaled_image(fixed, k), scaled_image(moving, k), larger, progress,
                                            workdir, scaled_guidance(guidance, k)), k, fixed, moving)  # fmt: skip
        else:
            result = _register_either_way(fixed, moving, settings, progress, workdir, guidance)
    except EngineError as error:
        hint_if_lost(error, fixed, moving)
        raise
    if not result.provenance.other_way_round:  # else checked the other way round, in its own frame
        warn_if_far(result, fixed, moving, settings, guided=guidance is not None and not guidance.is_empty)
    hint_if_doubted(result.warnings, fixed, moving)
    result.warnings[:0] = field_edge_warnings(settings.initial_transform, fixed)
    return result


def _register_either_way(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings,
                         progress: Progress | None, workdir: str | Path | None,
                         guidance: Guidance | None) -> RegistrationResult:  # fmt: skip
    """A thin moving image is registered both ways round, keeping the better (:mod:`.other_way`); a small one (not
    thin) the other way round only when no start overlapped the way given. Each way reports half of the progress.
    Under a nonlinear preset a thin one is placed by a rigid run first, then registered from there
    (:mod:`.placed_first`)."""
    report = progress or (lambda fraction, stage, **details: None)
    placed = placed_first_reason(fixed, moving, settings, guidance)
    if placed is not None:
        return placed_then_registered(
            placed, settings,
            lambda rigid: _register_either_way(fixed, moving, rigid, _half(report, 0.0), workdir, None),
            lambda started: _register(fixed, moving, started, _half(report, 0.5), workdir, None),
        )  # fmt: skip
    reason = other_way_reason(fixed, moving, settings, guidance)
    if reason is None:
        return _register(fixed, moving, settings, progress, workdir, guidance)
    result, failure = None, None
    try:
        result = _register(fixed, moving, settings, _half(report, 0.0), workdir, guidance)
    except (EngineError, ImagesApartError) as error:
        if isinstance(error, EngineError) and not lost_overlap(str(error)):
            raise
        failure = error
    if result is not None and thin_moving(fixed, moving) is None:
        # Small, it registered as given: turned round as well, the tutorial's shrunken light sheet (7% of the
        # head's box, 0.57 mm either way) was doubted as "the two ways round disagree" by 11 mm.
        report(1.0, "done")
        return result
    report(0.5, "registering the other way round: the moving image is thin or small")

    def other_way() -> RegistrationResult:
        turned = swapped(settings)
        other = _register(moving, fixed, turned, _half(report, 0.5), workdir, None)
        # Where its fixed image is the one sampled: an ultrasound's view mask is the fixed one only this way round.
        warn_if_far(other, moving, fixed, turned, guided=False)
        return other

    return better_way(result, failure, other_way, fixed, moving, agreement(fixed, moving, settings), reason)


def _half(report: Progress, start: float) -> Progress:
    """``report`` for one of two runs: its progress (and an engine's span) mapped into [start, start + 0.5]."""

    def half(fraction: float, stage: str, **details) -> None:
        if "span" in details:
            details["span"] = [start + value / 2 for value in details["span"]]
        report(start + fraction / 2, stage, **details)

    return half


def _register(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings, progress: Progress | None,
              workdir: str | Path | None, guidance: Guidance | None) -> RegistrationResult:  # fmt: skip
    started = time.perf_counter()
    report = progress or (lambda fraction, stage, **details: None)
    run = checked_run(fixed, moving, settings, guidance, report, workdir)
    plan = plan_runs(run)
    run.report(0.04, "metric before")
    metric_before = mutual_information(run.fixed, run.moving, plan.starts.before, run.fixed_mask)  # outliers clipped
    run.lap("metric_before_s")
    plan = rigid_first(run, plan)
    engine_runs = run_engines(run, plan)
    best = pick_run(engine_runs.finished, run.warnings) or again_after_collapse(run, plan, engine_runs)
    fallback = start_after_lost_overlap(run, plan, engine_runs) if best is None else None
    if best is None and fallback is None:
        engine_runs.failure.log = "\n".join(engine_runs.logs)
        if lost_overlap(str(engine_runs.failure)) and (hint := thin_moving_hint(run.fixed, run.moving, run.fixed_mask)):
            engine_runs.failure.hint = hint
        raise engine_runs.failure
    if fallback is not None:
        best, kept, guided = fallback
    else:
        # A start the search added itself (the headers' pose, the centres) may fail where another held: the
        # provenance keeps it; said among a good result's warnings it read as a failure (a helper's sweep).
        run.warnings += [
            f"the engine failed from the {tried['start']} start: {tried['error']}"
            for tried in engine_runs.tried if "error" in tried and tried["start"] not in AUTOMATIC_STARTS
        ]  # fmt: skip
        kept, guided = keep_no_worse(run, plan, best)
        kept = probe_if_slab(run, start_if_scale_drifted(run, plan, kept, best))
        best, kept = again_without_affine(run, plan, engine_runs, best, kept)
        if kept.kept != "result":  # the tie was between results, and neither is returned
            run.warnings[:] = [warning for warning in run.warnings if not warning.startswith(TIE)]
    warn_if_weak(run, kept, metric_before, plan, best[2])
    warn_if_wrong_size(run, kept)
    warn_if_uneven_by_affine(run, plan, kept, best[2])
    run.warnings += landmark_doubts(run.prepared, kept.transform, run.fixed, run.moving, best[3], run.fixed_mask,
                                    kept.metric_after)  # fmt: skip
    run.timings.update(best[4].timings)
    seconds = time.perf_counter() - started
    made = provenance(run, plan, engine_runs, best, kept, guided)
    run.report(1.0, "done")
    return RegistrationResult(
        transform=kept.transform,
        inverse=kept.inverse,
        metric_before=metric_before,
        metric_after=kept.metric_after,
        seconds=seconds,
        log="\n".join(engine_runs.logs),
        provenance=made,
        warnings=run.warnings,
    )
