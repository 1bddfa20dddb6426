"""A guided deformable run in two phases: the preset's rigid stages from the guided start, judged as a rigid
run is, then its deformable stages from the pose they kept; its similarity and affine stages are left out.

Why: the guided start already is the linear alignment the guidance supports, and an affine stage after it fits
the segments' differing shapes with scale and shear while moving the anatomy inside. On the hard TRUS-like
cohort (seeds 400-423) ANTs's affine stage ended further from the truth than its start on 16 of 24 pairs, and
its scores, better by 3 to 9 SD on good and bad pairs alike, could not tell which; refused, it took the
deformable stage down with it. Presets opt in with ``"guided_from_start": true`` (Resources/Presets).
"""

from __future__ import annotations

from dataclasses import replace

from .outcome import keep_no_worse
from .rules.keep import OUTVOTED
from .runs import RegistrationRun, RunPlan, pick_run, run_engines

# The rigid phase's share of the engines' span of the progress bar.
RIGID_SHARE = 0.2


def rigid_first(run: RegistrationRun, plan: RunPlan) -> RunPlan:
    """The plan the deformable stages run from; its ``rigid_stage`` says what became of the rigid stages
    ("kept", or why they were not), and ``from_guided_start`` whether the deformable stages start from the
    guided start itself (the rigid stages failed or kept it). Sets ``run.recipe`` to the deformable stages.
    Unguided runs and presets without ``guided_from_start`` are left as they are."""
    if plan.guided_candidates is None or not run.recipe.guided_from_start or len(plan.runs) != 1:
        return plan
    rigid, run.recipe = run.recipe.guided_parts()
    if rigid is None:
        return plan

    def report(fraction: float, stage: str, **details) -> None:
        run.report(fraction, f"rigid stage: {stage}", **details)

    plan = replace(plan, rigid_files=list(rigid.files))
    low, high = plan.span
    middle = low + (high - low) * RIGID_SHARE
    phase = replace(run, recipe=rigid, report=report, warnings=[])
    finished = run_engines(phase, replace(plan, span=(low, middle)))
    plan = replace(plan, span=(middle, high))
    best = pick_run(finished.finished, phase.warnings)
    kept = keep_no_worse(phase, plan, best)[0] if best is not None else None
    run.clock = phase.clock  # the phase's laps are in the shared timings
    run.warnings += [warning for warning in phase.warnings if warning.startswith(OUTVOTED)]  # the rest: rigid_stage
    if kept is None:
        return replace(plan, rigid_stage=f"failed ({finished.tried[-1].get('error', '')}): not used",
                       from_guided_start=True)  # fmt: skip
    if kept.kept == "start":
        return replace(plan, rigid_stage=kept.kept_reason, from_guided_start=True)
    ((name, _),) = plan.runs
    moved = f"{name}, then its rigid stage" if kept.kept == "result" else f"{name}, then the {kept.kept}"
    starts = replace(plan.starts, poses=[(moved, kept.transform)])
    regions = {moved: plan.regions[name]} if name in plan.regions else {}
    return replace(plan, starts=starts, runs=[(moved, kept.transform)], regions=regions,
                   rigid_stage=kept.kept_reason or "kept")  # fmt: skip
