"""The QA report of one case: one self-contained HTML file with the metrics tables and the pictures.

It is rendered from the :class:`.QAReport` whose :meth:`~.QAReport.to_dict` ``mmreg qa --json``
writes (see :func:`.assess.assess_registration`), so the two never disagree. Pictures are embedded as PNG data URIs;
each ``<img>`` also names its file (``data-file``), written beside the report.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from ..core.files import write_text_atomically
from .images import ImageAgreement
from .jacobian import InverseConsistency, JacobianStatistics
from .landmarks import LandmarkErrors
from .overlap import SegmentationOverlap
from .report_types import QAReport
from .stability import StabilityResult

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
.unstable { color: #b00; font-weight: bold; } .stable { color: #070; font-weight: bold; }
.inconclusive { color: #a60; font-weight: bold; }
.warning { color: #a60; } figure { margin: 0.5em; display: inline-block; vertical-align: top; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ccc; }
.note { color: #666; font-size: 0.9em; }
"""


def _number(value, digits: int = 2) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    def cells(values, tag):
        return "".join(
            f'<{tag} class="text">{value}</{tag}>' if index < text_columns else f"<{tag}>{value}</{tag}>"
            for index, value in enumerate(values)
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"


def _escape(value) -> str:
    return html.escape(str(value))


def _landmarks(landmarks: LandmarkErrors) -> str:
    parts = [
        "<h2>Landmark errors</h2>",
        (
            f'<p class="note">{_escape(landmarks.direction)}; '
            f"pairs matched by {_escape(landmarks.paired_by)}. FRE: landmarks used to fit the transform; "
            "TRE: all others. The two are never pooled. Lower is better; clicks are rarely repeatable to better "
            "than 1-2 mm, so no result reads 0.</p>"
        ),
    ]
    rows = [
        [
            label,
            _number(stats.count),
            _number(stats.mean_mm),
            _number(stats.median_mm),
            _number(stats.rms_mm),
            _number(stats.max_mm),
        ]
        for label, stats in (
            ("FRE before", landmarks.fre_before),
            ("FRE after", landmarks.fre_after),
            ("TRE before", landmarks.tre_before),
            ("TRE after", landmarks.tre_after),
            ("FRE after, fixed mapped forward (moving space)", landmarks.fre_forward),
            ("TRE after, fixed mapped forward (moving space)", landmarks.tre_forward),
        )
        if stats is not None
    ]
    parts.append(_table(["", "points", "mean (mm)", "median (mm)", "RMS (mm)", "max (mm)"], rows))
    point_rows = [
        [
            _escape(row.label),
            "FRE" if row.role == "fit" else "TRE",
            " ".join(_number(float(v), 1) for v in row.fixed_ras),
            " ".join(_number(float(v), 1) for v in row.mapped_ras),
            _number(row.error_before_mm),
            _number(row.error_after_mm),
        ]
        for row in landmarks.rows
    ]
    parts.append(
        _table(
            ["label", "kind", "fixed R A S (mm)", "moving mapped to fixed R A S (mm)", "before (mm)", "after (mm)"],
            point_rows,
            text_columns=4,
        )
    )
    return "".join(parts)


def _segmentation(segmentation: SegmentationOverlap) -> str:
    rows = [
        [
            _escape(after.name),
            _number(before.dice, 3),
            _number(after.dice, 3),
            _number(before.mean_surface_distance_mm),
            _number(after.mean_surface_distance_mm),
            _number(before.hausdorff95_mm),
            _number(after.hausdorff95_mm),
            _number(after.fixed_volume_ml),
            _number(after.moving_volume_ml),
        ]
        for before, after in zip(segmentation.before, segmentation.after)
    ]
    header = [
        "label",
        "Dice before",
        "Dice after",
        "MSD before (mm)",
        "MSD after (mm)",
        "HD95 before (mm)",
        "HD95 after (mm)",
        "fixed (mL)",
        "warped moving (mL)",
    ]
    note = (
        f'<p class="note">moving labelmap warped with {_escape(segmentation.interpolation)} interpolation; '
        "MSD: mean symmetric surface distance; HD95: 95% Hausdorff distance. Dice: higher is better (1: the same "
        "voxels); distances: lower is better.</p>"
    )
    limited = [after.limited_by_field_of_view for after in segmentation.after]
    if not any(limited):
        return "<h2>Segmentation overlap</h2>" + note + _table(header, rows)
    # a segment an image's field of view cuts is measured only where both images see it: say which image cut it
    for row, by in zip(rows, limited):
        row.insert(1, _escape(by or "–"))
    note += '<p class="note">cut by: whose field of view cut the segment; it is measured where both images see it.</p>'
    return "<h2>Segmentation overlap</h2>" + note + _table([header[0], "cut by", *header[1:]], rows, text_columns=2)


def _images(before: ImageAgreement, after: ImageAgreement) -> str:
    rows = [
        [label, _number(values[0], digits), _number(values[1], digits)]
        for label, values, digits in (
            ("mutual information (nats)", (before.mutual_information, after.mutual_information), 4),
            (
                "normalised mutual information",
                (before.normalized_mutual_information, after.normalized_mutual_information),
                4,
            ),
            (
                "normalised cross-correlation",
                (before.normalized_cross_correlation, after.normalized_cross_correlation),
                4,
            ),
            ("overlap fraction", (before.overlap_fraction, after.overlap_fraction), 3),
        )
    ]
    note = (
        f'<p class="note">over the overlap of the images, at {after.grid_text}, '
        f"{after.bins} histogram bins; higher is better. The cross-correlation compares images of one modality only: "
        "between modalities (CT and MR) it may fall at the right result.</p>"
    )
    return "<h2>Image agreement</h2>" + note + _table(["", "before", "after"], rows)


def _deformation(jacobian: JacobianStatistics, consistency: InverseConsistency) -> str:
    rows = [
        [label, _number(value, 4)]
        for label, value in (
            ("minimum", jacobian.minimum),
            ("1st percentile", jacobian.percentile_1),
            ("mean", jacobian.mean),
            ("99th percentile", jacobian.percentile_99),
            ("maximum", jacobian.maximum),
            ("% &le; 0 (folding)", jacobian.folding_percent),
        )
    ]
    spacing = jacobian.spacing_mm
    where = "constant (linear transform)" if spacing is None else f"sampled every {spacing:.2f} mm over the fixed image"
    smallest = " ".join(_number(v, 1) for v in jacobian.minimum_at_ras)
    parts = [
        "<h2>Deformation sanity</h2>",
        f'<p class="note">Jacobian determinant of fixed &rarr; moving, {where}; smallest at R A S {smallest} mm. '
        "1: volume kept; above 1: the fixed region maps to a larger moving one; at or below 0: space folds, which "
        "no anatomy does.</p>",
        _table(["Jacobian determinant", ""], rows),
    ]
    if consistency.mean_mm is not None:
        parts.append(
            _table(
                ["inverse consistency", "mm"],
                [
                    ["mean", _number(consistency.mean_mm, 3)],
                    ["95th percentile", _number(consistency.p95_mm, 3)],
                    ["max", _number(consistency.max_mm, 3)],
                ],
            )
        )
    else:
        parts.append(f'<p class="note">inverse consistency: {_escape(consistency.reason or "not measured")}</p>')
    return "".join(parts)


def _stability(stability: StabilityResult) -> str:
    verdict = stability.verdict
    summary = (
        f"<p>Restarted {stability.restarts} times ({_escape(stability.engine)} {_escape(stability.preset)}) "
        f"from {stability.rotation_deg:g}&deg; and {stability.shift_mm:g} mm perturbations; "
        f"{stability.counted} restarts finished, and their results "
        f"disagree by {stability.spread_p95_mm:.2f} mm (95th percentile) and {stability.spread_max_mm:.2f} mm "
        f'(max) over {stability.points} foreground points: <span class="{verdict}">{verdict}</span> '
        f"(threshold {stability.threshold_mm:g} mm).</p>"
    )
    rows = [
        [
            str(run.index + 1),
            _number(run.distance_p95_mm),
            _number(run.distance_max_mm),
            _number(run.seconds, 1),
            _escape(run.error or ""),
        ]
        for run in stability.runs
    ]
    note = (
        f'<p class="note">{stability.parallel} at a time, {stability.threads_per_run} thread(s) each, '
        f"{stability.wall_seconds:.1f} s in all.</p>"
    )
    table = _table(["restart", "p95 from result (mm)", "max from result (mm)", "seconds", "error"], rows)
    return "<h2>Stability (no ground truth needed)</h2>" + summary + table + note


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _pictures(pictures: dict[str, dict[str, Path]], base: Path, read_from: dict | None = None) -> str:
    captions = {
        "checkerboard": "checkerboard of fixed and moving",
        "difference": "difference of rank-normalised grey levels (dark: agreement, for images of one modality; "
        "between modalities tissue differs anyway: judge edges in the checkerboard)",
        "fusion": "fixed in magenta, moving in green (edges of one colour beside the other's: misalignment)",
    }
    parts = [
        "<h2>Pictures</h2>",
        (
            '<p class="note">axial, coronal and sagittal planes through the region of interest, in the fixed image '
            "space as Slicer shows them (the patient's left on the right); before registration, then after.</p>"
        ),
    ]
    for kind, stages in pictures.items():
        parts.append(f"<h3>{_escape(captions.get(kind, kind))}</h3><div>")
        for stage in ("before", "after"):
            if stage not in stages:
                continue
            path = Path(stages[stage])
            name = os.path.relpath(path, base)
            source = Path(read_from[kind][stage]) if read_from else path
            parts.append(
                f'<figure><img src="{_data_uri(source)}" alt="{_escape(kind)} {stage}" data-file="{_escape(name)}">'
                f"<figcaption>{stage}</figcaption></figure>"
            )
        parts.append("</div>")
    return "".join(parts)


def render_html(report: QAReport, pictures: dict[str, dict[str, Path]] | None = None, base: Path | None = None,
                read_from: dict[str, dict[str, Path]] | None = None) -> str:  # fmt: skip
    """The report as HTML text (picture files embedded): ``pictures`` where the files will be (named relative to
    ``base``), ``read_from`` where they are now (default: there)."""
    title = "Registration QA"
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    rows = [[_escape(key.replace("_", " ")), _escape(value)] for key, value in report.inputs.items() if value]
    rows.append(["transform kind", _escape(report.transform.kind)])
    rows.append(["direction", _escape(report.transform.direction)])
    parts.append(_table(["input", ""], rows, text_columns=2))
    if report.warnings:
        parts.append("<ul>" + "".join(f'<li class="warning">{_escape(w)}</li>' for w in report.warnings) + "</ul>")
    if report.landmarks is not None:
        parts.append(_landmarks(report.landmarks))
    if report.segmentation is not None:
        parts.append(_segmentation(report.segmentation))
    parts.append(_images(report.images_before, report.images_after))
    parts.append(_deformation(report.jacobian, report.inverse_consistency))
    if report.stability is not None:
        parts.append(_stability(report.stability))
    if pictures:
        parts.append(_pictures(pictures, base or Path.cwd(), read_from))
    parts.append(f'<p class="note">MultimodalRegistrationLib {_escape(report.library_version)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html_report(
    path: str | os.PathLike, report: QAReport, pictures: dict[str, dict[str, Path]] | None = None
) -> None:
    """Write the self-contained HTML report (pictures embedded) atomically."""
    path = Path(path)
    text = render_html(report, pictures, base=path.parent)
    write_text_atomically(path, text)
