"""``mmreg batch MANIFEST.csv --output-dir DIR``: a cohort in warm workers, with resume and triage.

Exit code 0 when every case registered, 1 when any failed (each failure is in ``batch.csv``), 2 when
the manifest itself is wrong.
"""

from __future__ import annotations

import argparse
import sys
import threading

from ..core import command_line
from ..core.choices import DEFAULT_INIT, DEFAULT_PRESET, INIT_METHODS
from ..core.errors import EXIT_ENGINE, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, Terminated
from ..engines.registry import ENGINE_NAMES

# The manifest's optional columns as process.manifest.COLUMNS lists them (not imported: --help would load the
# engines' libraries); test_batch checks the two agree.
OPTIONAL_COLUMNS = ("fixed_mask", "moving_mask", "initial_transform", "fixed_points", "moving_points", "engine",
                    "preset", "init", "fixed_segmentation", "moving_segmentation", "segments",
                    "guidance_fixed_points", "guidance_moving_points", "guidance_weight", "metric")  # fmt: skip


def add_batch_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``batch`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    parser = subparsers.add_parser(
        "batch", help="register every case of a CSV manifest (case,fixed,moving,...) with QA and triage; resumable"
    )
    parser.add_argument(
        "manifest",
        help=f"CSV: case,fixed,moving[,{','.join(OPTIONAL_COLUMNS)}]; paths relative to it; "
        "docs/cohorts.md says what each column takes",
    )
    parser.add_argument("--output-dir", required=True, help="one folder per case, batch.csv and report.html")
    parser.add_argument("--engine", choices=ENGINE_NAMES, help="default engine for rows that name none")
    parser.add_argument("--preset", help=f"default preset (default {DEFAULT_PRESET})")
    parser.add_argument("--init", choices=INIT_METHODS, help=f"default start (default {DEFAULT_INIT})")
    parser.add_argument("--seed", type=int, help="random seed for every case (default: fixed)")
    parser.add_argument("--workers", type=int, help="warm local workers (default: one per two cores)")
    parser.add_argument(
        "--threads",
        type=int,
        help="engine threads per worker (default: the cores shared among the workers; 1 on Dask "
        "and for ANTs, which repeats a result only with 1)",
    )
    parser.add_argument("--timeout", type=float, metavar="S", help="stop a case after S seconds")
    parser.add_argument("--stability", type=int, default=0, metavar="K", help="K perturbed restarts per case (QA)")
    parser.add_argument("--output-volume", action="store_true", help="also write each resampled moving image")
    parser.add_argument("--dask", metavar="ADDRESS", help="run on a dask.distributed scheduler, or local:N workers")
    parser.set_defaults(handler=command_batch)
    return parser


class CohortProgress:
    """The cohort's progress. On a terminal (standard output a tty): one live bar on ``stream`` naming the
    cases running, with the counts of failed and check cases and an ETA. Otherwise (a pipe, a cluster's log
    file): one line per finished case on standard output, ``[3/40] case07: check (12.3 s)``, flushed at once.
    The verdict words are the CSV's and the report's: ok, check, failed."""

    def __init__(self, total: int, stream=sys.stderr, lines="auto"):
        """``lines``: where the per-case lines go, None for the bar; "auto": standard output unless it is a tty (or
        tqdm is missing, as in Slicer's Python)."""
        from .bars import has_bars, progress_bar

        self.total, self.done = total, 0
        self.lines = (None if sys.stdout.isatty() and has_bars() else sys.stdout) if lines == "auto" else lines
        self.counts = {"failed": 0, "check": 0}
        self.running: list[str] = []
        self.lock = threading.Lock()
        self.bar = progress_bar(total=total, unit="case", file=stream, disable=self.lines is not None,
                                dynamic_ncols=True)  # fmt: skip

    def started(self, case: str) -> None:
        """A worker began ``case``: the bar names it."""
        with self.lock:
            self.running.append(case)
            self._describe()

    def __call__(self, record) -> None:
        verdict = "failed" if record.status == "failed" else (record.verdict.verdict if record.verdict else "ok")
        with self.lock:
            self.done += 1
            if verdict in self.counts:
                self.counts[verdict] += 1
            if record.case in self.running:
                self.running.remove(record.case)
            if self.lines is not None:
                seconds = f"{record.seconds:.1f} s" if record.seconds is not None else "done before"
                self.lines.write(f"[{self.done}/{self.total}] {record.case}: {verdict} ({seconds})\n")
                self.lines.flush()
            self._describe()
            self.bar.set_postfix(self.counts, refresh=False)
            self.bar.update(1)

    def _describe(self) -> None:
        names = ", ".join(self.running[:3]) + (f" +{len(self.running) - 3}" if len(self.running) > 3 else "")
        self.bar.set_description_str(names, refresh=False)

    def close(self) -> None:
        self.bar.close()


def _stopped(stop: BaseException, done: int, total: int, arguments: argparse.Namespace):
    """What an interrupted batch says: the cases that ended are kept, and the same command resumes."""
    from ..process.worker import WorkerFailure

    interrupted = isinstance(stop, KeyboardInterrupt)
    message = (
        f"{'interrupted' if interrupted else 'terminated'} after {done} of {total} cases: each case that ended is "
        f"kept in {arguments.output_dir} (with its case.json); the running ones were stopped (a case run again "
        "keeps its earlier result, the others are recorded as cancelled) and batch.csv and report.html were not "
        "written: run the same command again to resume"
    )
    return WorkerFailure("cancelled", message, exit_code=EXIT_INTERRUPTED if interrupted else EXIT_TERMINATED)


def cohort_note(verdicts: dict[str, dict]) -> str | None:
    """The cases the cohort's rules flagged after their own verdicts, which the progress lines gave (a helper's
    sweep: "guided: ok" printed, "check" in batch.csv); None when there are none."""
    from ..qa.cohort_triage import LOW_FOR_COHORT

    flagged = sorted(case for case, verdict in verdicts.items()
                     if any(LOW_FOR_COHORT in reason for reason in verdict.get("reasons", [])))  # fmt: skip
    if not flagged:
        return None
    return (f"the cohort's rules flagged {', '.join(flagged)} after their own verdicts (a metric far below the other "
            "cases'): see batch.csv")


def command_batch(arguments: argparse.Namespace) -> int:
    """Run the cohort; the command line as typed (``arguments.argv``) heads the report."""
    from ..process.batch import run_batch
    from ..process.manifest import check_batch_options, read_manifest
    from ..qa.cohort_report import counts_line

    options = {"engine": arguments.engine, "preset": arguments.preset, "init": arguments.init,
               "seed": arguments.seed, "threads": arguments.threads, "stability": arguments.stability or None,
               "output_volume": arguments.output_volume}  # fmt: skip
    defaults = {key: value for key, value in options.items() if value is not None}
    check_batch_options(dict(defaults, stability=arguments.stability), arguments.workers, arguments.timeout,
                        local=not arguments.dask)  # fmt: skip
    total = len(read_manifest(arguments.manifest, arguments.output_dir, defaults))  # refuses a bad manifest at once
    progress = CohortProgress(total)
    command = command_line.join(["mmreg", *getattr(arguments, "argv", sys.argv[1:])])
    try:
        result = run_batch(arguments.manifest, arguments.output_dir, defaults, workers=arguments.workers,
                           timeout_s=arguments.timeout, dask=arguments.dask, on_case=progress,
                           on_start=progress.started, command=command)  # fmt: skip
    except (KeyboardInterrupt, Terminated) as stop:
        raise _stopped(stop, progress.done, total, arguments) from None
    finally:
        progress.close()
    verdicts = [verdict["verdict"] for verdict in result.verdicts.values()]
    counts = {word: verdicts.count(word) for word in ("failed", "check", "ok")}
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(result.records)} case{'' if len(result.records) == 1 else 's'}: {counts_line(counts)} ({len(result.skipped)} done before, skipped)")
    if note := cohort_note(result.verdicts):
        print(note)
    for name, path in result.outputs.items():
        print(f"wrote {name}: {path}")
    # A case triage calls failed (do not use it) fails the batch as a run that failed does: the line above says so.
    return EXIT_ENGINE if result.failed or counts["failed"] else EXIT_OK
