"""Which sections get a pair to the reference volume (the anchors): a subset, evenly spaced along the stack.

The reference is there to remove the slow bend that neighbour pairs leave (anatomy that changes along the
stack biases neighbouring pairs alike); the neighbour pairs carry the rest through the joint solve. So only
every ``every``-th section (counted by position, gaps included) needs a reference pair, which is the dearest
pair (mutual information).

Rule (:func:`anchor_every`): anchors about ``ANCHOR_MM`` apart along the stack, and never fewer than ``MIN_ANCHORS``
over the stack (a reference pair is noisier than a neighbour pair: several average out its noise). The picker
takes the first usable section, then the first usable section at least ``every`` positions after the last
anchor whose tissue is not much smaller than its recent neighbours' (a fragment is a poor anchor; with ``every``
1 every usable section is taken, fragments too), and finally
the last usable section when it lies at least ``every / 2`` positions after the last anchor. Deterministic:
it sees the sections in order, one at a time, like the reading loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .sections import SectionReport, off_size

ANCHOR_MM = 4.0  # along the stack (mm) between reference pairs: chosen on seeds 0-2 of bench_stack (stack_results.md)
MIN_ANCHORS = 6
AROUND = 3  # recent usable sections whose median tissue area a candidate anchor is compared with


def anchor_every(count: int, section_mm: float) -> int:
    """Positions between anchors for ``count`` sections ``section_mm`` apart (see the module notes); 1 or more."""
    every = max(1, round(ANCHOR_MM / section_mm))
    return max(1, min(every, (count - 1) // (MIN_ANCHORS - 1)))


@dataclass
class AnchorPicker:
    """Feed :meth:`candidate` every usable section in order; :meth:`taken` the ones whose reference pair ran."""

    every: int
    anchors: list[int] = field(default_factory=list)
    _areas: list[float] = field(default_factory=list)

    def candidate(self, report: SectionReport) -> bool:
        """Whether this usable section should get a reference pair."""
        recent = self._areas[-AROUND:]
        self._areas.append(report.tissue_mm2)
        if self.every > 1 and off_size(report.tissue_mm2, recent):  # small or large: a poor anchor
            return False
        return not self.anchors or report.section - self.anchors[-1] >= self.every

    def last(self, report: SectionReport) -> bool:
        """Whether the last usable section should get a reference pair too (it is not an anchor yet)."""
        return bool(self.anchors) and report.section - self.anchors[-1] >= max(1, self.every / 2)

    def taken(self, section: int) -> None:
        self.anchors.append(section)
