"""Preparation benchmarks, printed as tables (not part of the tests).

1. N4 bias correction on a 256 x 256 x 180, 1 mm T1 (the MNI ICBM 2009a template from
   ../shared/data/mni_icbm152 times synthetic smooth bias fields, plus noise): the library's
   ``correct_bias`` against SimpleITK's own N4 recipe at shrink factor 4 (Otsu mask, shrunk copy,
   log field rebuilt at full resolution). Quality: the coefficient of variation of intensity in
   white matter (WM map >= 0.9). Both on 2 threads, each in a fresh process.
2. Streamed downsampling of a 2160 x 2560 x 472 uint16 light-sheet-like stack (5.2 GB) to 0.1 mm,
   from raw NRRD and MHA, in a fresh process each, with its peak memory (RSS). The target is the
   input's size + 1 GB; a streamed read needs far less. ``--whole`` adds the reference of reading
   the whole file first (needs 11 GB of free memory).

Usage: python Testing/Benchmarks/bench_prep.py [--skip-n4] [--skip-downsample] [--whole] [--scale 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_paths  # first: the library and the test-data makers on sys.path
from data_paths import SHARED_DATA

ROOT = bench_paths.ROOT
LIBRARY = bench_paths.LIBRARY
MNI = SHARED_DATA / "mni_icbm152"
THREADS = 2

N4_RUN = r"""
import json, resource, sys, time
import numpy as np
import SimpleITK as sitk
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(sys.argv[4]))
image = sitk.ReadImage(sys.argv[2])
wm = sitk.GetArrayFromImage(sitk.ReadImage(sys.argv[3])) >= 230
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, cpu_started = time.perf_counter(), cpu()
if sys.argv[1] == "simpleitk-shrink4":
    # SimpleITK's N4 example: Otsu mask, shrink by 4, default 4 x 50 iterations, field rebuilt at full size.
    mask = sitk.OtsuThreshold(image, 0, 1, 200)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.Execute(sitk.Shrink(image, [4] * 3), sitk.Shrink(mask, [4] * 3))
    corrected = image / sitk.Exp(n4.GetLogBiasFieldAsImage(image))
else:
    from MultimodalRegistrationLib.prep.bias import correct_bias
    corrected = correct_bias(image).corrected
seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
values = sitk.GetArrayViewFromImage(corrected)[wm]
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "cv": float(values.std() / values.mean())}))
"""

DOWNSAMPLE_RUN = r"""
import json, resource, sys, time
import SimpleITK as sitk
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
if sys.argv[1] == "whole":
    from MultimodalRegistrationLib.prep.downsample import downsample
    image = downsample(sitk.ReadImage(sys.argv[2]), float(sys.argv[3]))
    how = "sitk.ReadImage (whole file), then downsample"
else:
    from MultimodalRegistrationLib.prep.downsample import read_downsampled
    image, record = read_downsampled(sys.argv[2], float(sys.argv[3]))
    how = record["read"]
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_gb": peak / 1024**2, "extra_gb": (peak - before) / 1024**2,
                  "size": image.GetSize(), "how": how}))
"""


def run_python(code: str, *arguments) -> dict:
    environment = dict(os.environ, PYTHONPATH=str(LIBRARY))
    command = [sys.executable, "-c", code, *map(str, arguments)]
    run = subprocess.run(command, capture_output=True, text=True, env=environment)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- N4
def make_n4_inputs(folder: Path, fields: int = 3) -> list[tuple[Path, Path, float]]:
    """The MNI T1 on a 256 x 256 x 180 grid times ``fields`` smooth bias fields, with noise."""
    import numpy as np
    import SimpleITK as sitk

    t1 = sitk.ReadImage(str(MNI / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"))
    wm = sitk.ReadImage(str(MNI / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"))
    # 197 x 233 x 189 -> 256 x 256 x 180: pad in-plane, drop 9 empty slices above the brain (it ends at slice 154).
    grid = sitk.Image([256, 256, 180], sitk.sitkFloat32)
    grid.SetSpacing(t1.GetSpacing())
    grid.SetDirection(t1.GetDirection())
    shift = np.array([-(256 - 197) // 2, -(256 - 233) // 2, 0]) * np.array(t1.GetSpacing())
    grid.SetOrigin(tuple(np.array(t1.GetOrigin()) + np.array(t1.GetDirection()).reshape(3, 3) @ shift))
    t1 = sitk.Resample(sitk.Cast(t1, sitk.sitkFloat32), grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    wm = sitk.Resample(wm, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    sitk.WriteImage(wm, str(folder / "wm.nrrd"))
    array = sitk.GetArrayFromImage(t1)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in array.shape], indexing="ij", sparse=True)
    rng = np.random.default_rng(20251121)
    inputs = []
    for index in range(fields):
        c = rng.normal(0.0, 0.2, 8)
        field = np.exp(c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * y * z + c[5] * x * z
                       + c[6] * (x**2 - 0.3) + c[7] * (z**2 - 0.3))  # fmt: skip
        noisy = array * field + rng.normal(0.0, 3.0, array.shape)
        biased = sitk.GetImageFromArray(np.clip(noisy, 0, None).astype(np.float32))
        biased.CopyInformation(t1)
        path = folder / f"t1_bias{index}.nrrd"
        sitk.WriteImage(biased, str(path))
        values = sitk.GetArrayViewFromImage(biased)[sitk.GetArrayViewFromImage(wm) >= 230]
        inputs.append((path, folder / "wm.nrrd", float(values.std() / values.mean())))
    return inputs


def bench_n4(folder: Path) -> None:
    if not MNI.exists():
        print(f"N4: skipped, {MNI} not found")
        return
    print("N4 on the MNI T1, 256 x 256 x 180 at 1 mm, times synthetic bias fields, 2 threads ...", flush=True)
    inputs = make_n4_inputs(folder)
    rows = {"simpleitk-shrink4": [], "library": []}
    for path, wm, before in inputs:
        for method in rows:
            rows[method].append((before, run_python(N4_RUN, method, path, wm, THREADS)))
    print()
    print("| method | field | WM CV before | WM CV after | wall s | CPU s |")
    print("|---|---|---|---|---|---|")
    names = {"simpleitk-shrink4": "SimpleITK N4, shrink 4 (4 x 50 it., Otsu mask)",
             "library": "bias.correct_bias (6 mm voxels = shrink 6, 3 x 50 it., foreground mask)"}  # fmt: skip
    for method, results in rows.items():
        for index, (before, result) in enumerate(results):
            print(f"| {names[method]} | {index} | {before:.4f} | {result['cv']:.4f} | "
                  f"{result['seconds']:.2f} | {result['cpu_seconds']:.2f} |")  # fmt: skip
    for method, results in rows.items():
        mean = lambda key: sum(r[key] for _, r in results) / len(results)
        print(f"mean {names[method]}: WM CV {mean('cv'):.4f}, "
              f"{mean('seconds'):.2f} s wall, {mean('cpu_seconds'):.2f} s CPU")  # fmt: skip
    print("(unbiased template: WM CV 0.026; target: <= 5 s on 2 cores at a WM CV no worse than SimpleITK shrink 4)")
    print("(wall time depends on what else runs on the machine; CPU seconds are steadier)")


# --------------------------------------------------------------------------- downsampling
def write_stack(path: Path, size, spacing, kind: str) -> None:
    """A uint16 stack written slice by slice (never whole in memory): raw NRRD or MHA."""
    import numpy as np

    if kind == "nrrd":
        header = (
            "NRRD0004\ntype: uint16\ndimension: 3\nspace: left-posterior-superior\n"
            f"sizes: {size[0]} {size[1]} {size[2]}\n"
            f"space directions: ({spacing[0]},0,0) (0,{spacing[1]},0) (0,0,{spacing[2]})\n"
            "kinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n\n"
        )
    else:
        header = (
            "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n"
            "TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\nAnatomicalOrientation = RAI\n"
            f"ElementSpacing = {spacing[0]} {spacing[1]} {spacing[2]}\nDimSize = {size[0]} {size[1]} {size[2]}\n"
            "ElementType = MET_USHORT\nElementDataFile = LOCAL\n"
        )
    x = np.arange(size[0], dtype=np.uint32)
    y = np.arange(size[1], dtype=np.uint32)[:, None]
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 64, (size[1], size[0]), dtype=np.uint32)
    with open(path, "wb") as handle:
        handle.write(header.encode())
        for z in range(size[2]):
            # Tissue-like blobs (smooth) plus noise: something for the anti-aliasing to act on.
            smooth = 1000 + 400 * np.sin(x / 37.0 + z / 11.0) * np.cos(y / 53.0)
            plane = smooth + ((x * 7 + y * 13 + z * 17) % 97) + noise
            handle.write(plane.astype("<u2").tobytes())


def bench_downsample(folder: Path, scale: float, whole: bool) -> None:
    size = [max(16, int(round(n * scale))) for n in (2160, 2560, 472)]
    spacing = (0.00325, 0.00325, 0.01)
    input_gb = size[0] * size[1] * size[2] * 2 / 1024**3
    print(f"\nDownsampling a {size[0]} x {size[1]} x {size[2]} uint16 stack ({input_gb:.2f} GB, "
          f"{spacing[0]} x {spacing[1]} x {spacing[2]} mm) to 0.1 mm, each in a fresh process ...",
          flush=True)  # fmt: skip
    rows = []
    for kind in ("nrrd", "mha"):
        path = folder / f"stack.{kind}"
        write_stack(path, size, spacing, kind)
        runs = ["streamed"] + (["whole"] if whole else [])
        for mode in runs:
            result = run_python(DOWNSAMPLE_RUN, mode, path, 0.1)
            rows.append((kind, result))
        path.unlink()
    print()
    print("| file | how | output size | seconds | peak RSS GB | peak above start GB | bound (input + 1 GB) |")
    print("|---|---|---|---|---|---|---|")
    for kind, result in rows:
        size_text = " x ".join(map(str, result["size"]))
        print(f"| {kind} | {result['how']} | {size_text} | {result['seconds']:.1f} | {result['peak_gb']:.2f} | "
              f"{result['extra_gb']:.2f} | {input_gb + 1:.2f} |")  # fmt: skip
    print("Other formats: .nii/.nii.gz and .mhd stream through ITK like .mha; multi-page TIFF streams page by page")
    print("when Pillow is installed; anything else is read whole (peak = input + output).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-n4", action="store_true")
    parser.add_argument("--skip-downsample", action="store_true")
    parser.add_argument("--whole", action="store_true", help="also time reading the whole stack first (11 GB RAM)")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the stack's size per axis (1 = 5.2 GB)")
    arguments = parser.parse_args()
    out = ROOT / "bench-output" / "prep"
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-prep-", dir=out))
    try:
        if not arguments.skip_n4:
            bench_n4(folder)
        if not arguments.skip_downsample:
            bench_downsample(folder, arguments.scale, arguments.whole)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
