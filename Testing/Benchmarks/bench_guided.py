"""Guided registration (segmentations and landmarks): accuracy against exact truth, printed as tables.

Tables (one run each; about 10 minutes on 2 cores):

1. MR -> ultrasound-like (Testing/Python/ultrasound_like.py): an MR with an inserted gland and a
   transrectal-ultrasound-like image of it, moved by a rigid pose and a 5 mm probe push. Built from the MNI
   T1 (../shared/data/mni_icbm152) at ultrasound_like.BENCH_ULTRASOUND size when present, else from the
   analytic phantom at the small default size (with a note). Rows: the centre alignment (start), unguided
   rigid and deformable, guided rigid (segments; segments + landmarks), --metric segments, guided
   deformable; columns: median and 95th-percentile target error (mm) at 20 targets in and on the gland,
   % of targets within 5 and 2 mm, seconds, whether the keep rule kept the result or the start, and where
   the engine sampled the fixed image (provenance.fixed_sampling: without a fixed mask, elastix samples only
   where the moving image lies at the start when too little of the fixed image lies inside it).
2. SCT spinal cord, T1w (fixed) -> T2w (moving) (../shared/data/sct, real MRI, no ground truth): cord Dice
   and mean surface distance before and after, unguided and guided by the cord segmentation; held out:
   guided by the upper half of the cord only, scored on the lower half.
3. Pelvis-like CT -> MR (pelvis_like.pelvis_like_pair at BENCH_PELVIS size), each bone moved on its own:
   per bone, the target error (mm) of the global guided rigid result and of the piecewise field; the field's
   smallest Jacobian determinant; seconds.
4. The guidance weights (Resources/Presets/guidance.json): the chosen weights against a third and three
   times them, on three seeds of the small ultrasound-like pair (rigid, segments + landmarks).

``--sweep`` runs instead the full weights sweep that chose the defaults (about an hour per engine on one
core; see ``guided_weights.sweep`` and Testing/Benchmarks/guided_results.md) and prints its summary;
``--picture`` writes the before/after picture of docs/guided.md (Resources/Screenshots/guided_before_after.png).

This file is the entry point only: the tables are in bench_guided_us.py, bench_guided_sct.py,
bench_guided_pelvis.py and bench_guided_weights.py; the shared run and metrics in guided_common.py; the sweep
and the weight chooser in guided_weights.py; the picture in guided_picture.py.

Usage: python Testing/Benchmarks/bench_guided.py [--parts us,sct,pelvis,weights] [--engines elastix,ants]
       python Testing/Benchmarks/bench_guided.py --sweep [--engines ants] [--seeds 6] [--presets rigid]
       python Testing/Benchmarks/bench_guided.py --picture
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import bench_paths  # noqa: F401 (first: the library and the test-data makers on sys.path)
from bench_guided_pelvis import pelvis_table
from bench_guided_sct import sct_table
from bench_guided_us import region_of_interest, ultrasound_pair_for_bench, ultrasound_table
from bench_guided_weights import print_last_sweep, weights_table
from guided_common import OUT, ROOT, run_guided
from guided_picture import PICTURE, save_picture
from guided_weights import SWEEP_WEIGHTS, read_records, sweep, sweep_cases, sweep_summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="us,sct,pelvis,weights")
    parser.add_argument("--engines", default="elastix,ants")
    parser.add_argument("--sweep", action="store_true", help="run the full weights sweep (long) and print its summary")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--seed-list", help="the sweep's seeds, comma-separated (instead of 0..seeds-1)")
    parser.add_argument("--weights", help="the sweep's weights, comma-separated (default 0.3,1,3,10)")
    parser.add_argument("--guides", help="the sweep's guides, comma-separated (default segments,landmarks,both)")
    parser.add_argument("--metrics", default="intensity,segments")
    parser.add_argument("--presets", default="rigid")
    parser.add_argument("--summary", action="store_true", help="print the stored sweep's summary only")
    parser.add_argument("--picture", action="store_true")
    parser.add_argument("--full", action="store_true", help="every row (longer than make bench's 10 minutes)")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    OUT.mkdir(parents=True, exist_ok=True)
    if args.picture:
        pair, described = ultrasound_pair_for_bench()
        record = run_guided(pair, "elastix", "rigid", "both", fixed_mask=region_of_interest(pair))
        if "failed" in record:
            print(f"the guided registration failed: {record['failed']}")
            return 1
        title = "after guided rigid (gland, urethra, 6 landmarks)"
        print(f"wrote {save_picture(pair, record['transform'], title, PICTURE)} ({described})")
        return 0
    if args.sweep or args.summary:
        paths = [OUT / f"sweep_{engine}.jsonl" for engine in engines]
        if args.sweep:
            seeds = [int(v) for v in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
            weights = tuple(float(v) for v in args.weights.split(",")) if args.weights else SWEEP_WEIGHTS
            cases = [c for c in sweep_cases(weights) if not args.guides or c[0] in args.guides.split(",")]
            for engine, path in zip(engines, paths):
                sweep([engine], seeds, args.presets.split(","), args.metrics.split(","), path, cases)
        print("\n".join(sweep_summary(read_records(paths), engines)))
        return 0
    parts = args.parts.split(",")
    started = time.perf_counter()
    print(f"Guided registration, this machine: {os.cpu_count()} cores (times are wall seconds of one run each, "
          "noisy when other jobs share the machine)", flush=True)  # fmt: skip
    if "us" in parts:
        clock = time.perf_counter()
        lines, results = ultrasound_table(engines, full=args.full)
        print("\n" + "\n".join(lines), flush=True)
        shown = results.get(("elastix + fixed ROI", "guided rigid (segments + landmarks)"), {})
        if "transform" in shown:
            path = save_picture(results["pair"], shown["transform"], "after guided rigid (gland, urethra, 6 landmarks)",
                                OUT / "guided_before_after.png")  # fmt: skip
            print(f"\nbefore/after picture: {path.relative_to(ROOT)}")
        print(f"(table: {time.perf_counter() - clock:.0f} s)", flush=True)
    for part, table in (("sct", sct_table), ("pelvis", pelvis_table), ("weights", weights_table)):
        if part in parts:
            clock = time.perf_counter()
            print("\n" + "\n".join(table(engines, full=args.full)), flush=True)
            print(f"(table: {time.perf_counter() - clock:.0f} s)", flush=True)
    if "weights" in parts:
        print_last_sweep(engines)
    print(f"\nbench_guided.py: {time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
