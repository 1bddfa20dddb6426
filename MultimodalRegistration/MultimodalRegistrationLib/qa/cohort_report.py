"""The cohort's HTML report: one self-contained page, worst cases first, a thumbnail per case."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from ..core.files import write_text_atomically
from .cohort_provenance import CohortProvenance

_ORDER = {"failed": 0, "check": 1, "ok": 2}
_COLOUR = {"failed": "#c62828", "check": "#ef6c00", "ok": "#2e7d32"}


def counts_line(counts: dict[str, int]) -> str:
    """The cases by verdict in the words the CSV, the progress bar and the report share: failed, check, ok."""
    return ", ".join(f"{verdict} {counts.get(verdict, 0)}" for verdict in ("failed", "check", "ok"))


def _thumbnail(path: str | None) -> str:
    if not path or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:360px">'


def _number(value, digits: int = 3) -> str:
    return "" if value in (None, "") else f"{float(value):.{digits}f}"


def _dice(row: dict) -> str:
    """The guiding segments' mean Dice before -> after, for a case guided by segments; else empty."""
    if row.get("dice_after") in (None, ""):
        return ""
    return f"{_number(row['dice_before'], 2)} → {_number(row['dice_after'], 2)}"


def _provenance_html(provenance: CohortProvenance | None) -> list[str]:
    """The report's head: when the cohort ran, with which versions, engines, presets and command."""
    if provenance is None:
        return []
    versions = ", ".join(f"{name} {version}" for name, version in provenance.versions.items())
    items = [
        ("date (UTC)", provenance.date),
        ("versions", versions),
        ("engine", ", ".join(provenance.engines)),
        ("preset", ", ".join(provenance.presets)),
    ]
    lines = ["<table class='provenance'>"]
    lines += [f"<tr><th>{name}</th><td>{html.escape(value)}</td></tr>" for name, value in items]
    if provenance.command:
        lines.append(f"<tr><th>command</th><td><code>{html.escape(provenance.command)}</code></td></tr>")
    lines.append("<tr><th>each case</th><td>its <code>mmreg register</code> command is in its summary.json "
                 "(<code>provenance.command</code>)</td></tr></table>")  # fmt: skip
    return lines


def _case_links(files: dict[str, str], folder: Path) -> str:
    """Links to a case's own QA report (HTML) and its QA JSON, relative to the report's folder."""
    links = []
    for key, label in (("qa_report", "QA report"), ("qa", "qa.json")):
        if files.get(key):
            links.append(f'<a href="{html.escape(os.path.relpath(files[key], folder))}">{label}</a>')
    return "<br>" + " · ".join(links) if links else ""


def write_cohort_report(
    path: str | os.PathLike, rows: list[dict], outputs: dict[str, dict[str, str]],
    provenance: CohortProvenance | None = None,
) -> None:  # fmt: skip
    """Write ``path``: how the cohort ran, then a table of the cases (rows as in ``batch.csv``), failed first,
    then check, then ok; within each, the smallest metric gain first. ``outputs`` maps case -> output name ->
    file path; each case links its own QA report."""
    path = Path(path)

    def gain(row: dict) -> float:
        if row["metric_after"] is None or row["metric_before"] is None:
            return float("-inf")
        return float(row["metric_after"]) - float(row["metric_before"])

    ordered = sorted(rows, key=lambda row: (_ORDER[row["verdict"]], gain(row)))
    counts = {verdict: sum(row["verdict"] == verdict for row in rows) for verdict in _ORDER}
    lines = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>mmreg batch</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{border-bottom:1px solid #ddd;padding:6px;"
        "vertical-align:top;text-align:left}table{border-collapse:collapse}</style></head><body>",
        f"<h1>Cohort: {len(rows)} cases</h1>",
        *_provenance_html(provenance),
        f"<p>{counts_line(counts)}. Mutual information in nats (higher agrees better); TRE in mm at the landmarks; "
        "a case guided by segments is judged by their mean Dice. Thumbnails: checkerboard before (top) and after.</p>",
        "<table><tr><th>case</th><th>verdict</th><th>reasons</th><th>MI before → after</th><th>TRE median</th>"
        "<th>guiding segments' Dice</th><th>seconds</th><th>checkerboard</th></tr>",
    ]
    for row in ordered:
        case = row["case"]
        files = outputs.get(case, {})
        link = _case_links(files, path.parent)
        reasons = html.escape(row["reasons"] or row["message"] or "")
        lines.append(
            f"<tr><td>{html.escape(case)}{link}</td>"
            f"<td style='color:{_COLOUR[row['verdict']]};font-weight:bold'>{row['verdict']}</td>"
            f"<td>{reasons}</td><td>{_number(row['metric_before'])} → {_number(row['metric_after'])}</td>"
            f"<td>{_number(row['tre_median_mm'], 2)}</td><td>{_dice(row)}</td><td>{_number(row['seconds'], 1)}</td>"
            f"<td>{_thumbnail(files.get('checkerboard'))}</td></tr>"
        )
    lines.append("</table></body></html>")
    text = "\n".join(lines)
    write_text_atomically(path, text)
