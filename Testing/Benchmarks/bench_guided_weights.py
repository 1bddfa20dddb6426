"""Table 4 of bench_guided.py: the default guidance weights against a third and three times them, and the
weight pairs the last stored sweep (bench_guided.py --sweep) chose."""

from __future__ import annotations

import statistics
import sys

import bench_paths  # noqa: F401 (first: the library and the test-data makers on sys.path)
from guided_common import OUT, run_guided
from guided_weights import choose_weights, guidance_weights, led_by, pick_weights, read_records
from MultimodalRegistrationLib.engines.presets import guidance_defaults
from ultrasound_like import ultrasound_like_pair


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


def print_last_sweep(engines) -> None:
    """The best weight pairs of the sweep stored in bench-output/guided/ (nothing when none is stored)."""
    stored = [OUT / f"sweep_{engine}.jsonl" for engine in engines]
    if not any(path.exists() for path in stored):
        return
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
