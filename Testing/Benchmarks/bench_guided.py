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
core; see ``sweep`` and Testing/Benchmarks/guided_results.md) and prints its summary; ``--picture``
writes the before/after picture of docs/guided.md (Resources/Screenshots/guided_before_after.png).

Usage: python Testing/Benchmarks/bench_guided.py [--parts us,sct,pelvis,weights] [--engines elastix,ants]
       python Testing/Benchmarks/bench_guided.py --sweep [--engines ants] [--seeds 6] [--presets rigid]
       python Testing/Benchmarks/bench_guided.py --picture
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "MultimodalRegistration"))
sys.path.insert(0, str(ROOT / "Testing" / "Python"))

from MultimodalRegistrationLib.core.errors import EngineError, InputError
from MultimodalRegistrationLib.core.labels import surface_distances
from MultimodalRegistrationLib.core.rotations import orthogonal_fit
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.ants import intensity_leads
from MultimodalRegistrationLib.engines.presets import guidance_defaults
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.piecewise.segments import register_piecewise
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.keep import minimum_jacobian
from pelvis_like import BENCH_PELVIS, pelvis_like_pair
from ultrasound_like import BENCH_ULTRASOUND, ultrasound_like_pair
from ultrasound_model import mni_source

PRESETS = ROOT / "Resources" / "Presets"
OUT = ROOT / "bench-output" / "guided"
SCT = ROOT.parent / "shared" / "data" / "sct"
PICTURE = ROOT / "Resources" / "Screenshots" / "guided_before_after.png"
ENGINES = ("elastix", "ants")
GUIDES = ("segments", "landmarks", "both")
SWEEP_WEIGHTS = (0.3, 1.0, 3.0, 10.0)


# ----------------------------------------------------------------------------------------------- helpers
def target_errors(pair, transform: Transform) -> np.ndarray:
    """Distances (mm) between the mapped fixed targets and their true moving positions."""
    return np.linalg.norm(transform.transform_points(pair.targets_fixed) - pair.targets_moving, axis=1)


def error_stats(errors: np.ndarray) -> dict:
    return {
        "median_mm": float(np.median(errors)),
        "p95_mm": float(np.percentile(errors, 95)),
        "within_5mm": float(np.mean(errors < 5.0)),
        "within_2mm": float(np.mean(errors < 2.0)),
    }


def guidance_of(pair, guide: str, metric: str = "intensity", weight: float | None = None) -> Guidance | None:
    """The ultrasound-like pair's guidance: its gland and urethra segments, its six clicked landmarks, or both."""
    if guide == "none":
        return None
    segments = guide in ("segments", "both")
    points = guide in ("landmarks", "both")
    return Guidance(
        fixed_segmentation=pair.fixed_labels if segments else None,
        moving_segmentation=pair.moving_labels if segments else None,
        fixed_points_lps=pair.landmarks_fixed if points else None,
        moving_points_lps=pair.landmarks_moving if points else None,
        weight=weight,
        metric=metric,
    )


@contextlib.contextmanager
def guidance_weights(weights: dict[str, dict[str, float]] | None):
    """Run with other default guidance weights ({engine: {"segments": w, "points": w}}): a copy of the preset
    folder whose guidance.json holds them, through MMREG_PRESETS_DIR (what a user's own folder would do)."""
    if not weights:
        yield
        return
    saved = os.environ.get("MMREG_PRESETS_DIR")
    with tempfile.TemporaryDirectory(prefix="mmreg-weights-") as folder:
        for entry in PRESETS.iterdir():
            if entry.name != "guidance.json":
                os.symlink(entry, Path(folder) / entry.name)
        record = json.loads((PRESETS / "guidance.json").read_text())
        for engine, pair in weights.items():
            record[engine] = dict(pair)
        (Path(folder) / "guidance.json").write_text(json.dumps(record))
        os.environ["MMREG_PRESETS_DIR"] = folder
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("MMREG_PRESETS_DIR", None)
            else:
                os.environ["MMREG_PRESETS_DIR"] = saved


def led_by(engine: str, guide: str, metric: str, segments_weight: float, points_weight: float, segments: int) -> str:
    """Which term leads each ANTs stage (its first metric): the intensities or a guidance term."""
    if engine != "ants" or guide == "none":
        return ""
    weights = []
    if guide in ("segments", "both"):
        weights += [segments_weight / segments] * segments
    if guide in ("landmarks", "both"):
        weights.append(points_weight)

    class Term:  # what intensity_leads reads
        def __init__(self, weight):
            self.weight = weight

    leads = intensity_leads([Term(w) for w in weights], 0.0 if metric == "segments" else 1.0)
    return "intensity" if leads else "guidance"


def run_guided(pair, engine: str, preset: str, guide: str, metric: str = "intensity", threads: int | None = None,
               **options) -> dict:  # fmt: skip
    """One register() call on an ultrasound-like pair, scored at the targets; a failure is recorded, not raised."""
    started = time.perf_counter()
    record = {"engine": engine, "preset": preset, "guide": guide, "metric": metric}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = register(
                pair.fixed, pair.moving, engine=engine, preset=preset, guidance=guidance_of(pair, guide, metric),
                threads=threads, **options,
            )  # fmt: skip
    except (EngineError, InputError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        described = [line.split("Description:", 1)[1].strip() for line in lines if "Description:" in line]
        record.update(failed=(described or lines or ["failed"])[0][:300], seconds=time.perf_counter() - started)
        return record
    provenance = result.provenance
    start = Transform.from_matrix(np.asarray(provenance.start_matrix_lps)) if provenance.start_matrix_lps else None
    record.update(error_stats(target_errors(pair, result.transform)))
    record.update(
        seconds=time.perf_counter() - started,
        kept=provenance.kept,
        kept_reason=provenance.kept_reason,
        start=provenance.start,
        start_median_mm=float(np.median(target_errors(pair, start))) if start is not None else None,
        fixed_sampling=provenance.fixed_sampling,
        transform=result.transform,
    )
    return record


def best_rigid_floor(pair) -> dict:
    """The rigid transform closest to the truth at the targets (least squares): what no rigid result can beat."""
    fit = Transform.from_matrix(orthogonal_fit(pair.targets_fixed, pair.targets_moving, scale=False))
    return error_stats(target_errors(pair, fit))


# ------------------------------------------------------------------------------------ MR -> ultrasound-like
# (label, preset, guide, metric): the rows of the MR -> ultrasound-like table after the centre alignment.
US_ROWS = (
    ("unguided rigid", "rigid", "none", "intensity"),
    ("unguided deformable", "deformable", "none", "intensity"),
    ("guided rigid (segments)", "rigid", "segments", "intensity"),
    ("guided rigid (segments + landmarks)", "rigid", "both", "intensity"),
    ("--metric segments, rigid (segments + landmarks)", "rigid", "both", "segments"),
    ("guided deformable (segments + landmarks)", "deformable", "both", "intensity"),
)
ROI_MARGIN_MM = 20.0


def region_of_interest(pair, margin_mm: float = ROI_MARGIN_MM) -> sitk.Image:
    """A fixed mask: the fixed gland segmentation grown by ``margin_mm`` (what a user would outline in the MR)."""
    gland = sitk.Cast(pair.fixed_labels > 0, sitk.sitkUInt8)
    distance = sitk.SignedMaurerDistanceMap(gland, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return sitk.Cast(distance <= margin_mm, sitk.sitkUInt8)


def ultrasound_pair_for_bench():
    """The MNI-based pair at BENCH_ULTRASOUND size when the MNI T1 is present, else the small phantom pair."""
    source = mni_source()
    if source is not None:
        return ultrasound_like_pair(source=source, seed=0, **BENCH_ULTRASOUND), "MNI T1 source, BENCH_ULTRASOUND size"
    return ultrasound_like_pair(seed=0), "analytic phantom source, small test size (../shared/data/mni_icbm152 absent)"


def ultrasound_table(engines, full: bool = False, roi_engines=("elastix",)) -> tuple[list[str], dict]:
    """The MR -> ultrasound-like table; ``roi_engines`` also run with a fixed region of interest. Without
    ``full`` (make bench's time budget) an engine that fails on the whole images stops after its first failing
    row (a safeguard: since elastix samples the fixed image only where the moving image lies when too little of
    it does, registration/mask_start.sampling_regions, no row fails here)."""
    started = time.perf_counter()
    pair, described = ultrasound_pair_for_bench()
    made = time.perf_counter() - started
    centre = centre_alignment(pair.fixed, pair.moving, None, "geometry")
    lines = [
        (
            f"MR -> ultrasound-like ({described}): fixed {pair.fixed.GetSize()} at {pair.fixed.GetSpacing()[0]:g} mm, "
            f"moving {pair.moving.GetSize()} at {'/'.join(f'{v:g}' for v in pair.moving.GetSpacing())} mm; made in "
            f"{made:.0f} s. Target error at {len(pair.targets_fixed)} targets in and on the gland (exact truth: rigid "
            "pose + 5 mm probe push); guidance: gland and urethra segments, 6 landmarks clicked with 1 mm noise; "
            "default weights (Resources/Presets/guidance.json)."
        ),
        "",
        "| engine | row | median mm | 95th pct mm | < 5 mm | < 2 mm | seconds | kept | fixed sampling |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    stats = error_stats(target_errors(pair, centre))
    lines.append(_us_line("-", "centre alignment (start)", stats, None, ""))
    lines.append(_us_line("-", "best rigid fit to the truth at the targets (floor)", best_rigid_floor(pair), None, ""))
    results = {"pair": pair, "centre": centre}
    notes = []
    variants = [(engine, None) for engine in engines]
    variants += [(engine, "roi") for engine in engines if engine in roi_engines]
    for engine, variant in variants:
        options = {"fixed_mask": region_of_interest(pair)} if variant == "roi" else {}
        name = f"{engine} + fixed ROI" if variant else engine
        for label, preset, guide, metric in US_ROWS:
            record = run_guided(pair, engine, preset, guide, metric, **options)
            results[(name, label)] = record
            sampling = "fixed ROI" if variant == "roi" else _sampling(record)
            lines.append(_us_line(name, label, record, record["seconds"], record.get("kept", ""), sampling))
            start = record.get("start_median_mm")
            print(
                f"  ({name}: {label} done in {record['seconds']:.0f} s"
                + (f"; start {record.get('start')} {start:.2f} mm" if start is not None else "") + ")",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            if not full and variant is None and engine in roi_engines and "failed" in record:
                notes.append(
                    f"{engine} on the whole fixed image: stopped after its first failing row (--full runs them all)."
                )
                break
    if any(engine in roi_engines for engine in engines):
        notes.append(f"fixed ROI: the fixed gland segmentation grown by {ROI_MARGIN_MM:g} mm, given as the fixed mask.")
    notes.append(
        "fixed sampling: whole = the engine sampled the whole fixed image; moving footprint (n%) = no fixed mask and "
        "too little of the fixed image inside the moving image at the start, so the engine sampled only where the "
        "moving image lies (n% of the fixed image; provenance.fixed_sampling); fixed ROI = the mask given."
    )
    return lines + [""] + notes, results


def _sampling(record: dict) -> str:
    """The fixed sampling column: whole, or the moving image's footprint (and its share of the fixed image)."""
    if "failed" in record:
        return ""
    described = record.get("fixed_sampling")
    if not described:
        return "whole"
    share = re.search(r"\((\d+%) of the fixed image\)", described)
    return f"moving footprint ({share.group(1)})" if share else described


def _us_line(engine: str, label: str, record: dict, seconds, kept, sampling: str = "") -> str:
    if "failed" in record:
        return f"| {engine} | {label} | failed: {record['failed'][:120]} | | | | {seconds:.1f} | | {sampling} |"
    timing = "" if seconds is None else f"{seconds:.1f}"
    return (
        f"| {engine} | {label} | {record['median_mm']:.2f} | {record['p95_mm']:.2f} "
        f"| {100 * record['within_5mm']:.0f}% | {100 * record['within_2mm']:.0f}% | {timing} | {kept} | {sampling} |"
    )


# ------------------------------------------------------------------------------------------ SCT spinal cord
def _z_mm(image: sitk.Image) -> np.ndarray:
    """Each voxel's physical z (LPS superior, mm), shaped like the image's array (z, y, x)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in image.GetSize()[::-1]), indexing="ij")
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    return image.GetOrigin()[2] + matrix[2, 0] * i + matrix[2, 1] * j + matrix[2, 2] * k


def _cut(segmentation: sitk.Image, above_mm: float | None = None, below_mm: float | None = None) -> sitk.Image:
    """The segmentation with the voxels outside above_mm < z <= below_mm (physical, mm) cleared."""
    array = sitk.GetArrayFromImage(segmentation)
    z = _z_mm(segmentation)
    keep = np.ones_like(array, bool)
    if above_mm is not None:
        keep &= z > above_mm
    if below_mm is not None:
        keep &= z <= below_mm
    result = sitk.GetImageFromArray((array * keep).astype(array.dtype))
    result.CopyInformation(segmentation)
    return result


def cord_agreement(fixed: sitk.Image, moving: sitk.Image, fixed_cord: sitk.Image, moving_cord: sitk.Image,
                   transform: Transform, below_mm: float | None = None) -> tuple[float, float]:  # fmt: skip
    """(Dice, mean symmetric surface distance in mm) of the fixed cord and the moving cord warped onto the fixed
    grid through ``transform`` (fixed -> moving), counted where the moving image has data and (``below_mm``)
    at physical z <= below_mm."""
    warped = sitk.Resample(moving_cord, fixed, transform.sitk, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    covered = sitk.GetArrayViewFromImage(sitk.Resample(ones, fixed, transform.sitk, sitk.sitkNearestNeighbor, 0)) > 0
    if below_mm is not None:
        covered = covered & (_z_mm(fixed) <= below_mm)
    a = (sitk.GetArrayViewFromImage(fixed_cord) > 0) & covered
    b = (sitk.GetArrayViewFromImage(warped) > 0) & covered
    dice = 2.0 * np.count_nonzero(a & b) / max(int(a.sum()) + int(b.sum()), 1)
    surface = surface_distances(a, b, fixed)[0] if a.any() and b.any() else float("nan")
    return float(dice), float(surface)


def sct_table(engines, full: bool = False) -> list[str]:
    """Cord Dice and surface distance, T1w (fixed) -> T2w (moving), unguided and guided by the cord; rigid,
    and with ``full`` deformable too."""
    presets = ("rigid", "deformable") if full else ("rigid",)
    if not (SCT / "t1w.nii.gz").exists():
        return [f"SCT spinal cord: skipped, {SCT} is absent."]
    fixed, moving = (sitk.ReadImage(str(SCT / f"{name}.nii.gz"), sitk.sitkFloat32) for name in ("t1w", "t2"))
    fixed_cord, moving_cord = (sitk.ReadImage(str(SCT / f"{name}_seg-manual.nii.gz")) for name in ("t1w", "t2"))
    # The cut between the upper (guiding) and lower (held-out) cord: the middle of the z range both cords cover.
    ranges = [_z_mm(cord)[sitk.GetArrayViewFromImage(cord) > 0] for cord in (fixed_cord, moving_cord)]
    low, high = max(r.min() for r in ranges), min(r.max() for r in ranges)
    cut = 0.5 * (low + high)
    upper = Guidance(_cut(fixed_cord, above_mm=cut), _cut(moving_cord, above_mm=cut))
    whole = Guidance(fixed_cord, moving_cord)

    def scores(transform):
        return cord_agreement(fixed, moving, fixed_cord, moving_cord, transform) + cord_agreement(
            fixed, moving, fixed_cord, moving_cord, transform, below_mm=cut
        )

    lines = [
        (
            f"SCT spinal cord, T1w {fixed.GetSize()} (fixed) -> T2w {moving.GetSize()} (moving), 1 mm, real MRI of one "
            "subject, manual cord segmentations, no ground truth. Dice and mean surface distance (MSD, mm) of the cord "
            "where the warped T2w has data; 'lower' = below z = "
            f"{cut:.1f} mm, the middle of the z range both cords cover ({low:.1f} to {high:.1f} mm). The whole-cord "
            "rows were guided by the very cord they are scored on; the upper-half rows are guided by the cord above "
            "the cut only, so their lower-half scores are held out."
        ),
        "",
        "| engine | row | Dice all | MSD all mm | Dice lower | MSD lower mm | seconds | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    header = scores(Transform.identity())
    centre = scores(centre_alignment(fixed, moving, None, "geometry"))
    for label, values in (("scanner (header) alignment", header), ("centre alignment", centre)):
        lines.append(f"| - | {label} | {values[0]:.3f} | {values[1]:.2f} | {values[2]:.3f} | {values[3]:.2f} | | |")
    for engine in engines:
        for preset in presets:
            for label, guidance, init in (
                ("unguided (init auto)", None, "auto"),
                ("unguided from the header (init none)", None, "none"),
                ("guided by the whole cord", whole, "auto"),
                ("guided by the upper half of the cord", upper, "auto"),
            ):
                started = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        result = register(fixed, moving, engine=engine, preset=preset, guidance=guidance, init=init)
                except (EngineError, InputError) as error:
                    lines.append(
                        f"| {engine} | {preset}, {label} | failed: {str(error).splitlines()[0][:100]} | | | | | |"
                    )
                    continue
                seconds = time.perf_counter() - started
                values = scores(result.transform)
                lines.append(
                    f"| {engine} | {preset}, {label} | {values[0]:.3f} | {values[1]:.2f} | {values[2]:.3f} | "
                    f"{values[3]:.2f} | {seconds:.1f} | {result.provenance.kept} |"
                )
                print(f"  (sct {engine} {preset} {label}: {seconds:.0f} s)", file=sys.stderr, flush=True)
    return lines


# ------------------------------------------------------------------------------------------ pelvis piecewise
def pelvis_table(engines, full: bool = False) -> list[str]:
    """Per bone: the target error of the global guided rigid result and of the piecewise field (mm)."""
    started = time.perf_counter()
    pair = pelvis_like_pair(seed=0, **BENCH_PELVIS)
    made = time.perf_counter() - started
    bones = list(pair.names.values())
    guidance = Guidance(pair.fixed_labels, pair.moving_labels)
    centre = centre_alignment(pair.fixed, pair.moving, None, "geometry")

    def errors(name: str, transform: Transform) -> np.ndarray:
        return np.linalg.norm(transform.transform_points(pair.targets_fixed[name]) - pair.targets_moving[name], axis=1)

    lines = [
        (
            f"Pelvis-like CT {pair.fixed.GetSize()} at {pair.fixed.GetSpacing()[0]:g} mm (fixed) -> MR "
            f"{pair.moving.GetSize()} at {'/'.join(f'{v:g}' for v in pair.moving.GetSpacing())} mm (moving), made in "
            f"{made:.0f} s; one global pose (5-10 deg, 8-15 mm), then each bone its own 2-5 deg, 1.5-4 mm. "
            f"Target error (mean / max mm at {len(pair.targets_fixed[bones[0]])} targets per bone, exact truth per "
            "bone) of the global rigid registration guided by all bone segments, and of register_piecewise's field "
            "(one rigid registration per bone, blended without folding)."
        ),
        "",
        "| engine | bone | centre alignment | global rigid (guided) | piecewise field | bone's own rigid |",
        "|---|---|---|---|---|---|",
    ]
    footer = []
    for engine in engines:
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = register_piecewise(pair.fixed, pair.moving, guidance, bones, engine=engine)
        except (EngineError, InputError) as error:
            lines.append(f"| {engine} | failed: {str(error).splitlines()[0][:120]} | | | | |")
            continue
        seconds = time.perf_counter() - started
        for name in bones:
            cells = [errors(name, t) for t in (centre, result.global_result.transform, result.field,
                                                result.segments[name].transform)]  # fmt: skip
            shown = [f"{c.mean():.2f} / {c.max():.2f}" for c in cells]
            own = shown[3] if result.segments[name].kept else f"{shown[3]} (global kept)"
            lines.append(f"| {engine} | {name} | {shown[0]} | {shown[1]} | {shown[2]} | {own} |")
        global_seconds = result.global_result.seconds
        footer.append(
            f"- {engine}: field minimum Jacobian determinant {result.minimum_jacobian:.3f} (checked again on a 4 mm "
            f"grid: {minimum_jacobian(result.field, pair.fixed):.3f}); {seconds:.0f} s in all (global "
            f"{global_seconds:.0f} s, bones {sum(s.seconds for s in result.segments.values()):.0f} s); global kept "
            f"{result.global_result.provenance.kept}; {len(result.warnings)} warnings"
        )
        footer += [f"  - warning: {warning[:200]}" for warning in result.warnings]
        print(f"  (pelvis {engine}: {seconds:.0f} s)", file=sys.stderr, flush=True)
    return lines + [""] + footer


# ------------------------------------------------------------------------------------------------- picture
def _slice_grid(center, half_width_mm: float, pixel_mm: float) -> sitk.Image:
    """A one-voxel-thick axial grid (LPS, identity direction) centred on ``center``."""
    size = round(2 * half_width_mm / pixel_mm) + 1
    grid = sitk.Image([size, size, 1], sitk.sitkFloat32)
    grid.SetSpacing((pixel_mm, pixel_mm, pixel_mm))
    grid.SetOrigin((center[0] - half_width_mm, center[1] - half_width_mm, float(center[2])))
    return grid


def _grid_points(grid: sitk.Image) -> np.ndarray:
    """LPS mm of the pixels of a one-voxel-thick axis-aligned grid, shaped (rows, columns, 3)."""
    rows, columns = np.indices(grid.GetSize()[1::-1], dtype=float)
    spacing, origin = np.asarray(grid.GetSpacing()), np.asarray(grid.GetOrigin())
    return np.stack(
        [origin[0] + columns * spacing[0], origin[1] + rows * spacing[1], np.full_like(rows, origin[2])], -1
    )


def _panel(pair, transform: Transform, grid: sitk.Image, square_mm: float = 8.0):
    """(RGB checkerboard of the MR and the ultrasound-like image mapped through ``transform`` inside the fan,
    the MR gland, the ultrasound gland) on ``grid``, as 2D arrays."""

    def on_grid(image, interpolation, through=None):
        moved = sitk.Resample(image, grid, (through or Transform.identity()).sitk, interpolation, 0.0, sitk.sitkFloat32)
        return sitk.GetArrayFromImage(moved)[0]

    mr = on_grid(pair.fixed, sitk.sitkLinear)
    us = on_grid(pair.moving, sitk.sitkLinear, transform)
    fan = on_grid(pair.moving_mask, sitk.sitkNearestNeighbor, transform) > 0
    # The glands' signed distances (mm, positive inside) from the analytic anatomy: smooth contours at 0.
    points = _grid_points(grid)
    fixed_gland = pair.gland.distance(points)
    moving_gland = pair.gland.distance(pair.fixed_points_of(transform.transform_points(points.reshape(-1, 3))))
    moving_gland = moving_gland.reshape(points.shape[:-1])

    def grey(values, where):
        low, high = np.percentile(values[where], [1, 99]) if where.any() else (0.0, 1.0)
        return np.clip((values - low) / max(high - low, 1e-6), 0, 1)

    mr_grey, us_grey = grey(mr, np.ones_like(fan)), grey(us, fan)
    rows, columns = np.indices(mr.shape)
    pixel = grid.GetSpacing()[0]
    squares = ((rows * pixel // square_mm + columns * pixel // square_mm) % 2).astype(bool)
    shown = np.where(fan & squares, us_grey, mr_grey)
    return np.repeat(shown[..., None], 3, axis=-1), fixed_gland, moving_gland


def save_picture(pair, after: Transform, after_title: str, path: Path, start: Transform | None = None) -> Path:
    """Side by side: the MR with the ultrasound-like image in checkerboard squares (inside its fan) and both gland
    contours (MR cyan, ultrasound orange), at the centre alignment and after ``after``; a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    start = start or centre_alignment(pair.fixed, pair.moving, None, "geometry")
    grid = _slice_grid(pair.gland.center, 38.0, 0.4)
    panels = [(start, "start: image centres aligned"), (after, after_title)]
    figure, axes = plt.subplots(1, 2, figsize=(8.0, 4.25), dpi=100)
    for axis, (transform, title) in zip(axes, panels):
        rgb, fixed_gland, moving_gland = _panel(pair, transform, grid)
        error = np.median(target_errors(pair, transform))
        axis.imshow(rgb, origin="upper", interpolation="nearest")
        axis.contour(fixed_gland, levels=[0.0], colors=["#00e5ff"], linewidths=1.4)
        if (moving_gland > 0).any():
            axis.contour(moving_gland, levels=[0.0], colors=["#ff9500"], linewidths=1.4)
        axis.set_title(f"{title}\nmedian target error {error:.1f} mm", fontsize=10)
        axis.set_axis_off()
    figure.text(0.5, 0.02, "MR / ultrasound-like checkerboard (8 mm squares, inside the fan); gland: MR cyan, "
                "ultrasound orange", ha="center", fontsize=8.5)  # fmt: skip
    figure.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.06, wspace=0.03)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp.png")
    figure.savefig(scratch, dpi=100)
    plt.close(figure)
    Image.open(scratch).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    scratch.unlink()
    return path


# ------------------------------------------------------------------------------------------ weights sweep
def sweep_cases(weights=SWEEP_WEIGHTS) -> list[tuple[str, float, float]]:
    """(guide, segments weight, points weight): each kind alone at each weight, both at every combination."""
    cases = [("segments", w, 0.0) for w in weights] + [("landmarks", 0.0, w) for w in weights]
    return cases + [("both", s, p) for s, p in itertools.product(weights, weights)]


def run_key(r: dict) -> tuple:
    """What identifies one sweep run."""
    return (r["engine"], r["preset"], r["seed"], r.get("sampler_seed"), r["metric"], r["guide"], r["segments_weight"],
            r["points_weight"])  # fmt: skip


def sweep(engines, seeds, presets, metrics, out: Path, cases=None, threads: int = 1, sampler_seed=None) -> None:
    """Every engine x preset x seed x metric x case on the small phantom ultrasound-like pair, one JSON line per
    run appended to ``out`` (runs already there are skipped, so an interrupted sweep resumes). ``seed`` draws the
    pair; ``sampler_seed`` (None: register's default) is the engine's random seed, for repeats."""
    done = {run_key(r) for r in read_records([out])}
    cases = cases or sweep_cases()
    for seed in seeds:
        pair = ultrasound_like_pair(seed=seed)
        centre = float(np.median(target_errors(pair, centre_alignment(pair.fixed, pair.moving, None, "geometry"))))
        floor = best_rigid_floor(pair)["median_mm"]
        for engine, preset, metric, (guide, ws, wp) in itertools.product(engines, presets, metrics, cases):
            key = (engine, preset, seed, sampler_seed, metric, guide, ws, wp)
            if key in done:
                continue
            weights = {engine: {"segments": ws or 1.0, "points": wp or 1.0}}
            options = {} if sampler_seed is None else {"seed": sampler_seed}
            with guidance_weights(weights):
                record = run_guided(pair, engine, preset, guide, metric, threads=threads, **options)
            record.pop("transform", None)
            record.update(
                seed=seed, sampler_seed=sampler_seed, segments_weight=ws, points_weight=wp, centre_median_mm=centre,
                rigid_floor_mm=floor,
                led_by=led_by(engine, guide, metric, ws, wp, len(pair.names)),
            )  # fmt: skip
            with out.open("a") as stream:
                stream.write(json.dumps(record) + "\n")
            shown = record.get("failed") or f"{record['median_mm']:.2f} mm ({record['kept']})"
            print(f"{engine} {preset} seed {seed}/{sampler_seed} {metric} {guide} s{ws:g} p{wp:g}: {shown}, "
                  f"{record['seconds']:.1f} s", flush=True)  # fmt: skip


def worse_than_start(record: dict, tolerance_mm: float = 0.5) -> bool:
    """Whether a run's median target error ends above its start's (the guided start) by more than
    ``tolerance_mm`` (the keep rule's own tolerance in mm, registration/guided_score.py). A failed run is
    counted apart."""
    return "failed" not in record and record["median_mm"] > record["start_median_mm"] + tolerance_mm


def choose_weights(records: list[dict], engine: str, preset: str = "rigid", metrics=("intensity", "segments")):
    """Score every (segments, points) weight pair of ``engine``. The runs a pair decides: segments alone at its
    segments weight, landmarks alone at its points weight and both at the pair, under each metric, every seed:
    six groups. Returns dicts sorted best first: no run worse than its start first, then the lowest mean over
    the groups of the median over seeds of the median target error (mm). Engine failures are counted but do not
    rank: on this pair they come from elastix's sampler (too few samples inside the smaller ultrasound box at
    one draw), and the same runs with other sampler seeds succeed at every weight (see guided_results.md)."""
    chosen = [r for r in records if r["engine"] == engine and r["preset"] == preset and r["metric"] in metrics]
    weights_s = sorted({r["segments_weight"] for r in chosen if r["guide"] == "segments"})
    weights_p = sorted({r["points_weight"] for r in chosen if r["guide"] == "landmarks"})
    rows = []
    for ws, wp in itertools.product(weights_s, weights_p):
        groups = []
        for metric in metrics:
            for guide, wanted in (("segments", (ws, None)), ("landmarks", (None, wp)), ("both", (ws, wp))):
                group = [
                    r for r in chosen if r["guide"] == guide and r["metric"] == metric
                    and wanted[0] in (None, r["segments_weight"]) and wanted[1] in (None, r["points_weight"])
                ]  # fmt: skip
                if group:
                    groups.append(group)
        if len(groups) < 3 * len(metrics):
            continue
        runs = [r for group in groups for r in group]
        medians = [statistics.median(r.get("median_mm", float("inf")) for r in group) for group in groups]
        rows.append({
            "segments": ws, "points": wp, "score_mm": float(np.mean(medians)),
            "worst_mm": max(r.get("median_mm", float("inf")) for r in runs),
            "failed": sum("failed" in r for r in runs), "worse": sum(worse_than_start(r) for r in runs),
            "kept_start": sum(r.get("kept") == "start" for r in runs), "runs": len(runs),
            "seeds": len({r["seed"] for r in runs}),
        })  # fmt: skip
    return sorted(rows, key=lambda row: (row["worse"] > 0, row["score_mm"]))


TIE_MM = 0.05  # scores closer than this are noise: a second sampler seed moved a pair's score by up to 0.057 mm


def pick_weights(ranked: list[dict], tie_mm: float = TIE_MM) -> dict | None:
    """The chosen pair: among the pairs with no run worse than its start, those within ``tie_mm`` of the best
    score are tied; of these, the one whose runs kept their start least often, then failed least, then scored
    best."""
    admissible = [row for row in ranked if row["worse"] == 0]
    if not admissible:
        return None
    best = min(row["score_mm"] for row in admissible)
    tied = [row for row in admissible if row["score_mm"] <= best + tie_mm]
    return min(tied, key=lambda row: (row["kept_start"], row["failed"], row["score_mm"]))


def sweep_summary(records: list[dict], engines=ENGINES) -> list[str]:
    """The sweep as tables: per engine, metric, guide and weight(s), median over seeds of the median target
    error (mm), worst seed, kept start counts; then the weight pairs ranked."""
    lines = []
    for engine in engines:
        mine = [r for r in records if r["engine"] == engine]
        if not mine:
            continue
        for preset in sorted({r["preset"] for r in mine}):
            runs = [r for r in mine if r["preset"] == preset]
            seeds = sorted({r["seed"] for r in runs})
            lines += ["", (f"{engine} {preset}, seeds {seeds}: median over the runs (seeds, and sampler seeds where "
                      "repeated) of the median target error (mm) [worst run], runs that kept the start / ended "
                      "> 0.5 mm worse than it"), ""]  # fmt: skip
            lines += [("| guidance | weights (segments, points) | ANTs stage led by | metric intensity "
                       "| metric segments |"), "|---|---|---|---|---|"]  # fmt: skip
            for guide in GUIDES:
                pairs = sorted({(r["segments_weight"], r["points_weight"]) for r in runs if r["guide"] == guide})
                for ws, wp in pairs:
                    cells = []
                    for metric in ("intensity", "segments"):
                        group = [r for r in runs if r["guide"] == guide and r["metric"] == metric
                                 and (r["segments_weight"], r["points_weight"]) == (ws, wp)]  # fmt: skip
                        if not group:
                            cells.append("-")
                            continue
                        medians = [r.get("median_mm", float("inf")) for r in group]
                        kept = sum(r.get("kept") == "start" for r in group)
                        worse = sum(worse_than_start(r) for r in group)
                        failed = sum("failed" in r for r in group)
                        cell = f"{statistics.median(medians):.2f} [{max(medians):.2f}] {kept}/{worse}"
                        cells.append(cell + (f" ({failed} failed)" if failed else ""))
                    shown = {"segments": f"{ws:g}, -", "landmarks": f"-, {wp:g}", "both": f"{ws:g}, {wp:g}"}[guide]
                    led = {r["led_by"] for r in runs if r["guide"] == guide and r["metric"] == "intensity"
                           and (r["segments_weight"], r["points_weight"]) == (ws, wp)}  # fmt: skip
                    lines.append(
                        f"| {guide} | {shown} | {'/'.join(sorted(led - {''})) or '-'} | {cells[0]} | {cells[1]} |"
                    )
            ranked = choose_weights(records, engine, preset)
            if ranked:
                lines += ["", (f"{engine} {preset}: weight pairs ranked: score = mean over (segments alone, landmarks "
                          "alone, both) x (metric intensity, segments) of the median over seeds of the median target "
                          "error; runs failed / worse than their start by > 0.5 mm / kept the start"), "",
                          "| segments | points | score mm | worst run mm | failed | worse | kept start | runs |",
                          "|---|---|---|---|---|---|---|---|"]  # fmt: skip
                for row in ranked[:8]:
                    lines.append(
                        f"| {row['segments']:g} | {row['points']:g} | {row['score_mm']:.3f} | {row['worst_mm']:.2f} | "
                        f"{row['failed']} | {row['worse']} | {row['kept_start']} | {row['runs']} |"
                    )
                chosen = pick_weights(ranked)
                if chosen:
                    lines += ["", (f"{engine} {preset}: chosen (segments {chosen['segments']:g}, points "
                              f"{chosen['points']:g}): no run worse than its start, within {TIE_MM} mm of the best "
                              "score, fewest runs that kept their start")]  # fmt: skip
    return lines


def read_records(paths) -> list[dict]:
    """The sweep's runs from JSON-lines files, the first of any repeated run only."""
    records, seen = [], set()
    for path in paths:
        if not Path(path).exists():
            continue
        for line in Path(path).read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            key = run_key(r)
            if key not in seen:
                seen.add(key)
                records.append(r)
    return records


def weights_table(engines, full: bool = False) -> list[str]:
    """The default weights against a third and three times them (``full``: and the former default, 1 and 1), on
    the small ultrasound-like pair (rigid, segments + landmarks, metric intensity, seeds 0-2; ``full``: 0-5):
    median over seeds of the median target error, runs that kept the start or failed."""
    seeds = range(6) if full else range(3)
    lines = [
        (
            f"Guidance weights (Resources/Presets/guidance.json) on the small phantom ultrasound-like pair, seeds "
            f"{list(seeds)}, rigid, gland + urethra + 6 landmarks, metric intensity: median over the seeds of the "
            "median target error (mm) [worst seed]; runs that kept their start; runs that failed."
        ),
        "",
        "| engine | weights (segments, points) | median mm [worst] | kept start | failed | ANTs stage led by |",
        "|---|---|---|---|---|---|",
    ]
    pairs = {seed: ultrasound_like_pair(seed=seed) for seed in seeds}
    for engine in engines:
        default = guidance_defaults(engine)
        settings = [(default["segments"] * f, default["points"] * f, f == 1.0) for f in (1.0, 1 / 3, 3.0)]
        if full and (default["segments"], default["points"]) != (1.0, 1.0):
            settings.append((1.0, 1.0, False))
        for ws, wp, is_default in settings:
            records = []
            with guidance_weights({engine: {"segments": ws, "points": wp}}):
                for pair in pairs.values():
                    records.append(run_guided(pair, engine, "rigid", "both"))
            medians = [r.get("median_mm", float("inf")) for r in records]
            label = f"{ws:.3g}, {wp:.3g}" + (" (default)" if is_default else "")
            lines.append(
                f"| {engine} | {label} | {statistics.median(medians):.2f} [{max(medians):.2f}] | "
                f"{sum(r.get('kept') == 'start' for r in records)} | {sum('failed' in r for r in records)} | "
                f"{led_by(engine, 'both', 'intensity', ws, wp, 2) or '-'} |"
            )
            print(f"  (weights {engine} {label} done)", file=sys.stderr, flush=True)
    return lines


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
    stored = [OUT / f"sweep_{engine}.jsonl" for engine in engines]
    if "weights" in parts and any(path.exists() for path in stored):
        records = read_records(stored)
        print("\nThe last full sweep (bench_guided.py --sweep, stored in bench-output/guided/): best weight pairs")
        for engine in engines:
            ranked = choose_weights(records, engine)
            chosen = pick_weights(ranked)
            if chosen:
                print(
                    f"- {engine}: chosen (segments {chosen['segments']:g}, points {chosen['points']:g}), score "
                    f"{chosen['score_mm']:.3f} mm, {chosen['kept_start']} of {chosen['runs']} runs kept their start"
                )
            if ranked:
                best = ", ".join(
                    f"({row['segments']:g}, {row['points']:g}): {row['score_mm']:.3f} mm, "
                    f"{row['worse']} worse, {row['failed']} failed"
                    for row in ranked[:3]
                )
                print(f"  lowest scores: {best}")
    print(f"\nbench_guided.py: {time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
