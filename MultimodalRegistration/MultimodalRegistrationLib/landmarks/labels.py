"""Pairing two landmark lists: by label when the labels allow it, else by order.

:func:`pair_landmarks` is the one pairing rule of the extension (prealignment, QA, guidance); the points
pass through unchanged (any frame, any dimension), only their order and selection change.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ..core.errors import InputError


def repeated_labels(fixed_labels: list[str] | None, moving_labels: list[str] | None) -> str:
    """For every label a list repeats: "label 'P2' appears twice in the moving list; ..." ('' when none does)."""
    parts = []
    for role, labels in (("fixed", fixed_labels), ("moving", moving_labels)):
        for label, count in Counter(labels or []).items():
            if count > 1 and label:
                times = "twice" if count == 2 else f"{count} times"
                parts.append(f"label '{label}' appears {times} in the {role} list")
    return "; ".join(parts)


def _unlabelled(labels: list[str] | None) -> bool:
    return labels is not None and not any(label.strip() for label in labels)


def _refuse_order_against_labels(fixed_labels: list[str], moving_labels: list[str]) -> None:
    """Refuse pairing by order when a label both lists hold (once each) is at another place in each: the order
    would pair it with another landmark, against what the labels say."""
    once = [{label: index for index, label in enumerate(labels) if label.strip() and labels.count(label) == 1}
            for labels in (fixed_labels, moving_labels)]  # fmt: skip
    for label, index in once[0].items():
        other = once[1].get(label)
        if other is not None and other != index:
            raise InputError(
                f"label '{label}' is point {index + 1} in the fixed list but point {other + 1} in the moving list, and "
                "the labels do not all match, so the points would be paired by order against it: give every landmark "
                "the same label in both lists (they then pair by label), or put the points in the same order"
            )


def _numbered(labels: list[str] | None) -> bool:
    """Whether the labels are 1, 2, ... in order: what the points readers give points without labels."""
    return bool(labels) and list(labels) == [str(index + 1) for index in range(len(labels))]


def _numbers(labels: list[str]) -> list[int] | None:
    """The numbers the labels end with (Slicer names points F-1, F-2, ...), or None when one ends with none."""
    found = [re.search(r"(\d+)\s*$", label) for label in labels]
    return [int(match.group(1)) for match in found] if all(found) else None


def _order_unconfirmed(fixed_labels: list[str], moving_labels: list[str]) -> list[str]:
    """A warning when no label is in both lists and their numbers do not run alike either ("T1, T2" against
    "MR-1, MR-2" pair by order as their numbers say; against "F-3, F-1" nothing confirms the order)."""
    # A list without labels is read as 1, 2, ...: its numbers confirm nothing (labelled L1..L10 against an
    # unlabelled list in reverse had been paired by order without a word, 68 mm TRE: a helper's QA sweep).
    unlabelled = [role for role, labels in (("fixed", fixed_labels), ("moving", moving_labels)) if _numbered(labels)]
    numbers = _numbers(fixed_labels)
    if not unlabelled and numbers is not None and numbers == _numbers(moving_labels):
        return []

    def shown(labels: list[str]) -> str:
        return ", ".join(labels[:3]) + (", ..." if len(labels) > 3 else "")

    if unlabelled:  # one list only: two unlabelled lists are told so before (pair_points)
        other = "moving" if unlabelled[0] == "fixed" else "fixed"
        why = f"the {unlabelled[0]} list has no labels (read as 1, 2, ...) and the {other} list's do not say the order"
    else:
        why = f"no label is in both lists (fixed: {shown(fixed_labels)}; moving: {shown(moving_labels)})"
    said = (f"points are paired by order because {why}: check that each fixed point and the moving point at its place "
            "mark the same feature, or give both lists the same labels")  # fmt: skip
    return [said]


def label_key(label: str) -> str:
    """A landmark label with case and spaces aside: how two lists' labels match when that pairs more of them."""
    return " ".join(label.split()).casefold()


def _matching_keys(fixed_labels: list[str] | None, moving_labels: list[str] | None) -> tuple[list, list] | None:
    """The labels with case and spaces ignored ("L1" and "l1 " alike), when that pairs more of them and leaves each
    list's labels unique; else None. "L1" against "l1" had paired by order, TRE 32 mm at the truth (a helper's QA
    sweep); segments already pair so."""
    if not fixed_labels or not moving_labels:
        return None
    keys = [label_key(label) for label in fixed_labels], [label_key(label) for label in moving_labels]
    if any(len(set(listed)) != len(listed) for listed in keys):
        return None
    return keys if len(set(keys[0]) & set(keys[1])) > len(set(fixed_labels) & set(moving_labels)) else None


def pair_points(
    moving: np.ndarray, fixed_labels: list[str] | None, moving_labels: list[str] | None
) -> tuple[np.ndarray, list[str] | None, str, list[str]]:
    """Reorder the moving points to match the fixed ones by label when every label matches (case and spaces
    ignored where that pairs more), else keep order; refused (:class:`InputError`) when a label both lists hold is
    at another place in each.

    Returns (moving points, moving labels, "label" or "order", warnings).
    """
    if fixed_labels is None or moving_labels is None:
        return moving, moving_labels, "order", []
    if (keyed := _matching_keys(fixed_labels, moving_labels)) is not None:
        order, _, paired_by, warnings = pair_points(np.arange(len(moving_labels)), *keyed)
        return np.asarray(moving)[order], [moving_labels[i] for i in order], paired_by, warnings
    unique = len(set(fixed_labels)) == len(fixed_labels) and len(set(moving_labels)) == len(moving_labels)
    if _numbered(fixed_labels) and _numbered(moving_labels):  # as the readers number points without labels
        return moving, moving_labels, "order", [
            ("points are paired by order because they have no labels (or are numbered 1, 2, ... as points without "
             "labels are read): label them alike in both lists, or check the order")]  # fmt: skip
    if unique and set(fixed_labels) == set(moving_labels):
        position = {label: index for index, label in enumerate(moving_labels)}
        order = [position[label] for label in fixed_labels]
        return moving[order], [moving_labels[i] for i in order], "label", []
    common = set(fixed_labels) & set(moving_labels)
    if not common:
        return moving, moving_labels, "order", _order_unconfirmed(fixed_labels, moving_labels)
    _refuse_order_against_labels(fixed_labels, moving_labels)
    if _unlabelled(fixed_labels) or _unlabelled(moving_labels):
        reason = "the points have no labels"
        fix = "label them alike in both lists, or check the order"
    else:
        if not unique:
            reason = repeated_labels(fixed_labels, moving_labels) or "some points have no label"
        else:
            only_fixed = sorted(set(fixed_labels) - common)
            only_moving = sorted(set(moving_labels) - common)
            reason = f"the labels do not all match: fixed only: {only_fixed}, moving only: {only_moving}"
        fix = "rename them so every label appears once in each list, or check the order"
    return moving, moving_labels, "order", [f"points are paired by order because {reason}: {fix}"]


def pair_landmarks(
    fixed: np.ndarray, moving: np.ndarray, fixed_labels: list[str] | None, moving_labels: list[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str], str, list[str]]:
    """Pair landmarks by label when both lists hold unique labels and enough of them match (all of them, or at
    least half of the longer list and 3, or all of a shorter list; a point without a partner is left out with a
    warning: a typo in one label must not pair the rest by order); else, lists of one length, by order. Returns
    (fixed, moving, labels, "label" or "order", warnings). Labels match with case and spaces ignored where that
    pairs more of them (:func:`_matching_keys`)."""
    if (keyed := _matching_keys(fixed_labels, moving_labels)) is not None:
        fixed, moving, labels, paired_by, warnings = pair_landmarks(fixed, moving, *keyed)
        written = dict(zip(keyed[0], fixed_labels))
        return fixed, moving, [written.get(label, label) for label in labels], paired_by, warnings
    unique = bool(fixed_labels) and bool(moving_labels)
    unique = unique and len(set(fixed_labels)) == len(fixed_labels) and len(set(moving_labels)) == len(moving_labels)
    # The points readers number unlabelled points 1, 2, ... in order: two such lists of different lengths share
    # labels that say nothing (a point missing from one list paired every later point with its neighbour's partner).
    numbered = len(fixed) != len(moving) and _numbered(fixed_labels) and _numbered(moving_labels)
    common = set() if numbered else set(fixed_labels or []) & set(moving_labels or [])
    # or every label of the shorter list is in the longer one (12 placed on the MR, 5 found on the ultrasound)
    enough = len(common) >= min(3, len(fixed), len(moving)) and (
        2 * len(common) >= max(len(fixed), len(moving)) or len(common) == min(len(fixed), len(moving)))
    if len(fixed) == len(moving) and not (unique and common and enough and common != set(fixed_labels)):
        moving, _, paired_by, warnings = pair_points(moving, fixed_labels, moving_labels)
        labels = fixed_labels or moving_labels or [f"P{i + 1}" for i in range(len(fixed))]
        return fixed, moving, labels, paired_by, warnings
    if not (common and unique and enough):
        repeated = repeated_labels(fixed_labels, moving_labels) if common else ""
        if numbered:
            repeated = ("both lists are numbered 1, 2, ... in order, as points without labels are read; if those "
                        "numbers are labels you gave, name the points P1, P2, ... instead")
        raise InputError(
            f"{len(fixed)} fixed landmarks but {len(moving)} moving landmarks, and they cannot be paired by label"
            f"{f' ({repeated})' if repeated else ''}: add the missing points or delete the extra ones, so that both "
            "lists hold the same landmarks in the same order, or give each landmark the same unique label in both "
            "lists (one without a partner is then left out)"
        )
    labels = [label for label in fixed_labels if label in common]
    position = {label: index for index, label in enumerate(moving_labels)}
    fixed_index = {label: index for index, label in enumerate(fixed_labels)}
    unmatched = sorted(set(fixed_labels) ^ set(moving_labels))
    shown = (label if label == label.strip() and label else f"'{label}'" for label in unmatched)  # 'L8 ' not L8
    warnings = [f"landmarks without a partner were left out: {', '.join(shown)}"]
    return (
        fixed[[fixed_index[label] for label in labels]],
        moving[[position[label] for label in labels]],
        labels,
        "label",
        warnings,
    )


def leave_out_skipped(
    fixed_labels: list[str], moving_labels: list[str], skipped: dict[str, list[str]], sources: dict[str, str],
    by_order: bool = False,
) -> list[str]:  # fmt: skip
    """Warnings for points marked skipped (Slicer's Skip: not visible in that image) that were left out of their
    list (``skipped`` and ``sources``, the list's name, by role "fixed"/"moving"); ``*_labels`` are the placed
    points' labels. Leaving a point out is safe only when the lists then pair by label (its partner is left out
    too); paired by order, it would shift every later pair: :class:`InputError`. ``by_order``: a list is numbered as
    points without labels are (:attr:`.points_io.PointsFile.numbered`), so the lists pair by order whatever the
    numbers share."""
    named = [f"{role} point '{label}' in {sources[role]}" for role in ("fixed", "moving") for label in skipped[role]]
    if not named:
        return []
    try:
        paired_by = "order" if by_order else pair_landmarks(
            np.zeros((len(fixed_labels), 3)), np.zeros((len(moving_labels), 3)), fixed_labels, moving_labels)[3]
    except InputError:
        paired_by = "order"
    if paired_by != "label":
        raise InputError(
            f"{named[0]} is marked skipped (Slicer's Skip: not visible in that image), and the lists pair by order, "
            "so leaving it out would shift every later pair: give both lists the same unique labels (a skipped "
            "point and its partner are then left out), or place the point, or delete it and its partner"
        )
    one = len(named) == 1
    partner = "its partner" if one else "their partners"
    said = f"{', '.join(named)} {'is' if one else 'are'} marked skipped (not visible in that image)"
    return [f"{said}: left out, with {partner} in the other list"]
