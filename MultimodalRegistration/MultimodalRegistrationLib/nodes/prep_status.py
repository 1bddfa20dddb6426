"""The Prep panel's status line: what a preparation (:class:`.prep.NodePrep`) did and why, one line a step."""

from __future__ import annotations

from ..prep.summary import step_line


def status_text(prep) -> str:
    """What was done and why, one line per step, then the warnings."""
    if prep.error is not None:
        return f"Not prepared: {prep.error}"
    if prep.summary is None:
        return f"Preparing: {prep.stage}"
    made = [node.GetName() for node in (prep.fixed_node, prep.moving_node, prep.fixed_mask_node, prep.moving_mask_node)
            if node is not None]  # fmt: skip
    lines = [f"Prepared in {prep.summary['seconds']:.1f} s: {', '.join(made)}."]
    lines.extend(step_line(step) for step in prep.steps)
    lines.extend(f"Warning: {warning}" for warning in prep.warnings)
    return "\n".join(lines)
