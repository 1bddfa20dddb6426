"""`make bench` table (issue 23): shrunken, rotated, partly covered tissue against a whole head.

Cases (Testing/Python/micro_data.py, MNI ICBM152 maps): a whole-head T2-like MRI at 1.5 mm (fixed)
and a brain-only, light-sheet-like image at 1 mm (moving), shrunk by 0.6-0.7 and turned by 15-35
degrees about a random axis (drawn from each seed), whole or cut to a 65% stack. Each is
registered with and without the MRI's brain mask, by each preset and engine, from init auto
(the scale-aware search for similarity and affine, the rigid search for rigid).

Columns: mean error (mm) over 2000 points inside the brain (all of them, also those outside a
partial stack), the start's error and scale (moving / fixed size; the truth is the shrink),
mutual information before -> after, seconds, and whether the result was warned about (a warning QA's triage
counts as a doubt: probably wrong, stretched, size drifted...). Usage:

    python bench_shrink.py [--seeds 11,12,13] [--presets similarity,affine] [--engines elastix,ants,greedy]
                           [--coverages 1.0,0.65] [--masks 0,1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_paths  # first: the library and the test-data makers on sys.path
import micro_data as md
import numpy as np
from MultimodalRegistrationLib.qa.triage import RESULT_DOUBTS
from MultimodalRegistrationLib.registration.register import register

ROOT = bench_paths.ROOT


def case_parameters(seed: int) -> tuple[float, float]:
    """(shrink, degrees) of a seed's case: shrink 0.6-0.7, 15-35 degrees."""
    rng = np.random.default_rng(seed)
    return float(rng.uniform(0.6, 0.7)), float(rng.uniform(15.0, 35.0))


def greedy_case(head: md.HeadMRI, case: md.ShrinkCase, masked: bool, preset: str) -> dict:
    """Greedy's affine (or rigid) recipe from the image centres, the peer baseline (no mask option used)."""
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.transforms import Transform

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-shrink-greedy-") as scratch:
        sitk.WriteImage(head.image, f"{scratch}/fixed.nii.gz")
        sitk.WriteImage(case.moving, f"{scratch}/moving.nii.gz")
        dof = {"rigid": 6, "similarity": 7}.get(preset, 12)
        # A process of its own: once elastix's ITK is loaded here, Greedy's ITK finds no NIfTI reader.
        call = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from peer_baselines import greedy_rigid; "
            f"print(greedy_rigid({scratch + '/fixed.nii.gz'!r}, {scratch + '/moving.nii.gz'!r}, {scratch!r}, 1, {dof}))"
        )
        written = subprocess.run([sys.executable, "-c", call], check=True, capture_output=True, text=True).stdout
        matrix = Transform.from_matrix_ras(np.loadtxt(written.strip().splitlines()[-1])).matrix
    return {"error_mm": round(md.mean_error(matrix, case.truth, head.brain_points), 2), "start_error_mm": None,
            "start_scale": None, "metric_before": float("nan"), "metric_after": float("nan"),
            "seconds": round(time.perf_counter() - started, 1), "warned": False}  # fmt: skip


def run_case(head: md.HeadMRI, seed: int, coverage: float, masked: bool, preset: str, engine: str) -> dict:
    shrink, angle = case_parameters(seed)
    case = md.light_sheet(shrink, angle, coverage, seed=seed, brain_points=head.brain_points)
    if engine == "greedy":
        return {"seed": seed, "shrink": round(shrink, 3), "angle_deg": round(angle, 1), "coverage": coverage,
                "mask": masked, "preset": preset, "engine": engine, **greedy_case(head, case, masked, preset)}  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-shrink-") as scratch:
        result = register(
            head.image, case.moving, engine=engine, preset=preset, fixed_mask=head.brain_mask if masked else None,
            workdir=scratch, threads=1 if engine == "ants" else None,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    provenance = result.provenance
    search = provenance.any_pose
    start = np.asarray(provenance.start_matrix_lps) if provenance.start_matrix_lps else None
    return {
        "seed": seed, "shrink": round(shrink, 3), "angle_deg": round(angle, 1), "coverage": coverage, "mask": masked,
        "preset": preset, "engine": engine,
        "error_mm": round(md.mean_error(result.transform.matrix, case.truth, head.brain_points), 2),
        "start_error_mm": round(md.mean_error(start, case.truth, head.brain_points), 2) if start is not None else None,
        "start_scale": search and search.scale, "search_s": search and search.seconds,
        "metric_before": round(result.metric_before, 3), "metric_after": round(result.metric_after, 3),
        "seconds": round(seconds, 1), "warned": any(w.startswith(RESULT_DOUBTS) for w in result.warnings),
        "sampling": provenance.fixed_sampling, "affine_opinion_s": provenance.timings_s.get("affine_opinion_s"),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="11,12,13")
    parser.add_argument("--presets", default="similarity,affine")
    parser.add_argument("--engines", default="elastix")
    parser.add_argument("--coverages", default="1.0,0.65")
    parser.add_argument("--masks", default="0,1")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not md.available():
        print("bench_shrink: the MNI ICBM152 maps are not in ../shared/data/mni_icbm152: skipped")
        return 0
    head = md.head_mri(1.5)
    rows = []
    print("| seed | shrink | deg | coverage | brain mask | engine | preset | error mm | start error mm | start scale "
          "| MI before -> after | s | warned |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for seed in map(int, args.seeds.split(",")):
        for coverage in map(float, args.coverages.split(",")):
            for masked in (bool(int(m)) for m in args.masks.split(",")):
                for engine in args.engines.split(","):
                    for preset in args.presets.split(","):
                        try:
                            row = run_case(head, seed, coverage, masked, preset, engine)
                        except Exception as error:  # noqa: BLE001 (a row of the table, not a crash)
                            shrink, angle = case_parameters(seed)
                            row = {"seed": seed, "shrink": round(shrink, 3), "angle_deg": round(angle, 1),
                                   "coverage": coverage, "mask": masked, "preset": preset, "engine": engine,
                                   "error": f"{type(error).__name__}: {str(error)[:160]}"}  # fmt: skip
                        rows.append(row)
                        if "error" in row:
                            print(f"| {seed} | {row['shrink']} | {row['angle_deg']} | {coverage:.0%} | {masked} | {engine} "
                                  f"| {preset} | failed: {row['error']} |||||")  # fmt: skip
                        else:
                            scale = f"{row['start_scale']:.3f}" if row["start_scale"] else "-"
                            print(f"| {seed} | {row['shrink']} | {row['angle_deg']} | {coverage:.0%} | {masked} | {engine} "
                                  f"| {preset} | {row['error_mm']:.2f} | {row['start_error_mm']} | {scale} "
                                  f"| {row['metric_before']:.3f} -> {row['metric_after']:.3f} | {row['seconds']:.0f} "
                                  f"| {'yes' if row['warned'] else 'no'} |", flush=True)  # fmt: skip
                        if args.json:
                            Path(args.json).write_text(json.dumps(rows, indent=1))
    errors = [row["error_mm"] for row in rows if "error_mm" in row]
    if errors:
        within = sum(e < 2.0 for e in errors)
        print(
            f"\n{within} of {len(rows)} runs within 2 mm (target: all); median {np.median(errors):.2f} mm, worst {max(errors):.2f} mm"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
