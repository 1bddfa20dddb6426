"""Segments that guide a piecewise run but were not named to move on their own: the blended field carries them
with their neighbours, and may carry them off (warnings, after the run).

A helper's pelvis pair, ``--piecewise sacrum,left_hip,right_hip`` with the left femur guiding but not listed: the
femur's target error rose 2.85 -> 4.50 mm (Dice 0.826 -> 0.723) with no word, the hip beside it pulling it along.
Dice of each such segment under the global result and under the field, on the fixed grid.
"""

from __future__ import annotations

from ...core.transforms import Transform
from ..guided.guidance import Guidance, pair_segments, prepare_guidance
from ..guided.score import DICE_TOLERANCE, guidance_score


def left_out_warnings(
    fixed, moving, guidance: Guidance, listed: list[str], global_transform: Transform, field: Transform, engine: str
) -> list[str]:
    """A warning for each guiding segment not in ``listed`` (pair names) whose Dice falls more than DICE_TOLERANCE
    from the global result to the field."""
    wholes = (guidance.fixed_wholes, guidance.moving_wholes)
    pairs = pair_segments(guidance.fixed_segmentation, guidance.moving_segmentation, guidance.segments, wholes)
    others = [pair.name for pair in pairs if pair.name not in listed]
    if not others:  # the guidance (its distance maps) is prepared only when some segment was left out
        return []
    prepared = prepare_guidance(fixed, moving, guidance, engine)
    before, after = guidance_score(prepared, global_transform).dice, guidance_score(prepared, field).dice
    return [
        f"segment '{name}' guides but is not among the segments moved on their own, and the combined field carries it "
        f"off its global fit (Dice {before[name]:.3f} -> {after[name]:.3f}): name it in --piecewise too, or check it"
        for name in others
        if after[name] < before[name] - DICE_TOLERANCE
    ]
