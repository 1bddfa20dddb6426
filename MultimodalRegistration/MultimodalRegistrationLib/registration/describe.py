"""One-line, human-readable descriptions of a registration's summary, for the command line and the
Slicer modules (no heavy imports: the parent process only reads the summary's JSON)."""

from __future__ import annotations

from .summary import RegistrationSummary

START_NAMES = {
    "any-pose": "the pose search",
    "centre": "the image centres",
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
    details = []
    offset = provenance.start_offset
    if offset and (offset["rotation_deg"] >= 1.0 or offset["shift_mm"] >= 1.0):
        details.append(f"{offset['rotation_deg']:.0f} deg and {offset['shift_mm']:.0f} mm from the {offset['from']}")
    search = provenance.any_pose
    if search:
        details.append(f"search {search['seconds']:.1f} s over {search['candidates']} poses")
    others = [run["start"] for run in provenance.starts_tried or [] if run["start"] != start]
    if others:
        details.append("also tried " + ", ".join(START_NAMES.get(name, name) for name in others))
    return text + (f" ({'; '.join(details)})" if details else "")


def describe_result(summary: RegistrationSummary) -> str:
    """The registration's time, metric before and after, and its start, in one line."""
    return (
        f"registered in {summary.seconds:.1f} s: mutual information {summary.metric_before:.3f} -> "
        f"{summary.metric_after:.3f}, {describe_start(summary)}"
    )
