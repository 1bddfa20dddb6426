"""Issue 22 baselines on the hard TRUS cohort (Testing/Python/trus_data.py) with today's library, read-only.

Rows (guidance = the gland segmentations only, as the issue's real table): image centres, gland centroids
(translation only), the best rigid fit to the truth at the landmarks (a floor no rigid result beats),
elastix rigid guided (default: metric intensity), elastix --metric segments, ANTs rigid guided, elastix
deformable guided, ANTs deformable guided. Each row is the library's ``register()`` as ``mmreg register
--fixed-segmentation --moving-segmentation`` calls it (init auto, default weights and seed).

Usage: python baselines.py [--seeds 100-123] [--methods a,b] [--out file.jsonl] [--table]
Records are appended to bench-output/proto_guided/baselines.jsonl; a (seed, method) already there is skipped.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
from common import OUT, Clock, append, centroid_alignment, image_centres, read, record, summarise, table
from MultimodalRegistrationLib.core.errors import EngineError, InputError
from MultimodalRegistrationLib.core.rotations import orthogonal_fit, rotation_angle_deg
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.register import register
from trus_data import COHORT_SEEDS, trus_pair

GUIDED = {
    "elastix rigid guided": ("elastix", "rigid", "intensity"),
    "elastix rigid guided --metric segments": ("elastix", "rigid", "segments"),
    "ANTs rigid guided": ("ants", "rigid", "intensity"),
    "elastix deformable guided": ("elastix", "deformable", "intensity"),
    "ANTs deformable guided": ("ants", "deformable", "intensity"),
}
SIMPLE = ("image centres", "gland centroids", "best rigid (oracle)")


def oracle_rigid(pair) -> Transform:
    """The rigid transform closest to the truth at the pair's 40 targets and its landmarks (least squares)."""
    fixed = np.concatenate([pair.targets_fixed, pair.landmarks_fixed_true])
    moving = np.concatenate([pair.targets_moving, pair.landmarks_moving_true])
    return Transform.from_matrix(orthogonal_fit(fixed, moving, scale=False))


def rotation_from(transform: Transform, reference: Transform) -> float | None:
    if not (transform.is_linear and reference.is_linear):
        return None
    return round(float(rotation_angle_deg(transform.matrix[:3, :3].T @ reference.matrix[:3, :3])), 1)


def run_simple(pair, method: str) -> dict:
    with Clock() as clock:
        transform = {"image centres": image_centres, "best rigid (oracle)": oracle_rigid}.get(
            method, lambda p: centroid_alignment(p.fixed_labels, p.moving_labels)
        )(pair)
    return record(pair, method, transform, clock.wall, clock.cpu, rotation_error_deg=rotation_from(transform, oracle_rigid(pair)))


def run_register(pair, method: str, points: bool = False) -> dict:
    engine, preset, metric = GUIDED[method]
    guidance = Guidance(
        fixed_segmentation=pair.fixed_labels,
        moving_segmentation=pair.moving_labels,
        fixed_points_lps=pair.landmarks_fixed if points else None,
        moving_points_lps=pair.landmarks_moving if points else None,
        metric=metric,
    )
    with Clock() as clock:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = register(pair.fixed, pair.moving, engine=engine, preset=preset, guidance=guidance)
        except (EngineError, InputError) as error:
            return record(pair, method, None, clock.wall if hasattr(clock, "wall") else 0.0, failed=str(error)[:300])
    provenance = result.provenance
    start = Transform.from_matrix(np.asarray(provenance.start_matrix_lps))
    oracle = oracle_rigid(pair)
    return record(
        pair, method, result.transform, clock.wall, clock.cpu,
        start=provenance.start, kept=provenance.kept, warnings=result.warnings,
        start_candidates=(provenance.guidance or {}).get("start_candidates"),
        start_rotation_from_prior_deg=rotation_from(start, Transform.identity()),
        start_rotation_error_deg=rotation_from(start, oracle),
        start_tre_mean_mm=round(float(pair.tre(start).mean()), 2),
        rotation_error_deg=rotation_from(result.transform, oracle),
    )  # fmt: skip


def parse_seeds(text: str | None) -> list[int]:
    if not text:
        return list(COHORT_SEEDS)
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += list(range(int(low), int(high or low) + 1))
    return seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds")
    parser.add_argument("--methods", default=",".join(SIMPLE + tuple(GUIDED)))
    parser.add_argument("--out", default=str(OUT / "baselines.jsonl"))
    parser.add_argument("--table", action="store_true", help="print the table of the stored records only")
    args = parser.parse_args()
    if not args.table:
        done = {(r["seed"], r["method"]) for r in read(args.out)}
        methods = [m for m in args.methods.split(",") if m]
        for seed in parse_seeds(args.seeds):
            todo = [m for m in methods if (seed, m) not in done]
            if not todo:
                continue
            pair = trus_pair(seed)
            for method in todo:
                entry = run_simple(pair, method) if method in SIMPLE else run_register(pair, method)
                append(args.out, entry)
                shown = f"{np.mean(entry['tre_mm']):.1f} mm" if "tre_mm" in entry else entry.get("failed", "")[:80]
                print(f"seed {seed} {method}: {shown} ({entry['wall_s']:.1f} s, CPU {entry['cpu_s']:.1f} s) "
                      f"{entry.get('start', '')}", file=sys.stderr, flush=True)  # fmt: skip
    print(table(summarise(read(args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
