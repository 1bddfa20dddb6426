"""Peak memory of deformable registrations against the pre-run check's estimate (core.memory), as a table.

Each case runs register() (unguided, the deformable preset, ANTs on 1 thread) on the phantom CT/MR pair made on the
given grids, in a fresh process: the peak RSS above a warm-up run on a 4x shrunk pair (so the engines' imports do not
count), plus the two images as read (made before the warm-up). The estimate is estimate_run_bytes() for the same
sizes, engine and SyN field level, as the check computes it before a run. It must not lie below the peak (the run
would swap or be killed) and should stay within 1.3x of it (runs that fit would be refused). About 15 minutes.

Usage: python Testing/Benchmarks/bench_memory.py [--cases ants-1.5,elastix-1] ; one case alone:
python Testing/Benchmarks/bench_memory.py --run ENGINE CT_MM MR_MM FOV_MM  (prints one JSON line)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

import bench_paths  # first: the library on sys.path

# name: (engine, fixed voxel mm, moving voxel mm, field of view mm); the phantom head is 230 x 250 x 250 mm
CASES = {
    "ants-1.5": ("ants", (1.5, 1.5, 2.25), (2.0, 2.0, 2.0), (240, 240, 252)),
    "ants-1.5-small": ("ants", (1.5, 1.5, 2.25), (2.0, 2.0, 2.0), (180, 180, 189)),
    "ants-1": ("ants", (1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (160, 160, 168)),
    "ants-2": ("ants", (2.0, 2.0, 2.0), (1.0, 1.0, 1.0), (160, 160, 168)),
    "ants-0.75": ("ants", (0.75, 0.75, 0.75), (1.5, 1.5, 1.5), (150, 150, 150)),
    "ants-0.5": ("ants", (0.5, 0.5, 0.5), (2.0, 2.0, 2.0), (100, 100, 100)),
    "elastix-1.5": ("elastix", (1.5, 1.5, 2.25), (2.0, 2.0, 2.0), (240, 240, 252)),
    "elastix-2": ("elastix", (2.0, 2.0, 2.0), (1.0, 1.0, 1.0), (160, 160, 168)),
    "elastix-1": ("elastix", (1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (160, 160, 168)),
    "elastix-0.5": ("elastix", (0.5, 0.5, 0.5), (2.0, 2.0, 2.0), (100, 100, 100)),
}  # fmt: skip


def run_one(engine: str, ct_mm, mr_mm, fov_mm) -> dict:
    """One case in this process: sizes and MB above the warm-up (call in a fresh process)."""
    import resource

    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.phantom import make_phantom_pair
    from MultimodalRegistrationLib.registration.register import register

    pair = make_phantom_pair(ct_spacing=ct_mm, mr_spacing=mr_mm, field_of_view_mm=fov_mm)
    threads = 1 if engine == "ants" else None
    register(sitk.Shrink(pair.fixed, [4] * 3), sitk.Shrink(pair.moving, [4] * 3), engine=engine, preset="deformable",
             threads=threads)  # fmt: skip
    warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    register(pair.fixed, pair.moving, engine=engine, preset="deformable", threads=threads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"fixed": list(pair.fixed.GetSize()), "moving": list(pair.moving.GetSize()), "above_mb": (peak - warm) / 1e6}


def estimate_mb(engine: str, ct_mm, fixed, moving) -> float:
    from MultimodalRegistrationLib.core.memory import estimate_run_bytes
    from MultimodalRegistrationLib.engines.presets import load_preset
    from MultimodalRegistrationLib.engines.registry import engine_spec

    shrink = engine_spec(engine).recipe_module().field_shrink(load_preset(engine, "deformable"), min(ct_mm))
    images = [(fixed, "float32"), (moving, "float32")]
    return estimate_run_bytes(images, deformable=True, engine=engine, field_shrink=shrink or 1) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--run", nargs=4, metavar=("ENGINE", "CT_MM", "MR_MM", "FOV_MM"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.run:
        engine, *numbers = arguments.run
        print(json.dumps(run_one(engine, *(tuple(map(float, n.split(","))) for n in numbers))))
        return 0
    environment = dict(os.environ, PYTHONPATH=str(bench_paths.LIBRARY))
    print("| case | engine | fixed voxels (mm) | moving voxels | peak MB | estimate MB | estimate / peak |")
    print("|---|---|---|---|---|---|---|")
    for name in arguments.cases.split(","):
        engine, ct_mm, mr_mm, fov_mm = CASES[name]
        numbers = [",".join(map(str, values)) for values in (ct_mm, mr_mm, fov_mm)]
        run = subprocess.run([sys.executable, __file__, "--run", engine, *numbers], capture_output=True, text=True, check=False,
                             env=environment)  # fmt: skip
        if run.returncode != 0:
            print(f"| {name} | {engine} | failed: {run.stderr.strip().splitlines()[-1:]} |", flush=True)
            continue
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        fixed, moving = measured["fixed"], measured["moving"]
        peak = measured["above_mb"] + 4 * (math.prod(fixed) + math.prod(moving)) / 1e6
        estimate = estimate_mb(engine, ct_mm, fixed, moving)
        print(f"| {name} | {engine} | {'x'.join(map(str, fixed))} ({min(ct_mm):g}) | {'x'.join(map(str, moving))} | "
              f"{peak:.0f} | {estimate:.0f} | {estimate / peak:.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
