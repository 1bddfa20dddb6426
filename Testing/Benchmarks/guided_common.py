"""Shared by the guided-registration benchmarks (bench_guided.py): one register() run on an ultrasound-like
pair scored at its targets, the target error statistics (mm), and the pair's guidance."""

from __future__ import annotations

import time
import warnings

import bench_paths  # first: the library and the test-data makers on sys.path
import numpy as np
from MultimodalRegistrationLib.core.errors import EngineError, InputError
from MultimodalRegistrationLib.core.rotations import orthogonal_fit
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.register import register

ROOT = bench_paths.ROOT
OUT = ROOT / "bench-output" / "guided"


def target_errors(pair, transform: Transform) -> np.ndarray:
    """Distances (mm) between the mapped fixed targets and their true moving positions."""
    return np.linalg.norm(transform.transform_points(pair.targets_fixed) - pair.targets_moving, axis=1)


def error_stats(errors: np.ndarray) -> dict:
    return {
        "median_mm": float(np.median(errors)),
        "p95_mm": float(np.percentile(errors, 95)),
        "within_5mm": float(np.mean(errors < 5.0)),
        "within_2mm": float(np.mean(errors < 2.0)),
    }


def guidance_of(pair, guide: str, metric: str = "intensity", weight: float | None = None) -> Guidance | None:
    """The ultrasound-like pair's guidance: its gland and urethra segments, its six clicked landmarks, or both."""
    if guide == "none":
        return None
    segments = guide in ("segments", "both")
    points = guide in ("landmarks", "both")
    return Guidance(
        fixed_segmentation=pair.fixed_labels if segments else None,
        moving_segmentation=pair.moving_labels if segments else None,
        fixed_points_lps=pair.landmarks_fixed if points else None,
        moving_points_lps=pair.landmarks_moving if points else None,
        weight=weight,
        metric=metric,
    )


def run_guided(pair, engine: str, preset: str, guide: str, metric: str = "intensity", threads: int | None = None,
               **options) -> dict:  # fmt: skip
    """One register() call on an ultrasound-like pair, scored at the targets; a failure is recorded, not raised."""
    started = time.perf_counter()
    record = {"engine": engine, "preset": preset, "guide": guide, "metric": metric}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = register(
                pair.fixed, pair.moving, engine=engine, preset=preset, guidance=guidance_of(pair, guide, metric),
                threads=threads, **options,
            )  # fmt: skip
    except (EngineError, InputError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        described = [line.split("Description:", 1)[1].strip() for line in lines if "Description:" in line]
        record.update(failed=(described or lines or ["failed"])[0][:300], seconds=time.perf_counter() - started)
        return record
    provenance = result.provenance
    start = Transform.from_matrix(np.asarray(provenance.start_matrix_lps)) if provenance.start_matrix_lps else None
    record.update(error_stats(target_errors(pair, result.transform)))
    record.update(
        seconds=time.perf_counter() - started,
        kept=provenance.kept,
        kept_reason=provenance.kept_reason,
        start=provenance.start,
        start_median_mm=float(np.median(target_errors(pair, start))) if start is not None else None,
        fixed_sampling=provenance.fixed_sampling,
        transform=result.transform,
    )
    return record


def best_rigid_floor(pair) -> dict:
    """The rigid transform closest to the truth at the targets (least squares): what no rigid result can beat."""
    fit = Transform.from_matrix(orthogonal_fit(pair.targets_fixed, pair.targets_moving, scale=False))
    return error_stats(target_errors(pair, fit))
