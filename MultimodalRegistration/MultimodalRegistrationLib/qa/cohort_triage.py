"""Triage of a cohort: the cases of one engine and preset compared with each other.

* :func:`cohort_outliers`: a robust z-score (median and MAD) of the final metric and of the metric gain finds the
  cases far below the others.
* :func:`apply_cohort` adds those reasons to the per-case verdicts of :func:`.triage.triage_case` (``ok`` becomes
  ``check``).

A batch calls them in that order (or :func:`triage_cohort`, which does all three)::

    verdicts = {case: triage_case(summary, report, failure) for case, (summary, report, failure) in cases.items()}
    rows = [CohortRow.from_summary(case, summary) for case, (summary, _, _) in cases.items() if summary]
    final = apply_cohort(verdicts, cohort_outliers(rows))

Units: mutual information (MI) in nats, higher agrees better.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError
from ..registration.summary import RegistrationSummary
from .report_types import QAReport
from .triage import Verdict, triage_case

# Cohort: a robust z-score below -3.5 (Iglewicz and Hoaglin's cut-off for the MAD-based modified z-score)
# is an outlier; a high one is a better-than-usual case, not a suspicious one.
COHORT_Z = 3.5
MAD_SCALE = 1.4826  # MAD x 1.4826 estimates the standard deviation of normally distributed values
MEAN_AD_SCALE = 1.2533  # mean absolute deviation x sqrt(pi/2): the same, used when the MAD is 0
# Fewer cases than this give no median and spread worth comparing against.
COHORT_MIN_CASES = 5
# The spread is never taken as smaller than 5% of the median nor than 0.01 nats, so an outlier lies at least
# 17.5% below the median. Correct results differ by more than a homogeneous cohort's MAD says: the MI of a
# correct result depends on its pose (interpolation smooths the noise of obliquely resampled images). Measured
# on 12 phantom pairs registered under 1.1 mm (elastix and ANTs rigid, 4 mm voxels, poses 2-179 degrees):
# final MI 0.617-0.685 nats, median 0.663, MAD-based spread 0.013; the two near-axis poses (2 and 6 degrees)
# end 6-7% below the median, robust z -2.9 to -3.5 without this floor, -1.4 with it. The MNI head
# registered to the phantom ends at 0.456 nats (31% below, z -6.2). The 0.01 nats is the MI change of a
# fraction of a millimetre (see METRIC_TOLERANCE_NATS), for gains near zero.
COHORT_MIN_SPREAD_FRACTION = 0.05
COHORT_MIN_SPREAD_NATS = 0.01
# A low gain counts only when the final MI is low too (robust z below this): the gain depends on where a case
# started, and a case that started closer gains less with a usual result. Measured in the cohort above: the
# 6-degree pose gains 0.325 nats against a median of 0.472 (gain z -3.1) with a final z of -1.4; the MNI head
# has gain z -3.8 with final z -6.2.
GAIN_NEEDS_FINAL_Z = -COHORT_Z / 2


@dataclass
class CohortRow:
    """One case as the cohort sees it: its engine and preset (the group it is compared within) and its
    MI before and after registration (nats; None when the registration produced no result, and then the
    case is left out of the cohort's statistics)."""

    case: str
    engine: str
    preset: str
    metric_before: float | None
    metric_after: float | None

    @classmethod
    def from_summary(cls, case: str, summary: RegistrationSummary) -> CohortRow:
        """The case's row; a guided case's MI is left out (None), as its guidance judges it: an MR -> TRUS case,
        right by its Dice, read "the metric is low for the cohort" beside CT/MR cases (a helper's sweep)."""
        provenance = summary.provenance
        if provenance.guidance is not None:
            return cls(case, provenance.engine, provenance.preset, None, None)
        return cls(case, provenance.engine, provenance.preset, summary.metric_before, summary.metric_after)

    @property
    def gain(self) -> float | None:
        """MI after minus MI before (nats)."""
        if self.metric_before is None or self.metric_after is None:
            return None
        return self.metric_after - self.metric_before


def robust_z(values: np.ndarray, min_spread: float = 0.0, min_fraction: float = 0.0) -> tuple[np.ndarray, float, float]:
    """(z-scores, median, spread): z = (value - median) / spread. The spread is 1.4826 x the median absolute
    deviation; when over half the values are equal (MAD 0), 1.2533 x the mean absolute deviation; and never
    below ``min_spread`` nor ``min_fraction`` x |median|."""
    values = np.asarray(values, float)
    median = float(np.median(values))
    deviations = np.abs(values - median)
    spread = MAD_SCALE * float(np.median(deviations))
    if spread == 0:
        spread = MEAN_AD_SCALE * float(deviations.mean())
    spread = max(spread, min_spread, min_fraction * abs(median))
    if spread == 0:  # all values equal and no floor: nothing stands out
        return np.zeros_like(values), median, 0.0
    return (values - median) / spread, median, spread


def _finite(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value))


def _group_scores(values: dict[str, float]) -> tuple[dict[str, float], float]:
    """Case -> robust z of ``values`` (the cohort floors applied), and the median."""
    scores, median, _ = robust_z(np.array(list(values.values())), COHORT_MIN_SPREAD_NATS, COHORT_MIN_SPREAD_FRACTION)
    return dict(zip(values, scores.tolist())), median


LOW_FOR_COHORT = "low for the cohort"  # in each reason the cohort's rules give (mmreg batch names those cases)


def cohort_outliers(rows: list[CohortRow]) -> dict[str, list[str]]:
    """Cases whose final MI, or MI gain, lies far below the other cases of the same engine and preset.

    Within each group of at least COHORT_MIN_CASES cases with a metric, a robust z-score below -COHORT_Z
    gives a reason (high scores never do). A low gain counts only when the final MI's z is below
    GAIN_NEEDS_FINAL_Z too: with a usual final MI, a small gain means the case started closer, not that it failed.
    Returns only the flagged cases: case -> reasons. Case names must be unique.
    """
    cases = [row.case for row in rows]
    repeated = sorted({case for case in cases if cases.count(case) > 1})
    if repeated:
        raise InputError(f"case names repeat in the cohort: {', '.join(repeated)}: give each case its own name")
    groups: dict[tuple[str, str], list[CohortRow]] = {}
    for row in rows:
        groups.setdefault((row.engine, row.preset), []).append(row)
    outliers: dict[str, list[str]] = {}
    for (engine, preset), members in groups.items():
        finals = {row.case: row.metric_after for row in members if _finite(row.metric_after)}
        gains = {row.case: row.gain for row in members if _finite(row.gain)}
        if len(finals) < COHORT_MIN_CASES:
            continue
        final_z, final_median = _group_scores(finals)
        group = f"over {len(finals)} {engine} {preset} cases"
        for case, score in final_z.items():
            if score < -COHORT_Z:
                outliers.setdefault(case, []).append(
                    f"the metric is {LOW_FOR_COHORT}: {finals[case]:.3f} nats against a median of "
                    f"{final_median:.3f} {group} (robust z {score:.1f}): look at the checkerboard"
                )
        if len(gains) < COHORT_MIN_CASES:
            continue
        gain_z, gain_median = _group_scores(gains)
        for case, score in gain_z.items():
            if score < -COHORT_Z and final_z[case] < GAIN_NEEDS_FINAL_Z:
                outliers.setdefault(case, []).append(
                    f"the metric gain is {LOW_FOR_COHORT}: {gains[case]:.3f} nats against a median of "
                    f"{gain_median:.3f} {group} (robust z {score:.1f}): look at the checkerboard"
                )
    return outliers


def apply_cohort(verdicts: Mapping[str, Verdict], outliers: Mapping[str, list[str]]) -> dict[str, Verdict]:
    """The final verdicts: each outlier's reasons added to its verdict, ``ok`` raised to ``check``."""
    unknown = sorted(set(outliers) - set(verdicts))
    if unknown:
        raise InputError(f"cohort outliers for cases without a verdict: {', '.join(unknown)}")
    final = {}
    for case, verdict in verdicts.items():
        for reason in outliers.get(case, []):
            verdict = verdict.flagged("check", reason)
        final[case] = verdict
    return final


def triage_cohort(
    cases: Mapping[str, tuple[RegistrationSummary | None, QAReport | None, str | None]],
) -> dict[str, Verdict]:
    """Every case's final verdict: :func:`triage_case` per case (summary, report, failure message), then
    the cohort outliers among the cases with a summary, then :func:`apply_cohort`."""
    verdicts = {case: triage_case(*records) for case, records in cases.items()}
    rows = [CohortRow.from_summary(case, summary) for case, (summary, _, _) in cases.items() if summary is not None]
    return apply_cohort(verdicts, cohort_outliers(rows))
