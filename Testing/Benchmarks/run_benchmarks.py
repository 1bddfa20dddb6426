"""`make bench`: speed, memory and accuracy of rigid CT->MR registration, printed as tables.

Case: the generated head phantom at 256 x 256 x 180 voxels of 1 mm (CT fixed, MR moving),
misaligned by 25 degrees and 31 mm. Every method runs in its own process so that its import
time and peak memory (RSS, including child processes) are measured like a user would see them.
Then bench_prep.py (bias correction, streamed downsampling), bench_anypose.py (starts from any
pose against the peers' defaults), bench_batch.py (cohorts), bench_click.py (how soon a Register click in a
Slicer session starts computing), bench_guided.py (registration guided by segmentations and landmarks),
bench_guided_hard.py (guided MR -> TRUS on the hard cohort; then again with a TRUS that does not echo the MR's
texture around the gland, and with one echoing a share of it drawn per pair, the rows that use the intensities),
bench_stack.py (serial sections stacked without drift), bench_shrink.py (shrunken, partly covered tissue
against a whole head: the scale-aware start), bench_2d.py (a 2D RGB section against an MR slice, both engines)
and bench_memory.py (deformable runs' peak memory against the pre-run check's estimate) print their tables;
`--core` stops after the first table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import bench_paths  # first: the library and the test-data makers on sys.path
import numpy as np
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm
from MultimodalRegistrationLib.core.transforms import Transform

ROOT = bench_paths.ROOT

OUT = ROOT / "bench-output"
# bench_guided_hard.py a second time: the TRUS echoes none of the MR's texture around the gland; the rows that do
# not use the intensities (centroids, distance maps) are the first table's.
UNSEEN_METHODS = ("image centres", "segment centroids", "guided start", "elastix rigid guided", "ANTs rigid guided",
                  "ANTs deformable guided", "elastix deformable guided")  # fmt: skip
# A third time, each pair's TRUS echoing a share of the MR's texture drawn between none and all of it.
TEXTURE_SHARES = ("0-0", "0-1")


# Runs a command and reports its wall time and the peak RSS of it and its children.
MEASURE = r"""
import resource, subprocess, sys, time
started = time.perf_counter()
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"__MEASURE__ {run.returncode} {seconds:.3f} {peak_kb}")
sys.stdout.write(run.stdout)
sys.stderr.write(run.stderr)
"""


def measured(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak GB and stdout of a command in a fresh process."""
    environment = dict(os.environ, PYTHONPATH=str(bench_paths.LIBRARY))
    argv = [sys.executable, "-c", MEASURE, *command]
    run = subprocess.run(argv, check=False, capture_output=True, text=True, env=environment)
    first, _, rest = run.stdout.partition("\n")
    _, code, seconds, peak_kb = first.split()
    if code != "0":
        raise RuntimeError(f"{command[:4]} failed:\n{run.stderr[-3000:]}")
    return float(seconds), int(peak_kb) / 1024**2, rest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", action="store_true", help="stop after the first table (rigid CT->MR)")
    arguments = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    print("generating the 256 x 256 x 180, 1 mm phantom pair ...", flush=True)
    pair = make_phantom_pair(ct_spacing=(1.0, 1.0, 1.0), mr_spacing=(1.0, 1.0, 1.0), field_of_view_mm=(256, 256, 180))
    fixed, moving = OUT / "ct_1mm.nrrd", OUT / "mr_1mm.nrrd"
    write_image(pair.fixed, fixed)
    write_image(pair.moving, moving)
    assert pair.fixed.GetSize() == (256, 256, 180), pair.fixed.GetSize()
    rows = []

    baseline_dir = OUT / "elastix-default"
    baseline_dir.mkdir(exist_ok=True)
    peers = Path(__file__).with_name("peer_baselines.py")
    seconds, peak, output = measured(
        [sys.executable, str(peers), "elastix", str(fixed), str(moving), str(baseline_dir)]
    )
    imported, read, registered = map(float, output.split()[:3])
    error = mean_error_mm(Transform.read(baseline_dir / "TransformParameters.0.h5"), pair.truth, pair.head_points)
    rows.append(
        (
            "itk-elastix default rigid (baseline)",
            registered,
            seconds,
            peak,
            error,
            f"import {imported:.1f} s, read {read:.1f} s",
        )
    )

    seconds, peak, output = measured([sys.executable, str(peers), "greedy", str(fixed), str(moving), str(baseline_dir)])
    imported, _, registered = map(float, output.split()[:3])
    matrix = np.loadtxt(baseline_dir / "greedy_dof6.mat")
    error = mean_error_mm(Transform.from_matrix_ras(matrix), pair.truth, pair.head_points)
    rows.append(
        (
            "Greedy rigid, NMI, image centres (peer)",
            registered,
            seconds,
            peak,
            error,
            f"import {imported:.1f} s, registration includes reading",
        )
    )

    for engine in ("elastix", "ants"):
        transform, summary_path = OUT / f"{engine}.h5", OUT / f"{engine}.json"
        seconds, peak, _ = measured(
            [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "register", "--fixed", str(fixed), "--moving", str(moving),
             "--engine", engine, "--output-transform", str(transform), "--json", str(summary_path)]
        )  # fmt: skip
        summary = json.loads(summary_path.read_text())
        timings = summary["provenance"]["timings_s"]
        error = mean_error_mm(Transform.read(transform), pair.truth, pair.head_points)
        detail = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items())
        rows.append(
            (f"mmreg register --engine {engine} (rigid)", timings["engine_register_s"], seconds, peak, error, detail)
        )

    print()
    print("Rigid CT->MR, 256 x 256 x 180 at 1 mm, 25 deg + 31 mm start, this machine:", os.cpu_count(), "cores")
    print()
    print("| method | registration s | whole process s | peak memory GB | mean error mm |")
    print("|---|---|---|---|---|")
    for name, registration, whole, peak, error, _ in rows:
        print(f"| {name} | {registration:.2f} | {whole:.2f} | {peak:.2f} | {error:.3f} |")
    print()
    print("Where the time goes:")
    for name, *_, detail in rows:
        print(f"- {name}: {detail}")
    print()
    print("Targets (issue): registration <= 3 s, whole process <= 8 s, peak <= 0.8 GB, error <= 0.15 mm.")
    if arguments.core:  # only the table above
        return 0
    scripts = ("bench_prep.py", "bench_anypose.py", "bench_batch.py", "bench_click.py", "bench_guided.py",
               "bench_guided_hard.py", "bench_stack.py", "bench_shrink.py", "bench_2d.py", "bench_memory.py")  # fmt: skip
    for script in scripts:
        print(f"\n--- {script}\n", flush=True)
        subprocess.run([sys.executable, str(Path(__file__).with_name(script))], check=False)
        if script == "bench_guided_hard.py":  # again, with a TRUS that echoes none, then some, of the MR's texture
            for share in TEXTURE_SHARES:
                subprocess.run([sys.executable, str(Path(__file__).with_name(script)), "--echo-mr-share", share,
                                "--methods", ",".join(UNSEEN_METHODS)], check=False)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
