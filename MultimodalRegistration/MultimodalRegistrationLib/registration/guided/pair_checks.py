"""Doubts about how the segments were paired, said before the engine runs (warnings, never refusals).

Two files whose segments pair by label value pair whatever the values mark: a gland against a urethra guided a
run to Dice 0.01-0.06 without a word (a helper's sweep: a labelmap with 1 and 2 swapped; a Slicer .seg.nrrd whose
names were ignored because the other file had none). A pair whose volumes differ more than SIZE_RATIO times is
named, and so is a file whose segment names go unused. A real change of size (a tumour after therapy, an organ
half outside one field of view) can exceed it too, hence a warning. Volumes in mm^3 on each image's grid.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.labels import label_names, segment_name_key

SIZE_RATIO = 4.0  # gland against urethra: 18; a gland halved by its segmentation: 2


def _volume_mm3(mask: sitk.Image) -> float:
    return float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) * float(np.prod(mask.GetSpacing()))


def pairing_doubts(
    fixed_segmentation: sitk.Image, moving_segmentation: sitk.Image, pairs: list, fixed_masks: list, moving_masks: list
) -> list[str]:
    """Warnings for segment pairs (:class:`.guidance.SegmentPair`) that may not mark the same structure."""
    doubts = []
    names = [bool(label_names(fixed_segmentation)), bool(label_names(moving_segmentation))]
    if names[0] != names[1] and any(pair.paired_by == "label value" for pair in pairs):
        named, other = ("fixed", "moving") if names[0] else ("moving", "fixed")
        doubts.append(
            f"only the {named} segmentation names its segments, so they were paired by label value, not by name: "
            f"check that each value marks the same structure in the {other} file, or give both as .seg.nrrd with "
            "the same segment names (or pair them with --segments FIXED=MOVING)"
        )
    for pair, fixed_mask, moving_mask in zip(pairs, fixed_masks, moving_masks):
        fixed_mm3, moving_mm3 = _volume_mm3(fixed_mask), _volume_mm3(moving_mask)
        if min(fixed_mm3, moving_mm3) <= 0 or max(fixed_mm3, moving_mm3) <= SIZE_RATIO * min(fixed_mm3, moving_mm3):
            continue
        larger = "moving" if moving_mm3 > fixed_mm3 else "fixed"
        doubts.append(
            f"segment '{pair.name}' is {max(fixed_mm3, moving_mm3) / min(fixed_mm3, moving_mm3):.0f} times larger in "
            f"the {larger} segmentation ({fixed_mm3 / 1000:.3g} ml fixed, {moving_mm3 / 1000:.3g} ml moving; paired "
            f"by {'--segments' if pair.paired_by == 'given' else pair.paired_by}): check that both mark the same "
            "structure"
        )
    return doubts


def _quoted(name: str) -> str:
    return f"'{name}'"


def named_without_voxels(named: dict[int, str], found: dict[int, str]) -> set[str]:
    """The name keys (:func:`segment_name_key`) of segments a file's header names (``named``) that hold no voxels
    (not in ``found``, ``{value: name}`` of the segments drawn)."""
    drawn = {segment_name_key(name) for name in found.values()}
    return {segment_name_key(name) for name in named.values()} - drawn


def unpaired_warning(
    fixed_found: dict[int, str], moving_found: dict[int, str], key: str, pairs: list,
    named: tuple[dict[int, str], dict[int, str]] = ({}, {}),
) -> str | None:  # fmt: skip
    """The warning for segments found on one side only (``{value: name}`` of each side; they cannot guide), paired
    by ``key`` ("name" or "label value"). ``named``: each file's header names, empty segments' too: a segment named
    on both sides but empty on one is said to be empty there (the advice to give it the same name was untrue), and
    one lone segment a side gets the --segments pairing that joins them."""
    alone, empty = {}, []
    for side, (role, found, used) in enumerate((("fixed", fixed_found, {p.fixed_value for p in pairs}),
                                                ("moving", moving_found, {p.moving_value for p in pairs}))):  # fmt: skip
        empty_there = named_without_voxels(named[1 - side], moving_found if side == 0 else fixed_found)
        for value, name in found.items():
            if value in used:
                continue
            if segment_name_key(name) in empty_there:
                empty.append(f"'{name}' is empty in the {('moving', 'fixed')[side]} segmentation (named, no voxels)")
            else:
                alone.setdefault(role, []).append(name)
    said = [f"segments {', '.join(map(_quoted, names))} only in the {role} segmentation" for role, names in alone.items()]
    if not said and not empty:
        return None
    parts = []
    if said:
        fix = f"give them the same {key} on both to pair them"
        if len(alone.get("fixed", [])) == 1 and len(alone.get("moving", [])) == 1:
            fix += f", or pair them with --segments {alone['fixed'][0]}={alone['moving'][0]} if they are one structure"
        parts.append(f"{'; '.join(said)}: they do not guide ({fix})")
    if empty:
        parts.append(f"{'; '.join(empty)}: it does not guide; draw it there, or leave it out")
    return "; ".join(parts)
