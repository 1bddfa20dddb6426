"""Never worse than the start: whether a registration's result is kept, and the earlier stage it falls back to
when it is not."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.errors import EngineError
from ...core.metric import mutual_information
from ...core.transforms import Transform
from ..guided.score import guidance_score, worse_than

# "Never worse than the start": a result whose mutual information falls more than this (nats) below
# that of the start it ran from is not kept. The same value as QA's triage tolerance (qa/triage.py
# METRIC_TOLERANCE_NATS, not imported: registration does not depend on qa), which is about what a
# fraction of a millimetre off the truth costs (see core/metric.py).
KEEP_TOLERANCE_NATS = 0.005
# Grid (mm) on which a nonlinear result's Jacobian determinant is checked for folding: coarse, cheap.
FOLDING_CHECK_SPACING_MM = 4.0


def check_linear_result(transform: Transform, preset_name: str) -> None:
    """Refuse a mirrored or collapsed linear result: an engine can return one (ANTs Affine)."""
    if not transform.is_linear:
        return
    singular = np.linalg.svd(transform.matrix[:3, :3], compute_uv=False)
    determinant = float(np.linalg.det(transform.matrix[:3, :3]))
    if determinant <= 0:
        raise EngineError(
            f"the {preset_name} result is mirrored (determinant {determinant:.3f})",
            hint="use the rigid preset, or prealign with landmarks so the engine starts closer",
        )
    if singular.min() < 0.2 or singular.max() > 5.0:
        raise EngineError(
            f"the {preset_name} result collapsed or exploded (scales {np.round(singular, 3).tolist()})",
            hint="use the rigid preset, mask the anatomy, or prealign with landmarks",
        )


def minimum_jacobian(transform: Transform, fixed: sitk.Image, spacing_mm: float = FOLDING_CHECK_SPACING_MM) -> float:
    """The smallest Jacobian determinant of ``transform`` (fixed -> moving) over the fixed image's extent,
    sampled on a grid about ``spacing_mm`` wide; a value <= 0 means the transform folds space there."""
    size = np.asarray(fixed.GetSize())
    extent = (size - 1) * np.asarray(fixed.GetSpacing())
    grid_size = np.maximum(np.ceil(extent / spacing_mm).astype(int) + 1, 3)
    grid_spacing = np.where(extent > 0, extent / np.maximum(grid_size - 1, 1), spacing_mm)
    field = sitk.TransformToDisplacementField(
        transform.sitk,
        sitk.sitkVectorFloat64,
        [int(n) for n in grid_size],
        fixed.GetOrigin(),
        [float(s) for s in grid_spacing],
        fixed.GetDirection(),
    )
    determinant = sitk.DisplacementFieldJacobianDeterminant(field)
    return float(sitk.GetArrayViewFromImage(determinant).min())


def _why_not_kept(
    transform: Transform, metric_after: float, metric_start: float, fixed: sitk.Image, guided: dict | None = None
) -> str:
    """"" when a result is no worse than its start; else why it is, with the numbers.

    The rule holds for every result, linear or not: its mutual information may not fall more than
    KEEP_TOLERANCE_NATS below the start's, and a nonlinear one must not fold (Jacobian determinant > 0).
    A guided result (``guided``: its "worse" reason from :func:`.guided_score.worse_than` and whether
    the image term drove it) must also agree no less with the segments and landmarks; under
    ``--metric segments`` the intensities do not judge it.
    """
    if guided and guided["worse"]:
        return f"agrees less with the guidance than its start ({guided['worse']})"
    judged_by_metric = guided is None or guided["intensity"]
    if judged_by_metric and metric_after < metric_start - KEEP_TOLERANCE_NATS:
        return f"agrees less than its start (mutual information {metric_after:.3f} < {metric_start:.3f} nats)"
    if not transform.is_linear:
        smallest = minimum_jacobian(transform, fixed)
        if smallest <= 0:
            return (
                f"folds space (Jacobian determinant down to {smallest:.3f} <= 0 on a "
                f"{FOLDING_CHECK_SPACING_MM:g} mm grid)"
            )
    return ""


def _earlier_stage(output, fixed, moving, fixed_mask, metric_start, prepared, score_start) -> tuple | None:
    """The latest earlier stage of a multi-stage result (its affine before the B-spline, say) that is no
    worse than the start: (stage name, transform, mutual information), or None."""
    for name, transform in reversed(getattr(output, "stages", [])[:-1]):
        metric = mutual_information(fixed, moving, transform, fixed_mask)
        judge = None
        if prepared is not None:
            voxel_mm = max(prepared.fixed_masks[0].GetSpacing()) if prepared.fixed_masks else 0.0
            worse = worse_than(guidance_score(prepared, transform), score_start, voxel_mm)
            judge = {"worse": worse, "intensity": prepared.guidance.metric == "intensity"}
        if not _why_not_kept(transform, metric, metric_start, fixed, judge):
            return name, transform, metric
    return None
