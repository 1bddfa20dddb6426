"""`make bench` table (issue 23): serial sections stacked without drift, against sequential pairwise stacking.

Data (Testing/Python/stack_data.py): the phantom head cut into 30 axial H&E-like RGB sections, 0.5 mm pixels,
each moved by up to 12 deg and 8 mm, four damaged (missing, blank, torn, a quarter fragment); sections 1 mm
and 2 mm apart. Per-section residual (mm, mean over points in the head) after one global 2D rigid fit to the
truth, on the 26 clean sections; the drift is the slope of the sections' rotation error along the stack.
Seconds per section: wall and CPU (this process, 2 pair threads); peak memory: this process's maximum RSS.

Usage: python bench_stack.py [--count 30] [--large 300]  (--large: time and memory of a long stack only)
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "MultimodalRegistration"), str(ROOT / "Testing" / "Python")]

import stack_data
from MultimodalRegistrationLib.stack.align import NEIGHBOURS, align_sections
from MultimodalRegistrationLib.stack.output import write_volume

OUT = ROOT / "bench-output" / "stack"
DAMAGE = {7: "missing", 12: "blank", 18: "torn", 23: "small"}


def _drift_deg(poses, data, members) -> float:
    angles = []
    for k in members:
        back = np.linalg.inv(data.truth[k]) @ poses[k]
        angles.append(np.arctan2(back[1, 0], back[0, 0]))
    return float(np.degrees(np.polyfit(members, np.unwrap(angles), 1)[0]) * (len(data.paths) - 1))


def _sections(count: int, section_mm: float, damage: dict) -> stack_data.SerialSections:
    folder = OUT / f"n{count}_{section_mm:g}mm"
    first_z = -section_mm * (count - 1) / 2
    return stack_data.serial_sections(folder, count, 0.5, section_mm, first_z=first_z, damage=damage)


def accuracy(count: int) -> None:
    print(f"\nStack of {count} sections, 0.5 mm pixels, moved <= 12 deg / 8 mm, 4 damaged; neighbours {NEIGHBOURS}")
    print(
        "\n| spacing | method | median mm | worst mm | torn mm | fragment mm | drift deg | s/section | CPU s/section |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for section_mm in (1.0, 2.0):
        data = _sections(count, section_mm, DAMAGE)
        clean = [k for k in range(count) if k not in DAMAGE]
        for method, sequential in (("global solve", False), ("sequential pairs", True)):
            wall, cpu = time.perf_counter(), time.process_time()
            alignment = align_sections(data.paths, 0.5, sequential=sequential)
            wall, cpu = (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count
            error = stack_data.residuals_after_global_fit(alignment.poses, data.truth, data.points, clean)
            damaged = stack_data.residuals_after_global_fit(alignment.poses, data.truth, data.points, [*clean, 18, 23])
            print(f"| {section_mm:g} mm | {method} | {np.median(error[clean]):.3f} | {np.max(error[clean]):.3f} | "
                  f"{damaged[18]:.2f} | {damaged[23]:.2f} | {_drift_deg(alignment.poses, data, clean):.2f} | "
                  f"{wall:.2f} | {cpu:.2f} |", flush=True)  # fmt: skip
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
    args = parser.parse_args()
    if args.large:
        large(args.large)
    else:
        accuracy(args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
