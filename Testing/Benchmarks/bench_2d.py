"""`make bench` table (issue 23): two 2D images, both engines, the 2D presets.

Data (Testing/Python/two_d_data.py): a T1-like MR slice (2D NRRD, 1 mm pixels, 200 x 230 mm) against an
H&E-like RGB section of the same plane (PNG, 0.5 mm pixels given with --moving-pixel-size), moved 35 deg and
(6, -4) mm; ``similarity`` also shrinks it to 0.93, ``affine`` to 0.93 x 0.97 with a little shear. Error: mean
and max over points in the head of |result - truth| in the moving image, in fixed pixels (1 mm) and mm.
Seconds: the whole ``mmreg register2d`` process (Python start, checks, worker, engine import, search,
registration, outputs, QA): wall, and CPU (user + system of the process and its worker, which on a busy machine
tells more than the wall time), and the search plus the registration (wall) as the summary reports them (the
engine is imported in the worker while the parent checks the inputs: cli/run.py worker_started_early).

Two harder affine cases follow (120 deg shrunk 0.80 x 0.85, -150 deg stretched 1.08 x 1.02, both with shear).

Usage: python bench_2d.py [--engines elastix,ants] [--presets rigid,similarity,affine] [--no-extra]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import bench_paths  # first: the library and the test-data makers on sys.path
import numpy as np
import two_d_data

ROOT = bench_paths.ROOT

OUT = ROOT / "bench-output" / "two_d"
FIXED_PIXEL_MM, MOVING_PIXEL_MM = 1.0, 0.5
TARGET_PIXELS, TARGET_SECONDS = 1.0, 3.0


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _moved(angle_deg: float, linear) -> np.ndarray:
    truth = two_d_data.stack_data.rigid(angle_deg, (-7.0, 5.0), np.asarray(two_d_data.CANVAS) / 2)
    truth[:2, :2] = truth[:2, :2] @ np.asarray(linear)
    return truth


# Harder affine cases: (name, preset, truth). Each stage order alone failed one of them (registration/two_d.py).
EXTRA = (
    ("affine, 120 deg, shrunk 0.80 x 0.85", "affine", _moved(120.0, [[0.8, -0.03], [0.02, 0.85]])),
    ("affine, -150 deg, stretched 1.08 x 1.02", "affine", _moved(-150.0, [[1.08, 0.0], [0.04, 1.02]])),
)


def run_case(engine: str, preset: str, fixed: Path, points: np.ndarray, truth: np.ndarray, tag: str) -> tuple:
    folder = OUT / f"{engine}_{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    two_d_data.he_section(folder / "he.png", truth, MOVING_PIXEL_MM)
    command = [sys.executable, "-m", "MultimodalRegistrationLib.cli", "register2d", "--fixed", str(fixed),
               "--moving", str(folder / "he.png"), "--moving-pixel-size", str(MOVING_PIXEL_MM), "--engine", engine,
               "--preset", preset, "--output-transform", str(folder / "T.tfm"), "--json", str(folder / "S.json")]  # fmt: skip
    environment = {"PYTHONPATH": str(bench_paths.LIBRARY)}
    started, cpu = time.perf_counter(), _children_cpu()
    run = subprocess.run(command, check=False, capture_output=True, text=True, env={**os.environ, **environment})
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if run.returncode != 0:
        raise RuntimeError(f"{engine} {preset} failed:\n{run.stderr[-2000:]}")
    summary = json.loads((folder / "S.json").read_text())
    error = two_d_data.errors_mm(np.asarray(summary["matrix"]), truth, points)
    return error, seconds, cpu, summary["timings"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="elastix,ants")
    parser.add_argument("--presets", default="rigid,similarity,affine")
    parser.add_argument("--no-extra", dest="extra", action="store_false", help="skip the two harder affine cases")
    arguments = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    points = two_d_data.mr_slice(OUT / "mr.nrrd", FIXED_PIXEL_MM)
    print("\n2D: RGB H&E-like section (0.5 mm) -> T1-like MR slice (1 mm), 35 deg; error in fixed pixels (1 mm)")
    print(
        "\n| engine | preset | mean px | max px | mean mm | whole process s | CPU s | registration s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cases = [(preset, preset, two_d_data.truth_of(preset)) for preset in arguments.presets.split(",")]
    cases += list(EXTRA) if arguments.extra else []
    for engine in arguments.engines.split(","):
        for number, (name, preset, truth) in enumerate(cases):
            error, seconds, cpu, timings = run_case(
                engine, preset, OUT / "mr.nrrd", points, truth, f"{number}_{preset}"
            )
            print(f"| {engine} | {name} | {error.mean() / FIXED_PIXEL_MM:.2f} | {error.max() / FIXED_PIXEL_MM:.2f} | "
                  f"{error.mean():.3f} | {seconds:.1f} | {cpu:.1f} | "
                  f"{timings.get('search_s', 0) + timings.get('engine_register_s', 0):.1f} |", flush=True)  # fmt: skip
    print(f"\nTargets (issue 23): < {TARGET_PIXELS:g} pixel from the truth, whole process < {TARGET_SECONDS:g} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
