"""The one registration entry point, whichever engine runs it."""

from __future__ import annotations

import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.choices import DEFAULT_INIT, DEFAULT_PRESET, DEFAULT_SEED, FULL_ROTATION_DEG
from ..core.errors import EngineError, InputError
from ..core.images import MIN_MASK_COVERAGE, mask_coverage, physical_center, validate_image, validate_mask
from ..core.metric import mutual_information, overlap_fraction
from ..core.rotations import pose_change
from ..core.transforms import Transform
from ..core.version import __version__
from ..engines.presets import load_preset
from ..engines.registry import DEFAULT_ENGINE
from ..engines.request import EngineRequest
from ..engines.run import run_engine
from .guided.guidance import Guidance, prepare_guidance
from .guided.run import guided_rank, guided_record, guided_starts, judged_by_centroids, noise_reason
from .guided.score import guidance_score
from .pose.centres import foreground_center
from .pose.initialize import same_start, starting_poses
from .rules.keep import (
    KEEP_TOLERANCE_NATS,
    check_linear_result,
    earlier_stage,
    why_not_kept,
)
from .rules.masks import check_fixed_mask_size, mask_aware_starts, mask_centroid
from .rules.sampling_region import overlap_regions, sampling_regions
from .rules.weak_result import weak_result_warning
from .summary import Provenance, RegistrationSummary

# What the summary calls the metric: the one mutual information of core/metric.py.
METRIC_NAME = "mutual_information"
Progress = Callable[..., None]  # (fraction 0..1, stage name, **details)

# Below this fraction of the fixed image mapping into the moving image, no metric can work.
MIN_OVERLAP = 0.02


@dataclass
class RegistrationResult:
    """A registration's outcome. ``transform`` maps fixed to moving points (LPS mm), initial transform included."""

    transform: Transform
    inverse: Transform | None
    metric_before: float  # mutual information (nats, higher is better) at the start
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


def _describe_image(image: sitk.Image, source: str | None) -> dict:
    return {
        "source": source,
        "size": list(image.GetSize()),
        "spacing_mm": [round(s, 6) for s in image.GetSpacing()],
        "origin_lps_mm": [round(o, 4) for o in image.GetOrigin()],
        "pixel_type": image.GetPixelIDTypeAsString(),
    }


def _start_offset(start: Transform, before: Transform, fixed: sitk.Image, initial_given: bool) -> dict | None:
    """How far the chosen start lies from the pose before any search: rotation (degrees, scale and
    shear left out), mm at the fixed image's centre, and, when it changes size, its isotropic scale
    relative to that pose (``scale``, 1 = same size)."""
    if not (start.is_linear and before.is_linear):
        return None
    angle, scale, shift = pose_change(start.matrix, before.matrix, physical_center(fixed))
    reference = "initial transform" if initial_given else "image centres"
    offset = {"from": reference, "rotation_deg": round(angle, 2), "shift_mm": round(shift, 2)}
    if abs(scale - 1.0) > 1e-6:
        offset["scale"] = round(scale, 4)
    return offset


def _reason(error: Exception) -> str:
    """The line of an engine error that says what went wrong (ITK's "Description:"), else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    described = [line.split("Description:", 1)[1].strip() for line in lines if "Description:" in line]
    return described[0] if described else lines[0]


def _runs_that_overlap(starts, fixed: sitk.Image, moving: sitk.Image, warnings: list[str]) -> list:
    """The starts at which the images overlap: one that leaves them apart makes every engine fail;
    skip it (with a warning), and stop if none is left."""
    overlaps = [overlap_fraction(fixed, moving, pose) for _, pose in starts.poses]
    runs = [(name, pose) for (name, pose), overlap in zip(starts.poses, overlaps) if overlap >= MIN_OVERLAP]
    if not runs:
        fix = "prealign with landmarks (FiducialPrealign or mmreg prealign)"
        if starts.search is None:
            fix += " or use --init any-pose"
        raise InputError(
            f"images do not overlap: {fix} (only {max(overlaps):.0%} of the fixed image maps into the moving image)"
        )
    warnings += [
        f"skipped the {name} start: only {overlap:.0%} of the fixed image maps into the moving image there"
        for (name, _), overlap in zip(starts.poses, overlaps) if overlap < MIN_OVERLAP
    ]  # fmt: skip
    return runs


def _runs_for_masks(poses, fixed, moving, recipe, masks: dict, warnings: list[str], seed: int) -> list:
    """With masks, the engine samples the fixed mask (the whole fixed image without one) and counts
    a sample only inside the moving image and mask: the starts where enough of them land, moved
    onto the mask centroids where too few did (see :mod:`.mask_start`); two that became one run once."""
    checked = mask_aware_starts(poses, fixed, moving, recipe, masks.get("fixed mask"), masks.get("moving mask"), seed)
    warnings += checked.warnings
    fixed_mask = masks.get("fixed mask")
    center = mask_centroid(fixed_mask) if fixed_mask is not None else physical_center(fixed)
    runs: list = []
    for name, pose in checked.runs:
        if any(pose.is_linear and kept.is_linear and same_start(pose, kept, center) for _, kept in runs):
            continue
        runs.append((name, pose))
    return runs


def _pick_run(finished: list[tuple], warnings: list[str]) -> tuple | None:
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
    warnings.append(
        f"the runs from the {best[2]} and the any-pose starts ended within {KEEP_TOLERANCE_NATS} nats of each "
        f"other ({best[1]:.4f} and {searched[0][1]:.4f}), too close for the metric to choose: kept the any-pose "
        "start's result; check the result (QA's --stability) if the anatomy is nearly symmetric"
    )
    return searched[0]


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    engine: str = DEFAULT_ENGINE,
    preset: str = DEFAULT_PRESET,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    initial_transform: Transform | None = None,
    init: str = DEFAULT_INIT,
    max_rotation_deg: float = FULL_ROTATION_DEG,
    seed: int = DEFAULT_SEED,
    threads: int | None = None,
    progress: Progress | None = None,
    sources: dict | None = None,
    workdir: str | Path | None = None,
    guidance: Guidance | None = None,
) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` (LPS images) and return the fixed -> moving transform.

    ``initial_transform`` (fixed -> moving) is where the search starts and is part of the result.
    ``init`` is auto, any-pose, geometry, moments or none (see :mod:`.initialize`); ``auto`` runs
    the engine from the any-pose start and, if it differs, from the image-centre start too, and
    keeps the result with the higher metric. ``max_rotation_deg`` (degrees) narrows the any-pose
    search for images known to be roughly aligned.
    ``sources`` names where the inputs came from, for provenance only.
    ``guidance`` (segmentations, landmarks; see :mod:`.guidance`) adds segment and landmark terms to the
    metric, gives the start under ``init`` auto (:mod:`.guided_start`), and must not get worse for the
    result to be kept.
    """
    report = progress or (lambda fraction, stage, **details: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    warnings: list[str] = []

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - since, 3)  # runs from two starts add up
        return now

    report(0.0, "checking inputs")
    recipe = load_preset(engine, preset)
    validate_image(fixed, "fixed image")
    validate_image(moving, "moving image")
    masks = {}
    for role, mask, image in (("fixed mask", fixed_mask, fixed), ("moving mask", moving_mask, moving)):
        if mask is None:
            continue
        masks[role] = validate_mask(mask, image, role)
        coverage = mask_coverage(masks[role])
        if coverage < MIN_MASK_COVERAGE:
            warnings.append(
                f"{role} covers {coverage:.1%} of the image: crop the image to the region instead, "
                "or the sampler may not find enough samples"
            )
    check_fixed_mask_size(recipe, fixed, masks.get("fixed mask"))  # before the search: refused at once
    prepared = prepare_guidance(fixed, moving, guidance, engine) if guidance and not guidance.is_empty else None
    recipe.check_needs(prepared is not None and bool(prepared.pairs))
    clock = lap("checks_s", started)

    report(0.01, "finding the starting pose")
    if prepared is not None and init == "auto" and (prepared.pairs or prepared.guidance.has_points):
        starts, guided_candidates = guided_starts(fixed, moving, prepared, initial_transform, seed)
    else:
        starts, guided_candidates = starting_poses(
            fixed, moving, initial_transform, init, masks.get("fixed mask"), masks.get("moving mask"),
            max_rotation_deg=max_rotation_deg, seed=seed, scale=recipe.scales and recipe.is_linear,
        ), None  # fmt: skip
    warnings += starts.warnings
    if masks:
        runs = _runs_for_masks(starts.poses, fixed, moving, recipe, masks, warnings, seed)
    else:
        runs = _runs_that_overlap(starts, fixed, moving, warnings)
    regions = {}
    if "fixed mask" not in masks:  # without one, sample only where the moving image lies if too little of it did
        regions = sampling_regions(runs, fixed, moving, recipe, masks.get("moving mask"), seed)
    if starts.search is not None and starts.search.scale is not None:  # partial tissue: where both exist
        regions.update(
            overlap_regions(runs, fixed, moving, recipe, masks.get("fixed mask"), masks.get("moving mask"))
        )
    clock = lap("init_s", clock)

    report(0.04, "metric before")
    metric_before = mutual_information(fixed, moving, starts.before, masks.get("fixed mask"))
    clock = lap("metric_before_s", clock)

    tried: list[dict] = []
    logs: list[str] = []
    finished, failure = [], None
    for number, (name, start) in enumerate(runs):
        low, high = 0.05 + 0.9 * number / len(runs), 0.05 + 0.9 * (number + 1) / len(runs)

        def engine_progress(fraction: float, stage: str, low=low, high=high, **details) -> None:
            # ``details`` (log path, planned iterations) let a parent process follow the engine's log.
            if details:
                details["span"] = [low + (high - low) * fraction, high]
            report(low + (high - low) * fraction, stage, **details)

        try:
            with tempfile.TemporaryDirectory(prefix="mmreg-", dir=workdir) as scratch:
                output = run_engine(
                    EngineRequest(
                        fixed,
                        moving,
                        recipe,
                        initial=start,
                        workdir=Path(scratch),
                        fixed_mask=regions[name].mask if name in regions else masks.get("fixed mask"),
                        moving_mask=masks.get("moving mask"),
                        seed=seed,
                        threads=threads,
                        progress=engine_progress,
                        guidance=prepared.engine_terms if prepared is not None else None,
                    )
                )
            logs.append(f"=== {engine} {recipe.name} from the {name} start ===\n{output.log}")
            check_linear_result(output.transform, recipe.name)
        except EngineError as error:
            # With two starts, one failing run does not spoil the other's result.
            if error.log:
                logs.append(f"=== {engine} {recipe.name} from the {name} start (failed) ===\n{error.log}")
            tried.append({"start": name, "error": _reason(error)})
            if name in regions:
                tried[-1]["fixed_sampling"] = regions[name].describe()
            failure = failure or error
            clock = lap("engine_s", clock)
            continue
        clock = lap("engine_s", clock)
        report(high, "metric after")
        metric = mutual_information(fixed, moving, output.transform, masks.get("fixed mask"))
        clock = lap("metric_after_s", clock)
        tried.append({"start": name, "metric_after": round(metric, 6)})
        if name in regions:
            tried[-1]["fixed_sampling"] = regions[name].describe()
        rank = (guided_rank(prepared, output.transform), metric) if prepared is not None else (metric,)
        finished.append((rank, metric, name, start, output))
    best = _pick_run(finished, warnings)
    if best is None:
        failure.log = "\n".join(logs)
        raise failure
    _, metric_after, start_name, start, output = best
    warnings += [f"the engine failed from the {run['start']} start: {run['error']}" for run in tried if "error" in run]
    # Never worse than the start: the chosen run's result against the pose it started from.
    metric_start = mutual_information(fixed, moving, start, masks.get("fixed mask"))
    guided, judge = guided_record(prepared, start, output.transform, guided_candidates)
    transform, inverse, kept, kept_reason = output.transform, output.inverse, "result", ""
    reason = why_not_kept(output.transform, metric_after, metric_start, fixed, judge)
    refused_by_noise = False
    if not reason and prepared is not None:
        reason = noise_reason(prepared, fixed, moving, start, output, seed)
        refused_by_noise = bool(reason)
    if reason:
        what = f"the {engine} {recipe.name} result {reason}"
        hint = "try the rigid preset or landmarks" if not recipe.is_linear else "try another start, a mask or landmarks"
        score_start = guidance_score(prepared, start) if prepared is not None else None
        stage = None if refused_by_noise else earlier_stage(
            output, fixed, moving, masks.get("fixed mask"), metric_start, prepared, score_start
        )
        if stage is not None:
            kept, transform, metric_after = f"{stage[0]} stage", stage[1], stage[2]
            kept_reason = f"{what}: kept its {stage[0]} stage instead; {hint}"
        else:
            kept, transform, metric_after = "start", start, metric_start
            kept_reason = f"{what}: kept the start; {hint}"
        inverse = transform.inverse() if transform.is_linear else None
        warnings.append(kept_reason)
    if prepared is not None and prepared.pairs:
        transform, inverse, metric_after, kept, kept_reason = judged_by_centroids(
            prepared, initial_transform, fixed, moving, masks.get("fixed mask"),
            (transform, inverse, metric_after, kept, kept_reason), guided, warnings,
        )  # fmt: skip
    clock = lap("keep_check_s", clock)
    if prepared is None:
        center = mask_centroid(masks["fixed mask"]) if "fixed mask" in masks else foreground_center(fixed)
        weak = weak_result_warning(fixed, moving, transform, metric_after, metric_before, center)
        warnings += [weak] if weak else []
        clock = lap("weak_check_s", clock)
    timings.update(output.timings)
    seconds = time.perf_counter() - started
    sources = sources or {}
    provenance = Provenance(
        engine=engine,
        engine_version=output.version,
        preset=recipe.name,
        preset_files=recipe.files,
        library_version=__version__,
        simpleitk_version=sitk.Version.VersionString(),
        python_version=platform.python_version(),
        seed=seed,
        threads=output.threads,
        init=init,
        max_rotation_deg=max_rotation_deg,
        initial_transform=sources.get("initial_transform"),
        start=start_name,
        start_matrix_lps=np.round(start.matrix, 9).tolist() if start.is_linear else None,
        before_matrix_lps=starts.before.matrix.tolist() if starts.before.is_linear else None,
        starts_tried=tried,
        any_pose=starts.search.summary() if starts.search is not None else None,
        start_offset=_start_offset(start, starts.before, fixed, initial_transform is not None),
        fixed=_describe_image(fixed, sources.get("fixed")),
        moving=_describe_image(moving, sources.get("moving")),
        fixed_mask=sources.get("fixed_mask") if fixed_mask is not None else None,
        fixed_sampling=regions[start_name].describe() if start_name in regions else None,
        moving_mask=sources.get("moving_mask") if moving_mask is not None else None,
        timings_s=timings,
        kept=kept,
        kept_reason=kept_reason,
        guidance=guided,
    )
    report(1.0, "done")
    return RegistrationResult(
        transform=transform,
        inverse=inverse,
        metric_before=metric_before,
        metric_after=metric_after,
        seconds=seconds,
        log="\n".join(logs),
        provenance=provenance,
        warnings=warnings,
    )
