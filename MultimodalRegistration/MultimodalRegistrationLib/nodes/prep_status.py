"""The Prep panel's status line: what a preparation (:class:`.prep.NodePrep`) did and why, one line a step."""

from __future__ import annotations

def _detail(step: dict) -> str:
    kind = step["step"]
    if kind == "crop":
        return f"{step['voxels_kept']:.0%} of the voxels kept ({' x '.join(map(str, step['size']))})"
    if kind == "mask" and "coverage" in step:
        return f"covers {step['coverage']:.0%} of the image"
    if kind == "exclude":
        return f"{step['voxels_excluded']} voxels left out"
    if kind == "bias correction":
        low, high = step["bias_range"]
        return f"bias {low:.2f} to {high:.2f} removed in {step['seconds']:.1f} s"
    if kind == "downsample":
        return f"to {step['to_mm']:g} mm"
    if kind == "set spacing":
        return "to " + " x ".join(f"{s:g}" for s in step["to_mm"]) + " mm"
    return ""


def status_text(prep) -> str:
    """What was done and why, one line per step, then the warnings."""
    if prep.error is not None:
        return f"Not prepared: {prep.error}"
    if prep.summary is None:
        return f"Preparing: {prep.stage}"
    made = [node.GetName() for node in (prep.fixed_node, prep.moving_node, prep.fixed_mask_node, prep.moving_mask_node)
            if node is not None]  # fmt: skip
    lines = [f"Prepared in {prep.summary['seconds']:.1f} s: {', '.join(made)}."]
    for step in prep.steps:
        detail = _detail(step)
        lines.append(f"{step['step']} ({step['image']}): {step['why']}" + (f"; {detail}" if detail else ""))
    lines.extend(f"Warning: {warning}" for warning in prep.warnings)
    return "\n".join(lines)
