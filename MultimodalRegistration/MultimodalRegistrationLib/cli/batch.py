"""``mmreg batch MANIFEST.csv --output-dir DIR``: a cohort in warm workers, with resume and triage.

Exit code 0 when every case registered, 1 when any failed (each failure is in ``batch.csv``), 2 when
the manifest itself is wrong.
"""

from __future__ import annotations

import argparse
import sys

from ..core.choices import DEFAULT_INIT, DEFAULT_PRESET, INIT_METHODS
from ..core.errors import EXIT_ENGINE, EXIT_OK
from ..engines.registry import ENGINE_NAMES


def add_batch_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``batch`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    parser = subparsers.add_parser(
        "batch", help="register every case of a CSV manifest (case,fixed,moving,...) with QA and triage; resumable"
    )
    parser.add_argument(
        "manifest",
        help="CSV: case,fixed,moving[,fixed_mask,moving_mask,initial_transform,fixed_points,moving_points,"
        "engine,preset,init]; paths relative to it",
    )
    parser.add_argument("--output-dir", required=True, help="one folder per case, batch.csv and report.html")
    parser.add_argument("--engine", choices=ENGINE_NAMES, help="default engine for rows that name none")
    parser.add_argument("--preset", help=f"default preset (default {DEFAULT_PRESET})")
    parser.add_argument("--init", choices=INIT_METHODS, help=f"default start (default {DEFAULT_INIT})")
    parser.add_argument("--seed", type=int, help="random seed for every case (default: fixed)")
    parser.add_argument("--workers", type=int, help="warm local workers (default: one per two cores)")
    parser.add_argument(
        "--threads", type=int, help="engine threads per worker (default: the cores shared among the workers; 1 on Dask)"
    )
    parser.add_argument("--timeout", type=float, metavar="S", help="stop a case after S seconds")
    parser.add_argument("--stability", type=int, default=0, metavar="K", help="K perturbed restarts per case (QA)")
    parser.add_argument("--output-volume", action="store_true", help="also write each resampled moving image")
    parser.add_argument("--dask", metavar="ADDRESS", help="run on a dask.distributed scheduler, or local:N workers")
    parser.set_defaults(handler=command_batch)
    return parser


class CohortProgress:
    """One live line for the cohort (cases done, failed, flagged, ETA); quiet when not on a terminal."""

    def __init__(self, total: int, stream=sys.stderr):
        from tqdm import tqdm

        self.counts = {"failed": 0, "flagged": 0}
        self.bar = tqdm(total=total, unit="case", file=stream, disable=not stream.isatty(), dynamic_ncols=True)

    def __call__(self, record) -> None:
        verdict = (record.verdict or {}).get("verdict")
        self.counts["failed"] += record.status == "failed"
        self.counts["flagged"] += record.status == "ok" and verdict != "ok"
        self.bar.set_postfix(self.counts, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def command_batch(arguments: argparse.Namespace) -> int:
    from ..process.batch import run_batch
    from ..process.manifest import read_manifest

    options = {"engine": arguments.engine, "preset": arguments.preset, "init": arguments.init,
               "seed": arguments.seed, "threads": arguments.threads, "stability": arguments.stability or None,
               "output_volume": arguments.output_volume}  # fmt: skip
    defaults = {key: value for key, value in options.items() if value is not None}
    total = len(read_manifest(arguments.manifest, arguments.output_dir, defaults))  # refuses a bad manifest at once
    progress = CohortProgress(total)
    try:
        result = run_batch(arguments.manifest, arguments.output_dir, defaults, workers=arguments.workers,
                           timeout_s=arguments.timeout, dask=arguments.dask, on_case=progress)  # fmt: skip
    finally:
        progress.close()
    verdicts = [verdict["verdict"] for verdict in result.verdicts.values()]
    print(
        f"{len(result.records)} cases: {verdicts.count('ok')} ok, {verdicts.count('check')} to check, "
        f"{verdicts.count('failed')} failed ({len(result.skipped)} done before, skipped)"
    )
    for name, path in result.outputs.items():
        print(f"wrote {name}: {path}")
    return EXIT_ENGINE if result.failed else EXIT_OK
