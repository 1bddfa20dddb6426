"""Shared helpers of the issue-22 prototypes: paths, the hard cohort, simple starts and the statistics of a
method over a cohort (median TRE over all landmarks, share < 5 mm, worst pair, pairs worse than centroids).

Prototype code: imports the library read-only; nothing here is part of it.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "MultimodalRegistration"))
sys.path.insert(0, str(ROOT / "Testing" / "Python"))

from MultimodalRegistrationLib.core.images import index_to_physical_matrix  # noqa: E402
from MultimodalRegistrationLib.core.transforms import Transform  # noqa: E402
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment  # noqa: E402

OUT = ROOT / "bench-output" / "proto_guided"
# A pair counts as worse than the centroid alignment when its mean landmark error is this much larger (mm):
# about half a voxel, so that equal results (a fallback to the centroids) never count.
WORSE_MM = 1.0


def mask_points(mask: sitk.Image) -> np.ndarray:
    indices = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)[:, ::-1].astype(float)
    matrix = index_to_physical_matrix(mask)
    return indices @ matrix[:3, :3].T + matrix[:3, 3]


def translation(shift) -> Transform:
    matrix = np.eye(4)
    matrix[:3, 3] = shift
    return Transform.from_matrix(matrix)


def centroid_alignment(fixed_labels: sitk.Image, moving_labels: sitk.Image) -> Transform:
    """The translation bringing the fixed gland's centroid onto the moving one's (identity rotation)."""
    return translation(mask_points(moving_labels).mean(axis=0) - mask_points(fixed_labels).mean(axis=0))


def image_centres(pair) -> Transform:
    return centre_alignment(pair.fixed, pair.moving, None, "geometry")


class Clock:
    """Wall and CPU seconds (this process and its children) of a block."""

    def __enter__(self):
        self.wall = time.perf_counter()
        self.cpu = _cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = _cpu() - self.cpu


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def record(pair, method: str, transform: Transform | None, wall: float = 0.0, cpu: float = 0.0, **extra) -> dict:
    """One method's result on one pair, as a JSON-ready dict."""
    out = {"seed": pair.seed, "method": method, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
    if transform is None:
        out["failed"] = extra.pop("failed", "failed")
    else:
        out["tre_mm"] = [round(float(v), 3) for v in pair.tre(transform)]
        out["clicked_mm"] = [round(float(v), 3) for v in pair.clicked_error(transform)]
        out["targets_median_mm"] = round(float(np.median(pair.target_error(transform))), 3)
    out.update(extra)
    return out


def append(path: Path, entry: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def read(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def summarise(records: list[dict], reference: str = "gland centroids") -> list[dict]:
    """Per method: median TRE over all landmarks, share < 5 mm, worst pair (its mean TRE), pairs worse than
    ``reference`` by more than WORSE_MM (mean TRE per pair), failures, median s per pair (wall, CPU)."""
    by_method: dict[str, dict[int, dict]] = {}
    for r in records:
        by_method.setdefault(r["method"], {})[r["seed"]] = r
    ref = by_method.get(reference, {})
    rows = []
    for method, runs in by_method.items():
        ok = [r for r in runs.values() if "tre_mm" in r]
        errors = np.concatenate([r["tre_mm"] for r in ok]) if ok else np.array([np.nan])
        clicked = np.concatenate([r["clicked_mm"] for r in ok]) if ok else np.array([np.nan])
        means = {r["seed"]: float(np.mean(r["tre_mm"])) for r in ok}
        worst = max(means.items(), key=lambda item: item[1]) if means else (None, np.nan)
        worse = [s for s, m in means.items() if s in ref and "tre_mm" in ref[s] and m > np.mean(ref[s]["tre_mm"]) + WORSE_MM]
        rows.append({
            "method": method, "pairs": len(runs), "failed": len(runs) - len(ok),
            "median_mm": float(np.median(errors)), "within_5mm": float(np.mean(errors < 5.0)),
            "clicked_median_mm": float(np.median(clicked)),
            "worst_pair": worst[0], "worst_mean_mm": worst[1], "worse_than_ref": sorted(worse),
            "wall_s": statistics.median([r["wall_s"] for r in runs.values()]),
            "cpu_s": statistics.median([r["cpu_s"] for r in runs.values()]),
        })  # fmt: skip
    return rows


def table(rows: list[dict], reference: str = "gland centroids") -> str:
    lines = [
        f"| method | pairs | median TRE mm | < 5 mm | clicked median mm | worst pair (mean mm) | worse than {reference} "
        "by > 1 mm | s/pair wall | s/pair CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        lines.append(
            f"| {r['method']} | {r['pairs']}{failed} | {r['median_mm']:.2f} | {100 * r['within_5mm']:.0f}% | "
            f"{r['clicked_median_mm']:.2f} | {r['worst_pair']} ({r['worst_mean_mm']:.1f}) | "
            f"{len(r['worse_than_ref'])} {r['worse_than_ref'] if r['worse_than_ref'] else ''} | "
            f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} |"
        )
    return "\n".join(lines)


def threads() -> int:
    return int(os.environ.get("PROTO_THREADS", "1"))
