"""One-line, human-readable descriptions of a registration's summary, for the command line and the
Slicer modules (no heavy imports: the parent process only reads the summary's JSON)."""

from __future__ import annotations

import numpy as np

from .summary import GuidanceRecord, GuidanceScores, PiecewiseRecord, RegistrationSummary

START_NAMES = {
    "any-pose": "the pose search",
    "centre": "the image centres",
    "header": "the headers' pose (the scanner alignment)",
    "geometry": "the image centres",
    "moments": "the foreground centres",
    "none": "the initial pose",
    "initial": "the initial transform",
}


def describe_start(summary: RegistrationSummary) -> str:
    """Where the registration started and what finding that start cost, e.g.
    "started from the pose search (1.3 s, 1 024 poses; also tried the image centres)"."""
    provenance = summary.provenance
    start = provenance.start or provenance.init or ""
    text = f"started from {START_NAMES.get(start, start)}"
    if provenance.placed_first and start == "initial":  # the nonlinear phase of a run a rigid one placed first
        text = "started from the rigid preset's result (placed first: the moving image is a thin slab)"
    if provenance.other_way_round:  # what follows describes the run with the images swapped
        text = f"registered the other way round (the moving image as the fixed one) and {text}"
    details = []
    offset = provenance.start_offset
    if offset and (offset.rotation_deg >= 1.0 or offset.shift_mm >= 1.0 or offset.scale is not None):
        size = f", scale {offset.scale:.2f}" if offset.scale is not None else ""
        details.append(f"{offset.rotation_deg:.0f} deg and {offset.shift_mm:.0f} mm{size} from the {offset.from_}")
    search = provenance.any_pose
    if search:
        details.append(f"search {search.seconds:.1f} s over {search.candidates} poses")
    others = [run.start for run in provenance.starts_tried or [] if run.start != start]
    if others:
        details.append("also tried " + ", ".join(START_NAMES.get(name, name) for name in others))
    if provenance.fixed_sampling:
        details.append(provenance.fixed_sampling)
    if provenance.rigid_stage and provenance.rigid_stage != "kept":
        details.append("its rigid stage not kept")
    if provenance.stages_skipped:
        details.append(f"skipped {', '.join(provenance.stages_skipped)}")
    return text + (f" ({'; '.join(details)})" if details else "")


def describe_result(summary: RegistrationSummary) -> str:
    """The registration's time, metric before and after, its start, and what it returned when that is not the
    engine's result (its start, an earlier stage, the segment centroids), in one line."""
    kept = summary.provenance.kept
    returned = f"; returned the {kept}, not the engine's result" if kept and kept != "result" else ""
    # "before" is where it was measured, not the start: a guided run that returned its start read "0.035 -> 0.027"
    # as if the registration had made things worse (a helper's sweep).
    where = {"none": "the headers' pose", "moments": "the intensity centroids"}  # --init's own start; else centres
    before = ("the initial transform" if summary.provenance.initial_transform
              else where.get(summary.provenance.init, "the image centres"))  # fmt: skip
    matrix = summary.provenance.before_matrix_lps
    if before == "the image centres" and matrix is not None and np.allclose(matrix, np.eye(4)):
        before = "the headers' pose"  # a small view inside a larger scan starts there (rules/view_mask.py)
    return (
        f"registered in {summary.seconds:.1f} s: mutual information {summary.metric_before:.3f} at {before} -> "
        f"{summary.metric_after:.3f}, {describe_start(summary)}{returned}"
    )


def describe_2d(summary) -> str:
    """A 2D result (a ``Summary2D``) in one line: engine, preset, rotation (degrees), scales and its start."""
    scales = ", ".join(f"{s:.3f}" for s in summary.scales)
    start = summary.start
    return (
        f"2D {summary.engine} {summary.preset}: rotation {summary.angle_deg:.1f} deg, scales {scales} "
        f"(start {start['angle_deg']:.0f} deg, scale {start['scale']:.3f})"
    )


def describe_guidance(guidance: GuidanceRecord | None) -> str:
    """A guided run's scores at its start and its result (a summary's ``provenance.guidance``) in one line,
    e.g. "guidance: Dice 0.62 -> 0.91, landmarks 7.4 -> 1.2 mm RMS"; "" for a run without guidance."""
    if not guidance:
        return ""
    start, result = guidance.score_start or GuidanceScores(), guidance.score_result or GuidanceScores()
    parts = []
    if start.mean_dice is not None and result.mean_dice is not None:
        parts.append(f"Dice {start.mean_dice:.2f} -> {result.mean_dice:.2f}")
    if start.points_rms_mm is not None and result.points_rms_mm is not None:
        floor = guidance.points_fit_rms_mm
        # noisy clicks: the RMS at them can rise while the error where the features are falls (a helper's run:
        # 1.2 -> 1.4 mm RMS as the true error fell 0.93 -> 0.12 mm); their own rigid fit shows how far they scatter
        scatter = "" if floor is None else f" (a rigid fit of the landmarks themselves leaves {floor:.1f})"
        parts.append(f"landmarks {start.points_rms_mm:.1f} -> {result.points_rms_mm:.1f} mm RMS{scatter}")
    if not parts:
        return ""
    label = "guidance (intensities ignored)" if guidance.metric == "segments" else "guidance"
    return f"{label}: {', '.join(parts)}{_landmarks_not_the_start(guidance)}"


def _landmarks_not_the_start(guidance: GuidanceRecord) -> str:
    """Why the landmarks' own rigid fit, a start candidate, did not become the start (a user who gave landmarks
    otherwise sees them change nothing); "" when it did, or was not a candidate."""
    choice = guidance.start_choice
    candidate = next((c for c in guidance.start_candidates or [] if c.name == "landmarks"), None)
    if candidate is None or choice is None or choice.chosen == "landmarks" or not candidate.reason:
        return ""
    return f"; the landmarks' own fit was not the start ({candidate.reason})"


def _number(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def describe_piecewise(piecewise: PiecewiseRecord) -> str:
    """A piecewise result (a summary's ``piecewise``) as one line per segment, QA before (the global
    result) -> after (its own), then the blended field's smallest Jacobian determinant."""
    lines = []
    for segment in piecewise.segments:
        before, after = segment.qa.before, segment.qa.after
        text = f"{segment.name}: Dice {_number(before.mean_dice, 3)} -> {_number(after.mean_dice, 3)}"
        text += f", surface {_number(before.mean_surface_mm, 2)} -> {_number(after.mean_surface_mm, 2)} mm"
        if after.points_mm:
            text += f", landmarks {_number(before.points_rms_mm, 2)} -> {_number(after.points_rms_mm, 2)} mm RMS"
        if segment.kept:
            moved = segment.from_global
            text += f"; {_number(moved.rotation_deg, 1)} deg, {_number(moved.shift_mm, 1)} mm from global"
        else:
            text += "; kept the global transform"
        lines.append(text)
    lines.append(f"field: minimum Jacobian determinant {piecewise.minimum_jacobian:.3f}")
    return "\n".join(lines)
