"""A run of the engine beside a registration's own, with another preset: a deformable preset without its affine
stage (:mod:`.without_affine`), an affine second opinion (:mod:`.affine_opinion`). It keeps warnings of its own, so that
only what its caller chooses reaches the registration's. (A guided run's rigid stages, :mod:`.rigid_first`, run the
same way inline, sharing the registration's timings.) Transforms map fixed to moving points (LPS mm)."""

from __future__ import annotations

from dataclasses import replace

from ..core.metric import bias_corrected_information
from ..core.transforms import Transform
from .rules.weak_result import tissue_region
from .runs import EngineRuns, RegistrationRun, RunPlan, pick_run, run_engines


def side_run(run: RegistrationRun, plan: RunPlan, **changes) -> tuple[RegistrationRun, EngineRuns, tuple | None]:
    """(``run`` with ``changes`` (recipe, settings, report, ``timings={}`` for seconds of its own...) and warnings of
    its own; its engine runs from each start of ``plan``; the run it picks, or None)."""
    side = replace(run, **{"warnings": [], **changes})
    done = run_engines(side, plan)
    return side, done, pick_run(done.finished, side.warnings)


def lap_side_run(run: RegistrationRun, side: RegistrationRun, name: str) -> None:
    """``run``'s ``timings[name]`` (s): the seconds of ``side``, which kept timings of its own, and of the checks since
    it ended."""
    run.clock = side.clock
    run.lap(name)
    run.timings[name] = round(run.timings[name] + sum(side.timings.values()), 3)


def information(run: RegistrationRun, *transforms: Transform) -> list[float]:
    """The bias-corrected mutual information (nats) of each of ``transforms`` over the fixed mask, else over the fixed
    image where it holds data (:func:`.rules.weak_result.tissue_region`): results of different runs compared."""
    region = tissue_region(run.fixed, run.fixed_mask)
    return [bias_corrected_information(run.fixed, run.moving, transform, region) for transform in transforms]
