"""Progress of an engine, read from its log by another process (engines hold the GIL while they run).

Standard library only: the GUI side imports this without loading any engine.
"""

from __future__ import annotations

from .registry import ENGINES


def log_fraction(engine: str, text: str, iterations: list[int]) -> tuple[float, int]:
    """Fraction of the planned work done (0..1) and the current level (1-based) from an engine log.

    ``iterations`` is the planned maximum number of iterations of every level, in order.
    Levels that converge early count as done when the next one starts.
    """
    if engine not in ENGINES or not iterations:
        return 0.0, 0
    header, row = ENGINES[engine].log_patterns
    starts = [match.end() for match in header.finditer(text)]
    if not starts:
        return 0.0, 0
    level = min(len(starts), len(iterations))
    rows = len(row.findall(text, starts[-1]))
    done = (level - 1) + min(rows / max(iterations[level - 1], 1), 1.0)
    return min(done / len(iterations), 1.0), level
