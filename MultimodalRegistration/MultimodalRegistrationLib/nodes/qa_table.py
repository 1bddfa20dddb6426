"""QA results shown in Slicer: the metric/value/unit table node and the status text."""

from __future__ import annotations

import vtk

from ..qa.assess import AGREEMENT_FELL
from ..qa.landmark_outliers import FAR_OFF
from ..qa.point_frames import OTHER_FRAME
from ..qa.report_types import QAReport
from ..qa.worse import WRONG_WAY
from .qa_frames import SHOWN_FRAME

TABLE_COLUMNS = ("metric", "value", "unit", "better")
# Which way each number is good, by the start of its metric name (the table had not said; a helper's sweep).
_BETTER = (
    ("TRE", "lower"), ("FRE", "lower"), ("HD95", "lower"), ("Dice", "higher (1: the same voxels)"), ("MI", "higher"),
    ("NMI", "higher"), ("NCC", "higher, for one modality only"), ("Jacobian", "near 1 (0 or less: space folds)"),
    ("folding", "0"), ("inverse consistency", "lower"), ("stability spread", "lower (stable: under the threshold)"),
)  # fmt: skip


def better(metric: str) -> str:
    """Which way the number of ``metric`` (a table row's name) is good; "" for counts and verdicts."""
    if metric.endswith((" points", " finished", "verdict")) or metric == "warnings":
        return ""
    return next((said for start, said in _BETTER if metric.startswith(start)), "")
INVERTED_SINCE = "was inverted since its registration"  # nodes.qa's warning on a node Invert turned round


def _format(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def metric_rows(report: QAReport) -> list[tuple[str, str, str]]:
    """(metric, value, unit) rows: TRE and FRE apart, Dice per label, MI before/after, the Jacobian of
    a nonlinear transform, inverse consistency and the stability verdict when measured."""
    rows: list[tuple[str, str, str]] = []
    landmarks = report.landmarks
    if landmarks is not None:
        for title, before, after in (
            ("TRE", landmarks.tre_before, landmarks.tre_after),
            ("FRE", landmarks.fre_before, landmarks.fre_after),
        ):
            if after is None:
                continue
            rows += [
                (f"{title} points", _format(after.count), ""),
                (f"{title} mean before", _format(before.mean_mm), "mm"),
                (f"{title} mean after", _format(after.mean_mm), "mm"),
                (f"{title} RMS after", _format(after.rms_mm), "mm"),
                (f"{title} max after", _format(after.max_mm), "mm"),
            ]
            forward = landmarks.tre_forward if title == "TRE" else landmarks.fre_forward
            if forward is not None:
                rows.append((f"{title} mean after, fixed mapped forward (moving space)", _format(forward.mean_mm), "mm"))
    if report.segmentation is not None:
        for before, after in zip(report.segmentation.before, report.segmentation.after):
            rows += [
                (f"Dice {after.name} before", _format(before.dice), ""),
                (f"Dice {after.name} after", _format(after.dice), ""),
                (f"HD95 {after.name} after", _format(after.hausdorff95_mm), "mm"),
            ]
    before, after = report.images_before, report.images_after
    for label, unit, values in (
        ("MI", "nats", (before.mutual_information, after.mutual_information)),
        ("NMI", "", (before.normalized_mutual_information, after.normalized_mutual_information)),
        ("NCC", "", (before.normalized_cross_correlation, after.normalized_cross_correlation)),
    ):
        if any(value is not None for value in values):
            rows += [(f"{label} {stage}", _format(value), unit) for stage, value in zip(("before", "after"), values)]
    jacobian = report.jacobian
    if jacobian.spacing_mm is not None:  # nonlinear: it varies over the image
        rows += [
            ("Jacobian det. min", _format(jacobian.minimum), ""),
            ("Jacobian det. 1st percentile", _format(jacobian.percentile_1), ""),
            ("Jacobian det. 99th percentile", _format(jacobian.percentile_99), ""),
            ("Jacobian det. max", _format(jacobian.maximum), ""),
            ("folding (det. <= 0)", _format(jacobian.folding_percent, 4), "%"),
        ]
    consistency = report.inverse_consistency
    if consistency.mean_mm is not None:
        rows += [
            ("inverse consistency mean", _format(consistency.mean_mm), "mm"),
            ("inverse consistency max", _format(consistency.max_mm), "mm"),
        ]
    stability = report.stability
    if stability is not None:
        rows += [
            ("stability restarts finished", stability.counted, ""),
            ("stability spread p95", _format(stability.spread_p95_mm), "mm"),
            ("stability spread max", _format(stability.spread_max_mm), "mm"),
            ("stability verdict", stability.verdict, ""),
        ]
    if report.warnings:
        rows.append(("warnings", _format(len(report.warnings)), ""))
    return rows


def fill_metrics_table(table_node, report: QAReport) -> None:
    """Replace the table's content with :func:`metric_rows` and which way each is good (string columns, locked)."""
    rows = [(*row, better(row[0])) for row in metric_rows(report)]
    was_modifying = table_node.StartModify()
    table_node.RemoveAllColumns()
    for column, name in enumerate(TABLE_COLUMNS):
        array = vtk.vtkStringArray()
        array.SetName(name)
        for row in rows:
            array.InsertNextValue(row[column])
        table_node.AddColumn(array)
    table_node.SetColumnDescription("value", "after: with the transform under test; before: without it")
    if hasattr(table_node, "SetUseColumnTitleAsColumnHeader"):
        table_node.SetUseColumnTitleAsColumnHeader(True)
    else:  # Slicer versions before column titles
        table_node.SetUseColumnNameAsColumnHeader(True)
    table_node.SetLocked(True)  # results, not input: the next computation overwrites them
    table_node.EndModify(was_modifying)


def table_values(table_node) -> dict[str, str]:
    """The table as {metric: value}, for scripts and tests."""
    table = table_node.GetTable()
    metric, value = table.GetColumnByName("metric"), table.GetColumnByName("value")
    return {metric.GetValue(row): value.GetValue(row) for row in range(table.GetNumberOfRows())}


def summary_text(report: QAReport) -> str:
    """A few lines for a status label: the numbers that matter, which to trust, and the warnings."""
    lines = []
    landmarks = report.landmarks
    if landmarks is not None:
        tre_before, tre, fre = landmarks.tre_before, landmarks.tre_after, landmarks.fre_after
        if tre is not None:
            doubters = (WRONG_WAY, OTHER_FRAME, FAR_OFF, AGREEMENT_FELL, SHOWN_FRAME)  # AGREEMENT_FELL: hardened, say
            doubted = any(warning.startswith(doubters) or INVERTED_SINCE in warning for warning in report.warnings)
            lines.append(
                f"TRE {tre.mean_mm:.2f} mm mean, {tre.max_mm:.2f} mm max over {tre.count} target landmarks "
                f"(before {tre_before.mean_mm:.2f} mm): "
                + ("read the warning below first: it may not measure this registration." if doubted
                   else "the number to trust.")
            )
        if fre is not None:
            lines.append(
                f"FRE {fre.mean_mm:.2f} mm mean over {fre.count} fit landmarks: the transform was fitted to "
                "them, so it flatters; it says nothing about accuracy elsewhere."
            )
    if report.segmentation is not None:
        for before, after in zip(report.segmentation.before, report.segmentation.after):
            lines.append(f"Dice {after.name}: {before.dice:.3f} -> {after.dice:.3f}.")
    mi = (report.images_before.mutual_information, report.images_after.mutual_information)
    if None not in mi:
        lines.append(f"Mutual information {mi[0]:.3f} -> {mi[1]:.3f} nats (higher agrees better; not in mm).")
    stability = report.stability
    if stability is not None:
        lines.append(
            f"Stability: {stability.verdict} ({stability.counted} restarts finished; they and the result agree "
            f"within {stability.spread_p95_mm:.2f} mm, 95th percentile)."
        )
    lines += [f"Warning: {warning}" for warning in report.warnings]
    return "\n".join(lines)
