"""QA results shown in Slicer: the metric/value/unit table node and the status text."""

from __future__ import annotations

import vtk

TABLE_COLUMNS = ("metric", "value", "unit")


def _format(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def metric_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """(metric, value, unit) rows: TRE and FRE apart, Dice per label, MI before/after, the Jacobian of
    a nonlinear transform, inverse consistency and the stability verdict when measured."""
    rows: list[tuple[str, str, str]] = []
    landmarks = metrics.get("landmarks")
    if landmarks:
        for name in ("tre", "fre"):
            before, after = landmarks[name]["before"], landmarks[name]["after"]
            if after is None:
                continue
            title = name.upper()
            rows += [
                (f"{title} points", _format(after["count"]), ""),
                (f"{title} mean before", _format(before["mean_mm"]), "mm"),
                (f"{title} mean after", _format(after["mean_mm"]), "mm"),
                (f"{title} RMS after", _format(after["rms_mm"]), "mm"),
                (f"{title} max after", _format(after["max_mm"]), "mm"),
            ]
    segmentation = metrics.get("segmentation")
    if segmentation:
        for before, after in zip(segmentation["before"], segmentation["after"]):
            rows += [
                (f"Dice {after['name']} before", _format(before["dice"]), ""),
                (f"Dice {after['name']} after", _format(after["dice"]), ""),
                (f"HD95 {after['name']} after", _format(after["hausdorff95_mm"]), "mm"),
            ]
    images = metrics.get("images", {})
    for key, label, unit in (
        ("mutual_information", "MI", "nats"),
        ("normalized_mutual_information", "NMI", ""),
        ("normalized_cross_correlation", "NCC", ""),
    ):
        values = [images.get(stage, {}).get(key) for stage in ("before", "after")]
        if any(value is not None for value in values):
            rows += [(f"{label} {stage}", _format(value), unit) for stage, value in zip(("before", "after"), values)]
    jacobian = metrics.get("jacobian")
    if jacobian and jacobian.get("spacing_mm") is not None:  # nonlinear: it varies over the image
        rows += [
            ("Jacobian det. min", _format(jacobian["minimum"]), ""),
            ("Jacobian det. 1st percentile", _format(jacobian["percentile_1"]), ""),
            ("Jacobian det. 99th percentile", _format(jacobian["percentile_99"]), ""),
            ("Jacobian det. max", _format(jacobian["maximum"]), ""),
            ("folding (det. <= 0)", _format(jacobian["folding_percent"], 4), "%"),
        ]
    consistency = metrics.get("inverse_consistency") or {}
    if consistency.get("mean_mm") is not None:
        rows += [
            ("inverse consistency mean", _format(consistency["mean_mm"]), "mm"),
            ("inverse consistency max", _format(consistency["max_mm"]), "mm"),
        ]
    stability = metrics.get("stability")
    if stability:
        rows += [
            ("stability restarts", _format(stability["restarts"]), ""),
            ("stability spread p95", _format(stability["spread_p95_mm"]), "mm"),
            ("stability spread max", _format(stability["spread_max_mm"]), "mm"),
            ("stability verdict", stability["verdict"], ""),
        ]
    if metrics.get("warnings"):
        rows.append(("warnings", _format(len(metrics["warnings"])), ""))
    return rows


def fill_metrics_table(table_node, metrics: dict) -> None:
    """Replace the table's content with :func:`metric_rows` (three string columns, locked)."""
    rows = metric_rows(metrics)
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


def summary_text(metrics: dict) -> str:
    """A few lines for a status label: the numbers that matter, which to trust, and the warnings."""
    lines = []
    landmarks = metrics.get("landmarks")
    if landmarks:
        tre, fre = landmarks["tre"], landmarks["fre"]
        if tre["after"]:
            lines.append(
                f"TRE {tre['after']['mean_mm']:.2f} mm mean, {tre['after']['max_mm']:.2f} mm max over "
                f"{tre['after']['count']} target landmarks (before {tre['before']['mean_mm']:.2f} mm): "
                "the number to trust."
            )
        if fre["after"]:
            lines.append(
                f"FRE {fre['after']['mean_mm']:.2f} mm mean over {fre['after']['count']} fit landmarks: the "
                "transform was fitted to them, so it flatters; it says nothing about accuracy elsewhere."
            )
    for before, after in zip(*(metrics.get("segmentation", {}).get(stage, []) for stage in ("before", "after"))):
        lines.append(f"Dice {after['name']}: {before['dice']:.3f} -> {after['dice']:.3f}.")
    images = metrics.get("images", {})
    mi = [images.get(stage, {}).get("mutual_information") for stage in ("before", "after")]
    if None not in mi:
        lines.append(f"Mutual information {mi[0]:.3f} -> {mi[1]:.3f} nats (higher agrees better; not in mm).")
    stability = metrics.get("stability")
    if stability:
        lines.append(
            f"Stability: {stability['verdict']} ({stability['restarts']} restarts agree within "
            f"{stability['spread_p95_mm']:.2f} mm, 95th percentile)."
        )
    lines += [f"Warning: {warning}" for warning in metrics.get("warnings", [])]
    return "\n".join(lines)
