"""A 2D registration as a user would run it (a prototype of `mmreg register` on 2D files): read, bring RGB
to one channel, any-pose search, engine, write the transform (3D embedding), print JSON timings.

    python run2d.py FIXED MOVING OUT.h5 [--spacing-fixed MM] [--spacing-moving MM] [--engine elastix|ants]
                    [--preset rigid|affine|deformable] [--gray od|luminance|hematoxylin] [--no-mirror]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

started = time.perf_counter()
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[2] / "MultimodalRegistration"), str(HERE)]

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

import reg2d  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("fixed")
    parser.add_argument("moving")
    parser.add_argument("output")
    parser.add_argument("--spacing-fixed", type=float)
    parser.add_argument("--spacing-moving", type=float)
    parser.add_argument("--engine", default="elastix")
    parser.add_argument("--preset", default="rigid")
    parser.add_argument("--gray", default="od")
    parser.add_argument("--no-mirror", action="store_true")
    args = parser.parse_args()
    times = {"import_s": time.perf_counter() - started}
    clock = time.perf_counter()
    images = []
    for path, given in ((args.fixed, args.spacing_fixed), (args.moving, args.spacing_moving)):
        image = sitk.ReadImage(path)
        spacing, source = reg2d.pixel_size(path, image, given)
        if not np.isfinite(spacing):
            print(json.dumps({"error": f"{path}: pixel size unknown (the file says {image.GetSpacing()[0]:g}): give --spacing"}))
            return 2
        image.SetSpacing([spacing, spacing])
        images.append(reg2d.to_gray(image, args.gray))
    fixed, moving = images
    times["read_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    search = reg2d.search_2d(fixed, moving, scale=args.preset != "rigid", mirror=not args.no_mirror)
    times["search_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        if args.engine == "elastix":
            matrix = reg2d.elastix_2d(fixed, moving, search.pose, args.preset, Path(scratch))
        else:
            kind = {"rigid": "Rigid", "affine": "Affine", "deformable": "SyN"}[args.preset]
            matrix = reg2d.ants_2d(fixed, moving, search.pose, kind, Path(scratch))
    times["engine_s"] = time.perf_counter() - clock
    reg2d.write_transform(matrix, args.output)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    times["whole_s"] = time.perf_counter() - started
    times["cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps({"matrix": matrix.tolist(), "start": search.pose.tolist(), "mirrored": search.mirrored,
                      "search_evaluations": search.evaluations, "peak_mb": usage.ru_maxrss / 1024,
                      **{k: round(v, 3) for k, v in times.items()}}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
