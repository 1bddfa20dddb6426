"""Which segments of the two labelmaps QA compares: a segment without a partner is named, two labelmaps with no
pair at all are refused, and two segments whose label values were exchanged between the labelmaps are named
(each had read Dice 0 -> 0, exit 0: a helper's QA sweep)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError

EXCHANGED_DICE = 0.5  # a segment overlapping another's partner at least this well, and twice its own


def _said(values, names: dict[int, str]) -> str:
    return ", ".join(f"'{names[value]}'" if value in names else f"label {value}" for value in sorted(values))


def check_some_pair(fixed_values: set[int], moving_values: set[int], fixed_names: dict[int, str],
                    moving_names: dict[int, str]) -> None:  # fmt: skip
    """Refuse two labelmaps of which no segment pairs (no name or label value in both; one segment each pairs
    whatever its value): every Dice would be 0, and say nothing of the registration."""
    if fixed_values & moving_values or len(fixed_values) == len(moving_values) == 1:
        return
    first = (fixed_names.get(min(fixed_values), str(min(fixed_values))),
             moving_names.get(min(moving_values), str(min(moving_values))))  # fmt: skip
    raise InputError(
        f"no segment of the fixed labelmap ({_said(fixed_values, fixed_names)}) has a partner in the moving one "
        f"({_said(moving_values, moving_names)}): pair them with --segments FIXED=MOVING (for example --segments "
        f"'{first[0]}={first[1]}'), or give the same structure the same name or label value in both"
    )


def unpaired_segments(fixed_values: set[int], moving_values: set[int], names: dict[int, str]) -> list[str]:
    """A warning per segment (label value) of one labelmap with no partner in the other, naming the other side's
    unpaired ones: its Dice is 0 because it has no partner, not because the registration missed it."""
    alone = {"fixed": fixed_values - moving_values, "moving": moving_values - fixed_values}
    warnings = []
    for side, other in (("fixed", "moving"), ("moving", "fixed")):
        for value in sorted(alone[side]):
            others = f"{other} only: {_said(alone[other], names)}" if alone[other] else f"the {other} one has none"
            warnings.append(f"segment {_said([value], names)} ({side}) has no partner in the {other} labelmap "
                            f"({others}), so its Dice is 0: give the same structure the same name (case, spaces and "
                            "underscores do not count) or label value in both")  # fmt: skip
    return warnings


def exchanged_segments(fixed_labels: sitk.Image, warped: sitk.Image, labels: list[int],
                       names: dict[int, str]) -> list[str]:  # fmt: skip
    """A warning per fixed segment that overlaps another label of the warped moving labelmap (on the fixed grid)
    with Dice over ``EXCHANGED_DICE`` and twice its own partner's: the two labelmaps number the structures apart."""
    fixed = sitk.GetArrayViewFromImage(fixed_labels).ravel()
    moving = sitk.GetArrayViewFromImage(warped).ravel()
    either = np.flatnonzero((fixed != 0) | (moving != 0))  # only the segments' voxels: a 512^3 pair stays small
    count = len(labels)
    coded = []
    for values in (fixed[either], moving[either]):
        values = values.astype(np.int64)
        lookup = np.full(max(int(values.max(initial=0)), max(labels)) + 1, count, np.int32)  # else: outside
        lookup[labels] = np.arange(count)
        coded.append(lookup[np.clip(values, 0, None)])
    table = np.bincount(coded[0] * (count + 1) + coded[1], minlength=(count + 1) ** 2).reshape(count + 1, count + 1)
    sizes = table.sum(axis=1)[:count], table.sum(axis=0)[:count]
    dice = 2 * table[:count, :count] / np.maximum(sizes[0][:, None] + sizes[1][None, :], 1)
    warnings = []
    for i, value in enumerate(labels):
        j = int(np.argmax(dice[i]))
        if j != i and dice[i, j] >= EXCHANGED_DICE and dice[i, j] >= 2 * dice[i, i]:
            warnings.append(
                f"fixed segment {_said([value], names)} overlaps moving segment {_said([labels[j]], names)} (Dice "
                f"{dice[i, j]:.2f}) rather than its partner (Dice {dice[i, i]:.2f}): either the labelmaps number the "
                "structures apart (give each the same name or label value in both, or pair them with --segments "
                "FIXED=MOVING), or the registration put it on its neighbour"
            )
    return warnings
