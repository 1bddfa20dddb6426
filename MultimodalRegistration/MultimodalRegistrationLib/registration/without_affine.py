"""An unguided deformable run whose affine stage changed the anatomy's shape, run again without it.

An affine stage can squash small or self-similar anatomy to raise its mutual information, and the deformable stage
after it keeps the squash (:mod:`.rules.shape_change`). Then the preset runs once more from the same starts with its
similarity and affine stages left out (rigid, then the deformable stages, as a guided run does, :mod:`.rigid_first`);
that result is kept when it changes no shape and its bias-corrected mutual information over the fixed image is at
least MIN_SHARE of the first result's. When the affine part collapsed from every start, so that no run finished,
the preset runs again the same way and its result goes on as any result does (:func:`again_after_collapse`).

Measured (forty-sixth session), elastix:
* the real SCT spinal-cord pair (T1w and T2 of one subject): the deformable preset had ended 9.8 mm (T2 fixed, cord
  Dice 0.31) and 34 mm (T1w fixed, Dice 0) from the right rigid result, its affine parts 1.12 : 0.39 : 0.30 and
  0.91 : 0.58 : 0.42; without the affine stage, 0.4 mm from it (Dice 0.87 and 0.72; rigid 0.91 and 0.77), at 0.94
  and 1.00 times the squashed results' information;
* a slice spacing stored 2.5 times too large (a true stretch): the MNI T1 against a T2-like contrast, right (0.23 mm)
  and stretched 2.48 times, and without the affine stage 31 mm off at 0.11 times the information; the phantom pair,
  11 mm off and stretched 2.25 times, and without it 37 mm off at 0.53 times. Both stretched results are kept.
Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

from dataclasses import replace

from ..engines.presets import Preset
from .outcome import Kept, keep_no_worse
from .rules.keep import COLLAPSED
from .rules.shape_change import changed_scales, listed_scales
from .runs import TIE, EngineRuns, RegistrationRun, RunPlan
from .side_run import information, lap_side_run, side_run

MIN_SHARE = 0.8  # of the first result's bias-corrected mutual information, for the run without the affine stage
WITHOUT_AFFINE = "the affine stage changed the anatomy's shape"  # how the note begins
AFTER_COLLAPSE = "the affine stage collapsed"  # how the note begins when no run from any start finished


def _reduced(run: RegistrationRun) -> Preset | None:
    """The run's preset without its similarity and affine stages, for an unguided deformable run that has them and
    has not left them out already."""
    if run.prepared is not None or run.recipe.is_linear or run.recipe.skipped:
        return None
    reduced = run.recipe.without_scaling()
    return reduced if reduced.skipped else None


def _stages(reduced: Preset) -> str:
    return ", ".join(name.removesuffix("Transform").lower() for name in reduced.skipped)


def _run_again(run: RegistrationRun, plan: RunPlan, engine_runs: EngineRuns, reduced: Preset):
    """(the side run with ``reduced``, the run it picks or None), from every start of ``plan``; its log and record
    go to ``engine_runs``, its seconds to ``run``'s ``without_affine_s`` (:func:`.side_run.lap_side_run`)."""
    high = plan.span[1]
    side, again, picked = side_run(run, replace(plan, span=(high, (1.0 + high) / 2)), recipe=reduced, timings={})
    engine_runs.logs += again.logs
    engine_runs.tried += [{**tried, "stages_skipped": list(reduced.skipped)} for tried in again.tried]
    return side, picked


def again_after_collapse(run: RegistrationRun, plan: RunPlan, engine_runs: EngineRuns) -> tuple | None:
    """The run of the preset without its similarity and affine stages when the affine part collapsed from every
    start (:func:`.rules.keep.check_linear_result`) of an unguided deformable run, else None. Then sets
    ``run.recipe`` to the preset run and adds a note to ``run.warnings``. The real SCT cord pair from its right
    rigid result, T1w fixed: the affine part's scales fell to 0.75, 0.23, 0.02 (exit 1)."""
    reduced = _reduced(run)
    errors = [tried.get("error", "") for tried in engine_runs.tried]
    if reduced is None or engine_runs.finished or not errors or not all(COLLAPSED in error for error in errors):
        return None
    phase, other = _run_again(run, plan, engine_runs, reduced)
    lap_side_run(run, phase, "without_affine_s")
    if other is None:
        return None
    run.recipe = reduced
    run.warnings += [*phase.warnings, (
        f"{AFTER_COLLAPSE} the anatomy from every start: ran the preset again without its {_stages(reduced)} stage "
        "(rigid, then deformable)"
    )]  # fmt: skip
    return other


def again_without_affine(
    run: RegistrationRun, plan: RunPlan, engine_runs: EngineRuns, best: tuple, kept: Kept
) -> tuple[tuple, Kept]:
    """(the run, what it keeps) of the preset without its similarity and affine stages, from the same starts, when
    ``kept`` (an unguided deformable result, or an earlier stage of it) changes the anatomy's shape and the run
    without them does not and keeps MIN_SHARE of its information; else ``best`` and ``kept`` as they are. Then sets
    ``run.recipe`` to the preset run and adds a note to ``run.warnings``; the run's log and record go to
    ``engine_runs`` either way."""
    reduced = _reduced(run)
    if reduced is None or kept.kept == "start":
        return best, kept
    changed = changed_scales(kept.transform, run.fixed)
    # A start that already changed the shape (an initial transform) would be kept without the affine stage too.
    if changed is None or changed_scales(best[3], run.fixed) is not None:
        return best, kept
    phase, other = _run_again(run, plan, engine_runs, reduced)
    other_kept = keep_no_worse(phase, plan, other)[0] if other is not None else None
    before = after = 0.0
    if (
        other_kept is not None
        and other_kept.kept != "start"
        and changed_scales(other_kept.transform, run.fixed) is None
    ):
        before, after = information(run, kept.transform, other_kept.transform)
    lap_side_run(run, phase, "without_affine_s")
    if before <= 0.0 or after < MIN_SHARE * before:
        return best, kept
    # What the first run's keep rule and tie said is about a result no longer returned.
    run.warnings[:] = [
        warning for warning in run.warnings if warning != kept.kept_reason and not warning.startswith(TIE)
    ]
    run.recipe = reduced
    note = (
        f"{WITHOUT_AFFINE} (scales {listed_scales(changed[0])}): ran the preset again without its {_stages(reduced)} "
        "stage from the same starts and kept that result, which the images confirm "
        f"nearly as well ({after / before:.2f} times the information). If a slice spacing is wrong, give the right "
        "one (--spacing-fixed / --spacing-moving) and run again"
    )
    run.warnings += [*phase.warnings, note]
    return other, other_kept
