"""Benchmark (issue 23 prototype): 2D RGB H&E-like section (moving, 0.2 mm) against a 2D T1-like MR slice
(fixed, 0.5 mm) with known rigid / similarity truth; the whole process timed in a fresh interpreter.

Usage: python bench2d.py [--cases 8] [--engines elastix,ants] [--presets rigid,affine] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT / "MultimodalRegistration"), str(ROOT / "Testing" / "Python"), str(HERE)]
import micro_data as md  # noqa: E402
import reg2d  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--engines", default="elastix")
    parser.add_argument("--presets", default="rigid")
    parser.add_argument("--gray", default="od")
    parser.add_argument("--out", default=str(ROOT / "bench-output" / "micro" / "2d"))
    args = parser.parse_args()
    if not md.available():
        print("MNI data not found: skipped")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in range(args.cases):
        rng = np.random.default_rng(100 + case)
        z = float(rng.uniform(-10, 40))
        fixed, points = md.mni_slice(z, 0.5, seed=case)
        mirror = case % 4 == 3  # every fourth section mounted face down
        for preset in args.presets.split(","):
            scale = (1.0, 1.0) if preset == "rigid" else tuple(rng.uniform(0.88, 0.97) * np.array([1, rng.uniform(0.97, 1.03)]))
            angle = float(rng.uniform(0, 360))
            truth = md.rigid2d(angle, (0, 0), center=points.mean(0), scale=scale, mirror=mirror)
            truth[:2, 2] += np.array([95.0, 95.0]) + rng.uniform(-8, 8, 2) - truth[:2, :2] @ points.mean(0) - truth[:2, 2] + truth[:2, 2]
            truth[:2, 2] = np.array([95.0, 95.0]) + rng.uniform(-8, 8, 2) - truth[:2, :2] @ points.mean(0)
            section = md.histology_rgb(truth, z, 0.2, size_mm=(190.0, 190.0), seed=case, tear=case % 3 == 2)
            fixed_path, moving_path = out / f"mr_{case}.nrrd", out / f"he_{case}_{preset}.png"
            sitk.WriteImage(fixed, str(fixed_path))
            sitk.WriteImage(section, str(moving_path))  # PNG: no pixel size in the file -> --spacing-moving
            for engine in args.engines.split(","):
                command = [sys.executable, str(HERE / "run2d.py"), str(fixed_path), str(moving_path),
                           str(out / f"T_{case}_{preset}_{engine}.h5"), "--spacing-moving", "0.2",
                           "--engine", engine, "--preset", preset, "--gray", args.gray]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True)
                try:
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    print(done.stdout[-500:], done.stderr[-2000:])
                    continue
                matrix = np.array(result["matrix"])
                fixed_gray = reg2d.to_gray(fixed)
                moving_gray = reg2d.to_gray(sitk.ReadImage(str(moving_path)))
                qa = reg2d.qa_2d(fixed_gray, moving_gray, matrix, points, truth,
                                 out / f"checker_{case}_{preset}_{engine}.png")  # fmt: skip
                start_error = reg2d.qa_2d(fixed_gray, moving_gray, np.array(result["start"]), points, truth)["mean_error_mm"]
                row = {"case": case, "preset": preset, "engine": engine, "angle": round(angle, 1), "mirror": mirror,
                       "torn": case % 3 == 2, "start_error_mm": round(start_error, 3),
                       "error_mm": round(qa["mean_error_mm"], 3), "max_error_mm": round(qa["max_error_mm"], 3),
                       "mirrored_found": result["mirrored"],
                       **{k: result[k] for k in ("import_s", "read_s", "search_s", "engine_s", "whole_s", "cpu_s", "peak_mb")}}  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
