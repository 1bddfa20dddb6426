"""`make bench` table (issue 23): serial sections stacked without drift, against sequential pairwise stacking.

Data (Testing/Python/stack_data.py): the phantom head cut into 30 axial H&E-like RGB sections, 0.5 mm pixels,
each moved by up to 12 deg and 8 mm, four damaged (missing, blank, torn, a quarter fragment); sections 1 mm
and 2 mm apart, with an MR-like reference volume of the same head (--reference: its default anchors, every
few sections registered to it) and without. Per-section
residual (mm, mean over points in the head) after one global 2D rigid fit to the truth, on the 26 clean sections;
the drift is the slope of the sections' rotation error along the stack.
Seconds per section: wall and CPU (this process, 2 pair threads); peak memory: this process's maximum RSS.

Usage: python bench_stack.py [--count 30] [--seeds 0,1,2] [--spacings 1,2] [--large 300]
(--large: time and memory of a long stack only)
"""

from __future__ import annotations

import argparse
import copy
import resource
import sys
import time
from pathlib import Path

import bench_paths  # first: the library and the test-data makers on sys.path
import numpy as np
import SimpleITK as sitk
import stack_data
from MultimodalRegistrationLib.stack.align import NEIGHBOURS, align_sections, solve_rejecting
from MultimodalRegistrationLib.stack.output import write_volume
from MultimodalRegistrationLib.stack.reference import read_reference
from MultimodalRegistrationLib.stack.solve import fill_missing

ROOT = bench_paths.ROOT

OUT = ROOT / "bench-output" / "stack"
DAMAGE = {7: "missing", 12: "blank", 18: "torn", 23: "small"}
REFERENCE_OFFSET_MM = 3.0


def _drift_deg(poses, data, members) -> float:
    angles = []
    for k in members:
        back = np.linalg.inv(data.truth[k]) @ poses[k]
        angles.append(np.arctan2(back[1, 0], back[0, 0]))
    return float(np.degrees(np.polyfit(members, np.unwrap(angles), 1)[0]) * (len(data.paths) - 1))


def _sections(count: int, section_mm: float, damage: dict, seed: int = 0) -> stack_data.SerialSections:
    folder = OUT / f"n{count}_{section_mm:g}mm_seed{seed}"
    first_z = -section_mm * (count - 1) / 2
    return stack_data.serial_sections(folder, count, 0.5, section_mm, first_z=first_z, damage=damage, seed=seed)


def _reference(data: stack_data.SerialSections, seed: int):
    """An MR-like reference of the head (1 mm voxels), its planes turned 7 deg and moved (12, -9) mm."""
    first_z = -data.section_mm * (len(data.paths) - 1) / 2
    motion = stack_data.rigid(7.0, (12.0, -9.0), (100.0, 115.0))
    path = Path(data.paths[0]).parent / "reference.nrrd"
    sitk.WriteImage(
        stack_data.reference_volume(data, motion, REFERENCE_OFFSET_MM, first_z=first_z, seed=seed), str(path)
    )
    return read_reference(path, data.section_mm, REFERENCE_OFFSET_MM, len(data.paths))


def _without_reference(alignment, count: int):
    """The poses the neighbour pairs alone give (the same registrations as a run without a reference)."""
    pairs = [p for p in alignment.pairs if p.i < count]
    reports = copy.deepcopy(alignment.sections)
    poses, _ = solve_rejecting(count, pairs, reports, alignment.center, False)
    return fill_missing(poses[:count], alignment.center)


def _row(seed, section_mm, method, poses, data, clean, wall, cpu) -> str:
    count = len(data.paths)
    error = stack_data.residuals_after_global_fit(poses, data.truth, data.points, clean)
    damaged = stack_data.residuals_after_global_fit(poses, data.truth, data.points, [*clean, 18, 23])
    timing = f"{wall / count:.2f} | {cpu / count:.2f}" if wall else "(same pairs) | "
    return (f"| {seed} | {section_mm:g} mm | {method} | {np.median(error[clean]):.3f} | {np.max(error[clean]):.3f} | "
            f"{damaged[18]:.2f} | {damaged[23]:.2f} | {_drift_deg(poses, data, clean):.2f} | {timing} |")  # fmt: skip


def accuracy(count: int, seeds: list[int], spacings: list[float]) -> None:
    print(f"\nStack of {count} sections, 0.5 mm pixels, moved <= 12 deg / 8 mm, 4 damaged; neighbours {NEIGHBOURS}")
    print("\n| seed | spacing | method | median mm | worst mm | torn mm | fragment mm | drift deg | s/section "
          "| CPU s/section |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed in seeds:
        for section_mm in spacings:
            data = _sections(count, section_mm, DAMAGE, seed)
            reference = _reference(data, seed)
            clean = [k for k in range(count) if k not in DAMAGE]
            wall, cpu = time.perf_counter(), time.process_time()
            alignment = align_sections(data.paths, 0.5, reference=reference)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(_row(seed, section_mm, "global solve", _without_reference(alignment, count), data, clean, 0, 0))
            method = f"global + reference ({len(alignment.reference_sections)} anchors)"
            print(_row(seed, section_mm, method, alignment.poses, data, clean, wall, cpu))
            wall, cpu = time.perf_counter(), time.process_time()
            chained = align_sections(data.paths, 0.5, sequential=True)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(_row(seed, section_mm, "sequential pairs", chained.poses, data, clean, wall, cpu), flush=True)
    print("\nTargets (issue 23): median < 0.5 mm, worst < 1.5 mm, < 1 s per section on 2 cores.")


def large(count: int) -> None:
    data = _sections(count, 0.5, {})
    wall, cpu = time.perf_counter(), time.process_time()
    alignment = align_sections(data.paths, 0.5)
    aligned = time.perf_counter() - wall
    write_volume(OUT / "large.nrrd", data.paths, alignment.poses, [True] * count, 0.5, 0.5, alignment.bright)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{count} sections: align {aligned / count:.2f} s/section, with the volume {wall / count:.2f} s/section, "
          f"CPU {cpu / count:.2f} s/section, peak memory {peak:.0f} MB")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--large", type=int, default=0)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the motions and the stain texture")
    parser.add_argument("--spacings", default="1,2", help="comma-separated section spacings (mm)")
    args = parser.parse_args()
    if args.large:
        large(args.large)
    else:
        accuracy(args.count, [int(v) for v in args.seeds.split(",")], [float(v) for v in args.spacings.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
