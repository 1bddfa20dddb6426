"""Target landmarks that end far beyond the others after the transform: a wrong click, or two labels swapped
(each pairs with the other's partner). A helper's sweep: 10 of 12 landmarks at 0.0 mm and two swapped ones at
92 mm read "TRE 15.3 mm mean" without a word. Points in LPS mm, in the fixed space."""

from __future__ import annotations

import itertools

import numpy as np

FAR_OFF = "landmarks far off the others"  # how the warning begins
MIN_POINTS = 4  # the others' median means little below this
FAR_MM = 10.0  # an outlier is at least this far off ...
FAR_TIMES_MEDIAN = 5.0  # ... and this many times the median error


def outlier_warning(labels: list[str], fixed_lps: np.ndarray, mapped_lps: np.ndarray) -> str | None:
    """A warning naming target landmarks whose error (|mapped - fixed|, mm) is beyond FAR_MM and FAR_TIMES_MEDIAN
    times the median, and pairs of them that fit once their partners are exchanged; None otherwise."""
    if len(labels) < MIN_POINTS:
        return None
    errors = np.linalg.norm(mapped_lps - fixed_lps, axis=1)
    median = float(np.median(errors))
    far = [i for i, error in enumerate(errors) if error > max(FAR_MM, FAR_TIMES_MEDIAN * median)]
    if not far:
        return None
    said = ", ".join(f"'{labels[i]}' {errors[i]:.1f} mm" for i in far)
    near = max(FAR_MM / 2, 2.0 * median)
    swapped = [(labels[i], labels[j]) for i, j in itertools.combinations(far, 2)
               if np.linalg.norm(mapped_lps[j] - fixed_lps[i]) < near and np.linalg.norm(mapped_lps[i] - fixed_lps[j]) < near]  # fmt: skip
    why = (f": {' and '.join(f'{a} and {b}' for a, b in swapped)} look swapped (each fits the other's partner); give "
           "each the label of the same feature in both lists" if swapped
           else ": check their labels (the same feature in both lists) and where they were placed, or the "
           "registration is off there")  # fmt: skip
    return f"{FAR_OFF} after the transform ({said}; the others' median {median:.1f} mm){why}"
