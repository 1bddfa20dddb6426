"""Benchmark (issue 23 prototype): shrunken, rotated, partly covered light-sheet-like brain against a
whole-head T2-like MRI (Testing/Python/micro_data.py), today's methods against the scale-aware start.

Methods:
* mmreg-affine: register(preset="affine"), elastix, init auto (today's any-pose search, rigid poses);
* mmreg-ants-affine: the same with engine="ants";
* greedy-affine: Greedy -a -dof 12, NMI, image centres, 100x50x10 (its documented affine recipe);
* proto: scale_search.search_similarity, then register(preset="affine", init="none") from it.

For every result: mean error (mm, fixed frame) over 2000 brain points, over the covered ones, the
mutual information before/after (core.metric), and the "null" MI: the median MI of the result
moved by decoys (30 mm shifts along each axis, 90 deg turns about each axis, about the fixed
brain centre), for the warning rule. Wall and CPU seconds (this process plus children).

Usage: python shrink_bench.py [--seeds 11,12,...] [--methods proto,mmreg-affine,...] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT / "MultimodalRegistration"), str(ROOT / "Testing" / "Python"), str(HERE), str(HERE.parent)]

import micro_data as md  # noqa: E402
import scale_search as ss  # noqa: E402
from MultimodalRegistrationLib.core.metric import mutual_information  # noqa: E402
from MultimodalRegistrationLib.core.rotations import axis_angle_matrices  # noqa: E402
from MultimodalRegistrationLib.core.transforms import Transform  # noqa: E402
from MultimodalRegistrationLib.registration.register import register  # noqa: E402


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def decoys(matrix: np.ndarray, center: np.ndarray) -> list[np.ndarray]:
    moves = []
    for axis in range(3):
        for sign in (1, -1):
            shift = np.eye(4)
            shift[axis, 3] = 30.0 * sign
            moves.append(shift)
        vector = np.zeros(3)
        vector[axis] = np.pi / 2
        turn = np.eye(4)
        turn[:3, :3] = axis_angle_matrices(vector[None])[0]
        turn[:3, 3] = center - turn[:3, :3] @ center
        moves.append(turn)
    return [matrix @ move for move in moves]


def greedy_affine(fixed: sitk.Image, moving: sitk.Image, workdir: Path) -> np.ndarray:
    f, m, out = workdir / "f.nii.gz", workdir / "m.nii.gz", workdir / "affine.mat"
    sitk.WriteImage(fixed, str(f))
    sitk.WriteImage(moving, str(m))
    command = f"-d 3 -a -dof 12 -i {f} {m} -o {out} -ia-image-centers -m NMI -n 100x50x10 -threads 2"
    # In a child process: Greedy's ITK finds no image IO factories in a process that loaded itk's wrapping.
    script = f"from picsl_greedy import Greedy3D; Greedy3D().execute({command!r})"
    subprocess.run([sys.executable, "-c", script], check=True, stdout=subprocess.DEVNULL)
    return Transform.from_matrix_ras(np.loadtxt(out)).matrix


def run(method: str, fixed, moving, mask, workdir: Path) -> tuple[np.ndarray, dict]:
    extra: dict = {}
    if method == "mmreg-affine":
        result = register(fixed, moving, engine="elastix", preset="affine", fixed_mask=mask, workdir=workdir)
        return result.transform.matrix, {"warnings": result.warnings}
    if method == "mmreg-ants-affine":
        result = register(fixed, moving, engine="ants", preset="affine", fixed_mask=mask, workdir=workdir, threads=2)
        return result.transform.matrix, {"warnings": result.warnings}
    if method == "greedy-affine":
        return greedy_affine(fixed, moving, workdir), extra
    if method.startswith("proto"):
        search = ss.search_similarity(fixed, moving, mask)
        extra = {"search_s": round(search.seconds, 2), "search_cpu_s": round(search.cpu_seconds, 2),
                 "start_scale": round(search.scale, 4), "seeds": {k: round(float(v), 3) for k, v in search.seeds.items()},
                 "start_matrix": search.pose.round(6).tolist()}  # fmt: skip
        engine = "ants" if method == "proto-ants" else "elastix"
        if mask is None and method != "proto-nofootprint":
            mask = ss.footprint_mask(fixed, moving, search.pose)
            extra["footprint_share"] = round(float(sitk.GetArrayViewFromImage(mask).mean()), 3)
        result = register(
            fixed, moving, engine=engine, preset="affine", fixed_mask=mask, workdir=workdir,
            initial_transform=Transform.from_matrix(search.pose), init="none", threads=2,
        )  # fmt: skip
        extra["warnings"] = result.warnings
        return result.transform.matrix, extra
    raise ValueError(method)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="11,12,13,14,15,16")
    parser.add_argument("--methods", default="proto,mmreg-affine,greedy-affine,mmreg-ants-affine")
    parser.add_argument("--coverages", default="1.0,0.65")
    parser.add_argument("--masks", default="0,1")
    parser.add_argument("--out", default=str(ROOT / "bench-output" / "micro" / "shrink.json"))
    args = parser.parse_args()
    if not md.available():
        print("MNI data not found: skipped")
        return 0
    head = md.head_mri(1.5)
    center = head.brain_points.mean(axis=0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = json.loads(out.read_text()) if out.exists() else []
    for seed in [int(s) for s in args.seeds.split(",")]:
        rng = np.random.default_rng(seed)
        shrink, angle = float(rng.uniform(0.6, 0.7)), float(rng.uniform(15.0, 35.0))
        for coverage in [float(c) for c in args.coverages.split(",")]:
            case = md.light_sheet(shrink, angle, coverage, seed=seed, brain_points=head.brain_points)
            for use_mask in [bool(int(m)) for m in args.masks.split(",")]:
                mask = head.brain_mask if use_mask else None
                for method in args.methods.split(","):
                    wall, cpu = time.perf_counter(), cpu_seconds()
                    with tempfile.TemporaryDirectory(prefix="micro-") as scratch:
                        try:
                            matrix, extra = run(method, head.image, case.moving, mask, Path(scratch))
                        except Exception as error:  # a benchmark row, not a crash
                            matrix, extra = None, {"error": f"{type(error).__name__}: {str(error)[:200]}"}
                    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
                    record = {"seed": seed, "shrink": round(shrink, 3), "angle": round(angle, 1), "coverage": coverage,
                              "mask": use_mask, "method": method, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), **extra}  # fmt: skip
                    if matrix is not None:
                        transform = Transform.from_matrix(matrix)
                        record["error_mm"] = round(md.mean_error(matrix, case.truth, head.brain_points), 2)
                        record["error_covered_mm"] = round(md.mean_error(matrix, case.truth, case.covered_points), 2)
                        record["scale"] = round(float(abs(np.linalg.det(matrix[:3, :3])) ** (1 / 3)) / shrink, 4)
                        record["mi_after"] = round(mutual_information(head.image, case.moving, transform), 4)
                        record["mi_truth"] = round(mutual_information(head.image, case.moving, Transform.from_matrix(case.truth)), 4)
                        null = [mutual_information(head.image, case.moving, Transform.from_matrix(d)) for d in decoys(matrix, center)]
                        record["mi_null"] = round(float(np.median(null)), 4)
                    print(json.dumps(record), flush=True)
                    records.append(record)
                    out.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
