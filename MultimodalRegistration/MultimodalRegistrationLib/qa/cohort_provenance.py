"""How a cohort was run, for the head of its report: when, with which versions, engines, presets and command."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timezone

from ..core.records import Record
from ..core.version import __version__, distribution_version
from ..engines.registry import engine_spec


@dataclass
class CohortProvenance(Record):
    """``date`` is UTC (ISO 8601); ``versions`` maps a package to its version; ``command`` is the command line
    that ran the cohort (each case's own ``mmreg register`` command is in its summary.json)."""

    date: str
    versions: dict[str, str]
    engines: list[str]
    presets: list[str]
    command: str | None = None
    cases: int = 0


def _version(distribution: str) -> str:
    return distribution_version(distribution) or "not installed"


def cohort_provenance(engines: list[str], presets: list[str], command: str | None, cases: int) -> CohortProvenance:
    """The provenance of a cohort run now, in this Python, with ``engines`` (names) and ``presets``."""
    versions = {"mmreg": __version__}
    for name in sorted(set(engines)):
        distribution = engine_spec(name).distribution
        versions[distribution] = _version(distribution)
    versions["SimpleITK"] = _version("SimpleITK")
    versions["Python"] = platform.python_version()
    return CohortProvenance(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=versions,
        engines=sorted(set(engines)),
        presets=sorted(set(presets)),
        command=command,
        cases=cases,
    )
