"""The first steps of :func:`.register.register`: check the inputs, choose the starts, run the engine
from each, and pick the run to keep."""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import EngineError, ImagesApartError, InputError
from ..core.images import (
    MIN_MASK_COVERAGE,
    colour_as_grey,
    mask_coverage,
    physical_center,
    validate_image,
    validate_mask,
)
from ..core.intensity_scale import scaled_for_engines
from ..core.metric import mutual_information, overlap_fraction
from ..core.outliers import clip_outliers
from ..core.transforms import Transform
from ..engines.output import EngineOutput
from ..engines.presets import Preset, load_preset
from ..engines.registry import engine_spec
from ..engines.request import EngineRequest
from ..engines.run import run_engine
from .guided.guidance import Guidance, PreparedGuidance, prepare_guidance
from .guided.run import guided_rank, guided_starts
from .guided.start_score import StartScorer
from .guided.views import SegmentViews
from .pose.initialize import StartingPoses, starting_poses
from .pose.same_start import same_start
from .rules.keep import KEEP_TOLERANCE_NATS, check_linear_result
from .rules.masks import check_fixed_mask_size, mask_aware_starts, mask_centroid
from .rules.sampling_region import overlap_regions, sampling_regions
from .rules.thin_moving import thin_moving_hint
from .rules.view_mask import IN_VIEW, VIEW_MASK_SOURCE, from_view, small_view_of, view_mask
from .settings import Progress, RegistrationSettings

# Below this fraction of the fixed image mapping into the moving image, no metric can work.
MIN_OVERLAP = 0.02
# With segments, --init geometry and moments start from the segments' centroids, not the boxes' or foregrounds'.
CENTRE_INITS = ("geometry", "moments")


# Said when --init any-pose leaves the segments out of the start: a helper's TRUS pair ended 11.4 mm off, silently,
# where auto's guided start ends 3.5 mm off.
ANY_POSE_UNGUIDED = (
    "--init any-pose searched every pose by the intensities alone: the segments did not choose the start, as they "
    "do under auto; where the intensities do not correspond (ultrasound, histology), leave --init at auto"
)


def start_from_guidance(init: str, has_segments: bool) -> bool:
    """Whether a guided run's start comes from its guidance, replacing the initial transform's and ``init``'s own:
    under auto the guided search; under geometry or moments with segments their centroids (CENTRE_INITS)."""
    return init == "auto" or (init in CENTRE_INITS and has_segments)


@dataclass
class RegistrationRun:
    """What every step of one registration shares: its checked inputs, and the warnings and timings (s)
    the steps add to."""

    fixed: sitk.Image
    moving: sitk.Image
    settings: RegistrationSettings  # its masks validated
    recipe: Preset
    prepared: PreparedGuidance | None
    report: Progress
    workdir: str | Path | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    clock: float = field(default_factory=time.perf_counter)

    @property
    def fixed_mask(self) -> sitk.Image | None:
        return self.settings.fixed_mask

    @property
    def moving_mask(self) -> sitk.Image | None:
        return self.settings.moving_mask

    def lap(self, name: str) -> None:
        """Add the seconds since the last lap to ``timings[name]`` (runs from two starts add up)."""
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0.0) + now - self.clock, 3)
        self.clock = now


# The progress bar: finding the start and the metric before fill the first 5%, the engine runs the next 90%.
ENGINE_SPAN = (0.05, 0.95)


@dataclass
class RunPlan:
    """The starts the engine runs from, and where it samples the fixed image for each."""

    starts: StartingPoses
    guided_candidates: dict | None  # the guided start's record of the candidates it weighed
    runs: list[tuple[str, Transform]]  # (start name, fixed -> moving)
    regions: dict  # start name -> its SamplingRegion, where the engine samples only part of the fixed image
    rigid_stage: str = ""  # a guided deformable run's rigid stages: "kept", or why not (see .rigid_first)
    from_guided_start: bool = False  # its deformable stages run from the guided start itself
    span: tuple[float, float] = ENGINE_SPAN  # the share of the progress bar the engine runs fill, in turn
    rigid_files: list[str] = field(default_factory=list)  # the preset files of a guided run's rigid stages, if run


@dataclass
class EngineRuns:
    """The engine's runs: each finished one as (rank, metric, start name, start, output), and a record of each."""

    finished: list[tuple] = field(default_factory=list)
    tried: list[dict] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    failure: EngineError | None = None


def working_image(image: sitk.Image, role: str) -> tuple[sitk.Image, list[str]]:
    """``image`` as every run registers and measures it (colour as grey, checked, outliers clipped), with notes
    saying what was done."""
    image, grey = colour_as_grey(image, role)
    validate_image(image, role)
    image, clipped = clip_outliers(image, role)
    image, scaled = scaled_for_engines(image, role)
    return image, [note for note in (grey, clipped, scaled) if note]


def checked_run(
    fixed: sitk.Image,
    moving: sitk.Image,
    settings: RegistrationSettings,
    guidance: Guidance | None,
    progress: Progress,
    workdir: str | Path | None,
) -> RegistrationRun:
    """The run's inputs checked (images, masks, the preset's sampler against the fixed mask) and its guidance
    prepared, before any search: bad input is refused at once."""
    started = time.perf_counter()
    progress(0.0, "checking inputs")
    recipe = load_preset(settings.engine, settings.preset)
    masks, warnings = {}, []
    (fixed, fixed_notes), (moving, moving_notes) = working_image(fixed, "fixed image"), working_image(moving, "moving image")
    warnings += fixed_notes + moving_notes
    spec = engine_spec(settings.engine)
    if spec.default_threads == 1 and (settings.threads or 1) > 1:
        warnings.append(f"{spec.label} repeats a result only on 1 thread: on {settings.threads} "
                        "this result will differ from run to run (by up to a few mm), and its recorded command will "
                        "not repeat it exactly")  # fmt: skip
    for role, mask, image in (
        ("fixed mask", settings.fixed_mask, fixed),
        ("moving mask", settings.moving_mask, moving),
    ):
        if mask is None:
            continue
        masks[role] = validate_mask(mask, image, role)
        coverage = mask_coverage(masks[role])
        if coverage < MIN_MASK_COVERAGE:
            warnings.append(
                f"{role} covers {coverage:.1%} of the image: crop the image to the region instead, "
                "or the sampler may not find enough samples"
            )
    settings = replace(settings, fixed_mask=masks.get("fixed mask"), moving_mask=masks.get("moving mask"))
    wanted = guidance is not None and not guidance.is_empty
    searched = settings.init == "auto" and settings.initial_transform is None
    if settings.fixed_mask is None and not wanted and searched and (view := view_mask(fixed, moving, recipe)):
        sources = {**(settings.sources or {}), "fixed_mask": VIEW_MASK_SOURCE}
        settings = replace(settings, fixed_mask=view, sources=sources)
    elif settings.fixed_mask is not None and not wanted and searched and small_view_of(fixed, moving) is not None:
        # The user's fan mask: searched, a phantom fan 15 mm off at the headers had ended 86 mm off, unwarned.
        settings = replace(settings, sources={**(settings.sources or {}), IN_VIEW: True})
    check_fixed_mask_size(recipe, fixed, settings.fixed_mask)
    initial = settings.initial_transform
    replaced = wanted and start_from_guidance(settings.init, guidance.has_segments)
    if replaced and initial is not None and not initial.is_linear:
        raise InputError("a nonlinear initial transform cannot start a guided registration (its start comes from the "
                         "segments or landmarks and would replace it): harden the initial transform into the moving "
                         "image first, give a linear one, or use --init none to start from it as it is")  # fmt: skip
    prepared = prepare_guidance(fixed, moving, guidance, settings.engine, settings.preset) if wanted else None
    warnings += prepared.warnings if prepared is not None else []
    recipe.check_needs(prepared is not None and bool(prepared.pairs))
    run = RegistrationRun(fixed, moving, settings, recipe, prepared, progress, workdir, warnings, clock=started)
    run.lap("checks_s")
    return run


def plan_runs(run: RegistrationRun) -> RunPlan:
    """The starts (the guided start, or those of ``settings.init``), the ones the engine can run from, and
    where it samples the fixed image from each."""
    run.report(0.01, "finding the starting pose")
    fixed, moving, settings, prepared = run.fixed, run.moving, run.settings, run.prepared
    scale = run.recipe.scales and run.recipe.is_linear
    guided = prepared is not None and bool(prepared.pairs or prepared.guidance.has_points)
    searched = settings.init == "auto"
    if guided and start_from_guidance(settings.init, bool(prepared.pairs)):
        if prepared.pairs:  # built once, kept on the guidance; on a 512 x 512 x 200 CT about a minute
            run.report(0.015, "finding the starting pose: where each image has data")
            SegmentViews.of(prepared)  # the centroid start (no search) needs it too
            if searched:
                run.report(0.02, "finding the starting pose: the segments' surfaces and the intensities inside them")
                StartScorer.of(prepared, fixed, moving, settings.seed)
                run.report(0.03, "finding the starting pose: scoring rotations of the segments")
        starts, guided_candidates = guided_starts(fixed, moving, prepared, settings.initial_transform, settings.seed,
                                                  scale, search=searched)  # fmt: skip
    elif from_view(settings):
        # A small view inside a larger scan: the search's foreground centres put it at the scan's centre.
        header = Transform.identity()
        starts, guided_candidates = StartingPoses([("header", header)], header), None
    else:
        starts, guided_candidates = starting_poses(fixed, moving, settings, scale), None
        if guided and prepared.pairs and settings.init == "any-pose":
            run.warnings.append(ANY_POSE_UNGUIDED)
    run.warnings += starts.warnings
    masked = run.fixed_mask is not None or run.moving_mask is not None
    runs = _runs_for_masks(run, starts.poses) if masked else _runs_that_overlap(run, starts)
    regions = {}
    if run.fixed_mask is None:  # without one, sample only where the moving image lies if too little of it did
        regions = sampling_regions(runs, fixed, moving, run.recipe, run.moving_mask, settings.seed)
    if starts.search is not None and starts.search.scale is not None:  # partial tissue: where both exist
        regions.update(overlap_regions(runs, fixed, moving, run.recipe, run.fixed_mask, run.moving_mask))
    run.lap("init_s")
    return RunPlan(starts, guided_candidates, runs, regions)


def _runs_that_overlap(run: RegistrationRun, starts: StartingPoses) -> list:
    """The starts at which the images overlap: one that leaves them apart makes every engine fail;
    skip it (with a warning), and stop if none is left."""
    overlaps = [overlap_fraction(run.fixed, run.moving, pose) for _, pose in starts.poses]
    runs = [(name, pose) for (name, pose), overlap in zip(starts.poses, overlaps) if overlap >= MIN_OVERLAP]
    initial = run.settings.initial_transform
    if not runs and initial is not None and run.prepared is None and not initial.is_identity(1e-6):  # not guided
        without = overlap_fraction(run.fixed, run.moving, Transform.identity())
        if without >= MIN_OVERLAP:  # the images overlap as they are: the file is wrong (a transform-file sweep)
            raise ImagesApartError(f"the initial transform given places the images apart (only {max(overlaps):.0%} of "
                                   f"the fixed image maps into the moving image under it, {without:.0%} without it): "
                                   "check that it belongs to these images and maps fixed to moving points (not its "
                                   "inverse; mm, not m), or leave it out")  # fmt: skip
    if not runs:
        fix = "prealign with landmarks (FiducialPrealign or mmreg prealign)"
        if starts.search is None:
            fix += " or use --init any-pose"
        # A moving image too small for the fixed samples may lie inside the fixed one: said so, not only "apart".
        short = thin_moving_hint(run.fixed, run.moving) if run.prepared is None else None  # guidance names sides
        said = f"{short}, or {fix}" if short else f"images do not overlap: {fix}"
        raise ImagesApartError(f"{said} (only {max(overlaps):.0%} of the fixed image maps into the moving image)")
    run.warnings += [
        f"skipped the {name} start: only {overlap:.0%} of the fixed image maps into the moving image there"
        for (name, _), overlap in zip(starts.poses, overlaps) if overlap < MIN_OVERLAP
    ]  # fmt: skip
    return runs


def _runs_for_masks(run: RegistrationRun, poses: list) -> list:
    """With masks, the engine samples the fixed mask (the whole fixed image without one) and counts
    a sample only inside the moving image and mask: the starts where enough of them land, moved
    onto the mask centroids where too few did (see :mod:`.rules.masks`); two that became one run once."""
    fixed_mask = run.fixed_mask
    checked = mask_aware_starts(
        poses, run.fixed, run.moving, run.recipe, fixed_mask, run.moving_mask, run.settings.seed
    )
    run.warnings += checked.warnings
    center = mask_centroid(fixed_mask) if fixed_mask is not None else physical_center(run.fixed)
    runs: list = []
    for name, pose in checked.runs:
        if any(pose.is_linear and kept.is_linear and same_start(pose, kept, center) for _, kept in runs):
            continue
        runs.append((name, pose))
    return runs


def run_engines(run: RegistrationRun, plan: RunPlan) -> EngineRuns:
    """The engine from each start, each run ranked (guided: agreement with the guidance first) by its mutual
    information; a failing run is recorded, and does not spoil another start's result."""
    done = EngineRuns()
    first, last = plan.span
    # The log names stages left out: a deformable run again without its affine stage logs under the same start.
    label = f"{run.settings.engine} {run.recipe.name}" + (
        f" without {', '.join(run.recipe.skipped)}" if run.recipe.skipped else ""
    )
    for number, (name, start) in enumerate(plan.runs):
        low = first + (last - first) * number / len(plan.runs)
        high = first + (last - first) * (number + 1) / len(plan.runs)
        try:
            output = _run_engine_from(run, name, start, plan.regions.get(name), (low, high))
            done.logs.append(f"=== {label} from the {name} start ===\n{output.log}")
            check_linear_result(output.transform, run.recipe.name, run.fixed)
        except EngineError as error:
            if error.log:
                done.logs.append(f"=== {label} from the {name} start (failed) ===\n{error.log}")
            done.tried.append({"start": name, "error": error_reason(error)})
            if name in plan.regions:
                done.tried[-1]["fixed_sampling"] = plan.regions[name].describe()
            done.failure = done.failure or error
            run.lap("engine_s")
            continue
        run.lap("engine_s")
        run.report(high, "metric after")
        metric = mutual_information(run.fixed, run.moving, output.transform, run.fixed_mask)
        run.lap("metric_after_s")
        done.tried.append({"start": name, "metric_after": round(metric, 6)})
        if name in plan.regions:
            done.tried[-1]["fixed_sampling"] = plan.regions[name].describe()
        rank = (guided_rank(run.prepared, output.transform), metric) if run.prepared is not None else (metric,)
        done.finished.append((rank, metric, name, start, output))
    return done


def _run_engine_from(run: RegistrationRun, name: str, start: Transform, region, span: tuple) -> EngineOutput:
    """One engine run from ``start``, in a scratch folder of its own, its progress within ``span`` (low, high)."""
    low, high = span

    def engine_progress(fraction: float, stage: str, **details) -> None:
        # ``details`` (log path, planned iterations) let a parent process follow the engine's log.
        if details:
            details["span"] = [low + (high - low) * fraction, high]
        run.report(low + (high - low) * fraction, stage, **details)

    # Windows: the parent may still be reading the engine log when the folder goes; the job folder is removed later.
    with tempfile.TemporaryDirectory(prefix="mmreg-", dir=run.workdir, ignore_cleanup_errors=True) as scratch:
        return run_engine(
            EngineRequest(
                run.fixed,
                run.moving,
                run.recipe,
                initial=start,
                workdir=Path(scratch),
                fixed_mask=region.mask if region is not None else run.fixed_mask,
                moving_mask=run.moving_mask,
                seed=run.settings.seed,
                threads=run.settings.threads,
                progress=engine_progress,
                guidance=run.prepared.engine_terms if run.prepared is not None else None,
            )
        )


# "ITK ERROR: AdvancedMattesMutualInformationMetric(0x5623256f4620): " (on Windows the address has no 0x): the
# class and its address say nothing to a user.
ITK_PREFIX = re.compile(r"^(ITK ERROR: |itk::ERROR: )?\w+\((0x)?[0-9a-fA-F]+\): ")


def error_reason(error: Exception) -> str:
    """The line of an engine error that says what went wrong (ITK's "Description:"), else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    described = [line.split("Description:", 1)[1].strip() for line in lines if "Description:" in line]
    return ITK_PREFIX.sub("", described[0] if described else lines[0])


def failure_line(message: str) -> str:
    """One line for a failure's message: its first line ("elastix failed: itk::ExceptionObject (0x...)"), with what
    ITK's "Description:" says in place of the exception's name (a cohort's reasons kept only the first line, and
    not the cause: a helper's batch sweep)."""
    first = (message.strip().splitlines() or ["no message"])[0].strip()
    reason = error_reason(RuntimeError(message))
    if reason == first or "Description:" not in message:
        return first
    head = first.split(":", 1)[0] if ":" in first else first
    return f"{head}: {reason}"


TIE = "the runs from the"  # how the warning of two runs too close to choose begins


def _same_result(a: Transform, b: Transform) -> bool:
    """Two linear results within about a degree and a millimetre of each other (their matrices, LPS mm)."""
    if not (a.is_linear and b.is_linear):
        return False
    difference = np.abs(a.matrix - b.matrix)
    return bool(difference[:3, :3].max() < 0.02 and difference[:3, 3].max() < 1.0)


def pick_run(finished: list[tuple], warnings: list[str]) -> tuple | None:
    """The run (rank, metric, start name, start, output) with the highest rank. Unguided runs whose
    mutual information ends within KEEP_TOLERANCE_NATS of the best are a tie the metric cannot break
    (a nearly symmetric head's 180-degree twin can score 0.0013 nats above the truth): the run from
    the any-pose search's start wins it, as that pose beat the whole sphere at the search's levels."""
    if not finished:
        return None
    best = max(finished, key=lambda run: run[0])
    if len(best[0]) > 1 or best[2] == "any-pose":
        return best
    searched = [run for run in finished if run[2] == "any-pose" and best[1] - run[1] <= KEEP_TOLERANCE_NATS]
    if not searched:
        return best
    if _same_result(best[4].transform, searched[0][4].transform):  # both starts led to one pose: no tie
        return searched[0]
    warnings.append(
        f"{TIE} {best[2]} and the any-pose starts ended within {KEEP_TOLERANCE_NATS} nats of each "
        f"other ({best[1]:.4f} and {searched[0][1]:.4f}), too close for the metric to choose: kept the any-pose "
        "start's result; check the result (QA's --stability) if the anatomy is nearly symmetric"
    )
    return searched[0]
