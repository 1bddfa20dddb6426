"""Where the guided start's error on the hard MR -> TRUS cohort comes from (issue 22), against the truth.

Per pair (Testing/Python/trus_data.py): the target registration error (TRE, mean over the true landmarks, mm) of
the segment centroids, the guided start (registration/guided/start.py), the best rigid map fitted to the truth
(40 points through the gland), the start's rotation with the true translation, the true rotation with the
centroids' translation; the start's rotation error (degrees) and translation error at the fixed gland centroid
along the gland's own axes (LR, AP, SI; mm); the SI shift that the two segmentations' different apex and base
extents predict; how the start's scores (surface distance, mutual information near the gland; SDs of their
paired bootstrap, start_score.paired_z) judge the true rotation against the start; which surface scores (mean,
trimmed, without the probe side or the apex/base caps) prefer it; and robust (Cauchy, 1.5 mm) rigid fits of the
fixed surface to the moving distance map from the start (6 degrees of freedom, translation only).

Usage: python Testing/Benchmarks/diagnose_guided_hard.py [--seeds 100-123] [--out FILE]; --summary FILE... prints
the table of stored records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bench_paths  # first: the library and the test-data makers on sys.path
import numpy as np
from bench_guided_hard import parse_seeds
from MultimodalRegistrationLib.core.rotations import axis_angle_matrices, orthogonal_fit, rotation_angle_deg
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.guided.start import guided_start, pose_about
from MultimodalRegistrationLib.registration.guided.start_score import StartScorer, paired_z
from MultimodalRegistrationLib.registration.guided.surfaces import apply
from MultimodalRegistrationLib.registration.guided.views import mask_points
from scipy.optimize import least_squares
from trus_data import POSTERIOR, gland_guidance, trus_pair

ROBUST_SCALE_MM = 1.5


def robust_fit(start: np.ndarray, scorer: StartScorer, translation_only: bool) -> np.ndarray:
    """Cauchy-loss fit of the kept fixed surface points to the moving segment's signed distance (mm)."""
    points, moving = scorer.points[0], scorer.moving_surfaces[0]
    centre = points.mean(axis=0)

    def pose(p: np.ndarray) -> np.ndarray:
        rotation = np.eye(3) if translation_only else axis_angle_matrices(p[None, :3])[0]
        step = pose_about(rotation, centre, centre + p[-3:])
        return start @ step

    def residuals(p: np.ndarray) -> np.ndarray:
        value = moving.distance(apply(pose(p), points))
        return np.where(np.isnan(value), 20.0, value)

    size = 3 if translation_only else 6
    scale = np.ones(size) if translation_only else np.array([0.02] * 3 + [1.0] * 3)
    solution = least_squares(residuals, np.zeros(size), loss="cauchy", f_scale=ROBUST_SCALE_MM, x_scale=scale,
                             diff_step=1e-3)  # fmt: skip
    return pose(solution.x)


def surface_scores(pose: np.ndarray, scorer: StartScorer, centre: np.ndarray) -> dict[str, float]:
    """Mean |distance| (mm) of the fixed surface points under ``pose``: all, the best half, without the
    probe side (outward direction within 60 degrees of posterior), without the apex/base caps (within 45
    degrees of superior-inferior)."""
    points = scorer.points[0]
    residual = scorer.moving_surfaces[0].residuals(apply(pose, points))
    direction = (points - centre) / np.linalg.norm(points - centre, axis=1, keepdims=True)
    return {"all": float(residual.mean()), "best half": float(np.sort(residual)[: len(residual) // 2].mean()),
            "no probe side": float(residual[direction @ POSTERIOR < 0.5].mean()),
            "no caps": float(residual[np.abs(direction[:, 2]) < np.cos(np.pi / 4)].mean())}  # fmt: skip


def diagnose(seed: int) -> dict:
    pair = trus_pair(seed)
    prepared = gland_guidance(pair)
    start = guided_start(prepared, None, pair.fixed, pair.moving)
    best = orthogonal_fit(pair.targets_fixed, pair.targets_moving, scale=False)
    fixed_centre = mask_points(prepared.fixed_masks[0]).mean(axis=0)
    moving_centre = mask_points(prepared.moving_masks[0]).mean(axis=0)
    centroids = pose_about(np.eye(3), fixed_centre, moving_centre)
    true_rotation = pose_about(best[:3, :3], fixed_centre, moving_centre)
    true_translation = start.transform.matrix.copy()
    true_translation[:3, 3] = apply(best, fixed_centre[None])[0] - true_translation[:3, :3] @ fixed_centre
    scorer = StartScorer(prepared, pair.fixed, pair.moving, 0)
    poses = {"segment centroids": centroids, "guided start": start.transform.matrix, "best rigid (truth)": best,
             "start rotation, true translation": true_translation, "true rotation, centroids": true_rotation,
             "robust surface fit": robust_fit(start.transform.matrix, scorer, False),
             "robust surface fit, translation": robust_fit(start.transform.matrix, scorer, True)}  # fmt: skip
    offset = apply(start.transform.matrix, fixed_centre[None])[0] - apply(best, fixed_centre[None])[0]
    z_surface, z_mi, z_together = paired_z(scorer, start.transform.matrix, true_rotation)
    ends = {role: pair.params[f"segment_{role}"] for role in ("fixed", "moving")}
    at_start = surface_scores(start.transform.matrix, scorer, fixed_centre)
    at_truth = surface_scores(true_rotation, scorer, fixed_centre)
    return {
        "seed": seed, "start": start.name,
        "tre_mm": {name: round(float(pair.tre(Transform.from_matrix(pose)).mean()), 3) for name, pose in poses.items()},
        "rotation_error_deg": {name: round(float(rotation_angle_deg(pose[:3, :3] @ best[:3, :3].T)), 2)
                               for name, pose in poses.items()},
        "start_offset_gland_axes_mm": np.round(pair.gland.axes.T @ offset, 2).tolist(),
        "si_shift_from_segment_ends_mm": round(((ends["fixed"]["base_mm"] - ends["fixed"]["apex_mm"])
                                                - (ends["moving"]["base_mm"] - ends["moving"]["apex_mm"])) / 2, 2),
        "true_rotation_vs_start_z": {"surface": round(z_surface, 2), "mi": None if z_mi is None else round(z_mi, 2),
                                     "together": round(z_together, 2)},
        "true_rotation_minus_start_surface_mm": {k: round(at_truth[k] - at_start[k], 4) for k in at_start},
    }  # fmt: skip


def summary(records: list[dict]) -> str:
    records = sorted(records, key=lambda r: r["seed"])
    names = list(records[0]["tre_mm"])
    lines = ["| pose | median of pair means (TRE mm) | mean | median rotation error (deg) |", "|---|---|---|---|"]
    for name in names:
        means = [r["tre_mm"][name] for r in records]
        rotation = np.median([r["rotation_error_deg"][name] for r in records])
        lines.append(f"| {name} | {np.median(means):.2f} | {np.mean(means):.2f} | {rotation:.1f} |")
    offsets = np.array([r["start_offset_gland_axes_mm"] for r in records])
    predicted = np.array([r["si_shift_from_segment_ends_mm"] for r in records])
    slope, intercept = np.polyfit(predicted, offsets[:, 2], 1)
    residual = offsets[:, 2] - (slope * predicted + intercept)
    kept_prior = sum(r["start"] == "segment centroids" for r in records)
    lines += ["", f"pairs: {len(records)}; start kept the prior rotation on {kept_prior}",
              "start translation error at the gland centroid, RMS (LR, AP, SI) mm: "
              + ", ".join(f"{v:.2f}" for v in np.sqrt((offsets**2).mean(axis=0))),
              (f"SI error against the segment-ends shift: r = {np.corrcoef(predicted, offsets[:, 2])[0, 1]:.2f}, "
               f"slope {slope:.2f}, RMS left {np.sqrt((residual**2).mean()):.2f} mm")]  # fmt: skip
    for key in ("surface", "mi", "together"):
        values = [r["true_rotation_vs_start_z"][key] for r in records if r["true_rotation_vs_start_z"][key] is not None]
        lines.append(f"true rotation vs start, {key}: better on {sum(v > 0 for v in values)}/{len(values)}, "
                     f"beyond 2 SD on {sum(v > 2 for v in values)}, median {np.median(values):+.2f} SD")  # fmt: skip
    for key in records[0]["true_rotation_minus_start_surface_mm"]:
        values = [r["true_rotation_minus_start_surface_mm"][key] for r in records]
        lines.append(f"surface score '{key}' lower at the true rotation than at the start: "
                     f"{sum(v < 0 for v in values)}/{len(values)}")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds")
    parser.add_argument("--out", default=str(bench_paths.ROOT / "bench-output" / "guided_hard" / "diagnosis.jsonl"))
    parser.add_argument("--summary", nargs="*", help="print the table of these record files and stop")
    args = parser.parse_args()
    if args.summary:
        records = [json.loads(line) for name in args.summary for line in Path(name).read_text().splitlines() if line]
        print(summary(records))
        return 0
    records = []
    for seed in parse_seeds(args.seeds):
        records.append(diagnose(seed))
        with open(args.out, "a") as handle:
            handle.write(json.dumps(records[-1]) + "\n")
        print(f"seed {seed}: {records[-1]['tre_mm']}", file=sys.stderr, flush=True)
    print(summary(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
