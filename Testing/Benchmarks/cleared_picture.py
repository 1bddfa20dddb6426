"""The picture of the README's shrunken-tissue tutorial: Resources/Screenshots/cleared_tissue_before_after.png.

A generated case (Testing/Python/micro_data.py, MNI ICBM152 maps, so it needs ../shared/data): a whole-head
T2-like MRI (fixed, 1.5 mm) and a brain-only light-sheet-like image (moving, 1 mm) shrunk to 0.65, turned
30 degrees and cut to 65% of the brain, in a frame of its own. It runs ``mmreg register --preset
similarity`` as a user would, then draws the three-plane checkerboard of the MRI and the light sheet: before
(the image centres aligned, the usual start) and after (the result). It prints the mean error at 2000 brain
points against the known truth.

Usage: python Testing/Benchmarks/cleared_picture.py [--output PNG] [--seed N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_paths  # first: the library and the test-data makers on sys.path
import micro_data as md
import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.qa.pictures import checkerboard_picture

ROOT = bench_paths.ROOT

OUTPUT = ROOT / "Resources" / "Screenshots" / "cleared_tissue_before_after.png"
SHRINK, ANGLE_DEG, COVERAGE = 0.65, 30.0, 0.65


def _centre(image: sitk.Image) -> np.ndarray:
    index = (np.asarray(image.GetSize()) - 1) / 2.0
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))


def centres_aligned(fixed: sitk.Image, moving: sitk.Image) -> Transform:
    """Fixed -> moving translation that puts the two image centres together (LPS mm)."""
    matrix = np.eye(4)
    matrix[:3, 3] = _centre(moving) - _centre(fixed)
    return Transform.from_matrix(matrix)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--seed", type=int, default=5)
    arguments = parser.parse_args()
    if not md.available():
        print(f"skipped: the MNI maps are not in {md.DATA}")
        return 0
    head = md.head_mri()
    case = md.light_sheet(SHRINK, ANGLE_DEG, COVERAGE, seed=arguments.seed, brain_points=head.brain_points)
    with tempfile.TemporaryDirectory(prefix="cleared-picture-") as scratch:
        folder = Path(scratch)
        sitk.WriteImage(head.image, str(folder / "mri.nrrd"))
        sitk.WriteImage(case.moving, str(folder / "lightsheet.nrrd"))
        command = [
            sys.executable, "-m", "MultimodalRegistrationLib.cli", "register", "--fixed", str(folder / "mri.nrrd"),
            "--moving", str(folder / "lightsheet.nrrd"), "--preset", "similarity",
            "--output-transform", str(folder / "T.h5"),
        ]  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT / "MultimodalRegistration")
        result = Transform.read(folder / "T.h5")
    before = centres_aligned(head.image, case.moving)
    for name, transform in (("before (image centres)", before), ("after (similarity)", result)):
        error = md.mean_error(transform.matrix, case.truth, head.brain_points)
        print(f"{name}: mean error {error:.2f} mm at {len(head.brain_points)} brain points")
    pictures = [checkerboard_picture(head.image, case.moving, t, pixel_mm=1.0) for t in (before, result)]
    width = max(p.shape[1] for p in pictures)
    rows = [np.pad(p, ((0, 6), (0, width - p.shape[1]))) for p in pictures]
    sitk.WriteImage(sitk.GetImageFromArray(np.concatenate(rows)[:-6]), str(arguments.output))
    print(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
