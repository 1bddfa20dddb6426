"""The guidance weights (Resources/Presets/guidance.json): running with other weights, the sweep that chose
them, and the chooser (choose_weights ranks the weight pairs, pick_weights picks one); see guided_results.md."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
import tempfile
from pathlib import Path

import bench_paths  # noqa: F401 (first: the library and the test-data makers on sys.path)
import numpy as np
from guided_common import ROOT, best_rigid_floor, run_guided, target_errors
from MultimodalRegistrationLib.engines.ants import intensity_leads
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment
from ultrasound_like import ultrasound_like_pair

PRESETS = ROOT / "Resources" / "Presets"
ENGINES = ("elastix", "ants")
GUIDES = ("segments", "landmarks", "both")
SWEEP_WEIGHTS = (0.3, 1.0, 3.0, 10.0)


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
    ``tolerance_mm`` (the keep rule's own tolerance in mm, registration/guided/score.py). A failed run is
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
