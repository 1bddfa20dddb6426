"""Table 1 of bench_guided.py: MR -> ultrasound-like, target error (mm) of unguided and guided registrations
against exact truth, with and without a fixed region of interest."""

from __future__ import annotations

import re
import sys
import time

import bench_paths  # noqa: F401 (first: the library and the test-data makers on sys.path)
import SimpleITK as sitk
from guided_common import best_rigid_floor, error_stats, run_guided, target_errors
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment
from ultrasound_like import BENCH_ULTRASOUND, ultrasound_like_pair
from ultrasound_model import mni_source

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
    it does, registration/rules/sampling_region.sampling_regions, no row fails here)."""
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
