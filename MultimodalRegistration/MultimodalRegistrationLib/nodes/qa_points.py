"""Landmark lists for QA: fit and target lists paired separately, then joined for the assessment."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..landmarks.fit import pair_landmarks
from ..landmarks.labels import leave_out_skipped
from ..landmarks.points_io import without_labels
from .checks import check_node_pair
from .landmarks import placed_and_skipped
from .moving_frame import moving_points_and_skipped


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return result


def landmark_arguments(
    moving_volume, fit_lists: tuple, target_lists: tuple
) -> tuple[dict, str | None, list[str], dict]:
    """Pair the fit lists and the target lists separately, then join them for assess_registration.

    Returns (keyword arguments, how the pairs were matched, pairing warnings, source names).
    """
    joined = {"fixed": [], "moving": [], "labels": [], "roles": []}
    paired, warnings, sources = [], [], {}
    reused = [node.GetName() for node in fit_lists if node is not None and node in target_lists]
    if reused:  # fitted points measure the fit, not the error elsewhere: as targets they flatter the TRE
        raise InputError(f"'{reused[0]}' is selected as a fit list and as a target list: a fit point's error is FRE, "
                         "not TRE; give the targets lists of their own (points the registration did not use), or "
                         "clear the fit lists")  # fmt: skip
    for role, (fixed_node, moving_node) in (("fit", fit_lists), ("target", target_lists)):
        if fixed_node is None and moving_node is None:
            continue
        check_node_pair(fixed_node, moving_node, f"{role} landmarks", f"the fixed {role} point list",
                        f"the moving {role} point list", "select two lists")  # fmt: skip
        fixed, fixed_labels, fixed_skipped = placed_and_skipped(fixed_node, f"fixed {role}")
        moving, moving_labels, moving_skipped = moving_points_and_skipped(moving_node, moving_volume, f"moving {role}")
        # a point marked skipped is left out with its partner, as mmreg qa does (the panel had refused the lists)
        warnings += leave_out_skipped(fixed_labels, moving_labels, {"fixed": fixed_skipped, "moving": moving_skipped},
                                      {"fixed": f"'{fixed_node.GetName()}'", "moving": f"'{moving_node.GetName()}'"})
        fixed, fixed_labels = without_labels(fixed, fixed_labels, moving_skipped)
        moving, moving_labels = without_labels(moving, moving_labels, fixed_skipped)
        for side, node, points in (("fixed", fixed_node, fixed), ("moving", moving_node, moving)):
            if len(points) == 0:
                raise InputError(f"the {side} {role} list '{node.GetName()}' has no points: place them or clear it")
        fixed, moving, labels, how, notes = pair_landmarks(fixed, moving, fixed_labels, moving_labels)
        joined["fixed"].append(fixed)
        joined["moving"].append(moving)
        joined["labels"] += [str(label) for label in labels]
        joined["roles"] += [role] * len(labels)
        paired.append(f"{role} points by {how}")
        warnings += notes
        sources[f"fixed_{role}_points"] = fixed_node.GetName()
        sources[f"moving_{role}_points"] = moving_node.GetName()
    if not paired:
        return {}, None, [], {}
    labels = joined["labels"]
    fit_names = {label for label, role in zip(labels, joined["roles"]) if role == "fit"}
    if fit_names & {label for label, role in zip(labels, joined["roles"]) if role == "target"}:
        labels = [f"{role} {label}" for label, role in zip(labels, joined["roles"])]
    labels = _unique(labels)  # already paired: identical unique labels keep the pairs as they are
    arguments = {
        "fixed_points_ras": np.vstack(joined["fixed"]),
        "moving_points_ras": np.vstack(joined["moving"]),
        "fixed_point_labels": labels,
        "moving_point_labels": labels,
        "fit_labels": [label for label, role in zip(labels, joined["roles"]) if role == "fit"],
    }
    return arguments, "; ".join(paired), warnings, sources
