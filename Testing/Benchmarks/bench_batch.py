"""Cohorts: `mmreg batch` against a shell loop of `mmreg register`, one table (issue 12's benchmark).

Cohort: ``--cases`` rigid phantom pairs (default 20) at 256 x 256 x 180, 1 mm (CT fixed, MR moving,
core.phantom.make_phantom_pair), each at its own pose (rotations spread from 10 to 180 degrees, shifts up
to 25 mm: Testing/Python/cohort_data.poses), written once with their manifest into bench-output/cohort/.

Rows, each on the same cases, into its own folder under bench-output/cohort-runs/ (emptied first, so
that the batch's resume skips nothing), all with the commands' default options (elastix, rigid, init
auto, which includes the any-pose search):

* a shell loop of `mmreg register` (one `python -m MultimodalRegistrationLib.cli.main register` process
  per case, one after the other, as `for case in ...; do mmreg register ...; done` would run them);
* `mmreg batch --workers 1`;
* `mmreg batch --workers 2 --threads 1`;
* `mmreg batch --dask local:2 --threads 1` (skipped, with the reason, without `distributed`).

The batch runs a case's QA (MI/NMI, Jacobian, inverse consistency, checkerboard PNG) after its
registration; the loop does not, so every batch row does a little more work per case than the loop.
How each column is measured is printed under the table (see ``NOTES``).

Usage: python Testing/Benchmarks/bench_batch.py [--cases 20]

This file is also the benchmark's probe: the batch rows run `mmreg batch` through ``DRIVER``, which
first calls :func:`install_event_log`, and Dask workers load it as a preload (``dask_setup``), so that
the time of every case's hand-off to its worker and of its workers' events is recorded. Only the
standard library is imported at the top, so that loading the probe costs the measured processes nothing.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench-output"
COHORT = OUT / "cohort"
RUNS = OUT / "cohort-runs"
LIBRARY = ROOT / "MultimodalRegistration"
EVENTS_ENV = "MMREG_BENCH_EVENTS"
ENGINE_PROCESSES = ("process.warm_worker", "process.registration_job")  # the processes that run the engine
POLL_S = 0.5

# `mmreg batch` with the probe installed: argv[1] is this file, the rest is mmreg's command line.
DRIVER = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench_batch_probe", sys.argv[1])
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)
probe.install_event_log()
from MultimodalRegistrationLib.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

NOTES = """\
How the columns are measured:
- cases per hour: cases registered x 3600 / the row's wall time (the loop's first process start to its last
  exit; the batch command from start to exit, cluster start, batch.csv and report included).
- median s per case: the loop: each `mmreg register` process's wall time (start to exit); the batch: the
  `seconds` of batch.csv (the case's wall time in its worker, registration + QA; cases overlap with 2 workers).
- peak GB per worker: the largest peak resident memory (VmHWM in /proc/<pid>/status, read every 0.5 s by a
  thread while the row runs) among the row's engine processes: each `registration_job` child of the loop,
  each warm worker of the batch. VmHWM is the kernel's own high-water mark, so polling misses nothing but a
  process that ends within 0.5 s of its last reading. The processes that only coordinate (the mmreg
  process, Dask's nannies and workers) are listed below; RUSAGE_CHILDREN is not used, since it gives one
  maximum over every descendant, coordinators included, and cannot tell the workers apart.
- start-up share: time spent before the engine can compute, over the worker time (wall x workers).
  Per case, from its hand-off (the loop: the `mmreg register` process start; the batch: the job written to
  the warm worker, whose process is started just before for its first case) to the engine's first
  iteration stage, minus the work done meanwhile (reading the images, checks, the any-pose search, the
  metric before: summary.json's timings_s): interpreter start, imports (elastix's about 1 s, 13-30 s through ITK's lazy loader), the
  child process's start, the engine's own set-up (image conversion, ~0.1 s), messaging. Times come from
  the progress lines `mmreg register` prints (the loop) and from the worker events, time-stamped where the
  batch hears them (the batch: a probe in the batch process, in each Dask worker through a preload).
  For the batch, the lead-in from the command's start to the first hand-off (the CLI's imports, hashing
  the inputs, the Dask cluster's start) counts once per worker.
- mean error mm: mean over the cases of core.phantom.mean_error_mm (the result against the truth at 500
  points inside the head); the largest case in brackets; failed cases are counted apart."""


# ----------------------------------------------------------------------------- the probe
_LOCK = threading.Lock()


def _append(path: str, record: dict) -> None:
    line = json.dumps(record) + "\n"
    with _LOCK, open(path, "a", encoding="utf-8") as file:
        file.write(line)  # one short write, appended: lines from several processes do not mix


def install_event_log(path: str | None = None) -> None:
    """Record, in the JSON-lines file ``path`` (default: $MMREG_BENCH_EVENTS), with wall-clock times, when
    each job is handed to its worker and every event the worker sends about it (progress stage, result
    with the worker's own report, error). Changes nothing else."""
    path = path or os.environ.get(EVENTS_ENV)
    if not path:
        return
    from MultimodalRegistrationLib.process.worker import WorkerJob

    if getattr(WorkerJob, "_bench_probe", False):
        return
    original_start, original_handle = WorkerJob.start, WorkerJob._handle

    def start(self):
        _append(path, {"t": time.time(), "case": self.job.get("case", ""), "event": "handed", "pid": os.getpid()})
        return original_start(self)

    def handle(self, event: dict) -> None:
        kind = event.get("event")
        if kind in ("progress", "result", "error", "exit") and not event.get("from_log"):
            record = {"t": time.time(), "case": self.job.get("case", ""), "event": kind, "stage": event.get("stage")}
            if kind in ("result", "error"):
                record["worker"] = event.get("worker")  # read before _handle takes it off the event
            _append(path, record)
        return original_handle(self, event)

    WorkerJob.start, WorkerJob._handle, WorkerJob._bench_probe = start, handle, True


def dask_setup(worker) -> None:
    """Dask's preload hook: the probe in each Dask worker of the `--dask local:2` row."""
    install_event_log()


# ----------------------------------------------------------------------------- measuring
def _read_status(pid: int) -> tuple[int, int] | None:
    """(parent pid, VmHWM in kB) of a process, or None if it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    parent = re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE)
    peak = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return (int(parent.group(1)) if parent else 0, int(peak.group(1)) if peak else 0)


class PeakMemory:
    """Polls, from a thread, the peak resident memory (VmHWM) of every descendant of this process.

    ``engines`` and ``others`` map pid -> (peak GB, command line): the processes that run the engine
    (warm workers, registration_job workers) and the rest (mmreg itself, Dask's nannies and workers).
    """

    def __init__(self):
        self.root = os.getpid()
        self.engines: dict[int, tuple[float, str]] = {}
        self.others: dict[int, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(POLL_S):
                return

    def sample(self) -> None:
        statuses = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                status = _read_status(int(entry))
                if status is not None:
                    statuses[int(entry)] = status
        for pid, (parent, peak_kb) in statuses.items():
            ancestor, hops = parent, 0
            while ancestor not in (0, 1, self.root) and hops < 64:  # is it one of ours?
                ancestor, hops = statuses.get(ancestor, (0, 0))[0], hops + 1
            if ancestor != self.root or pid == self.root:
                continue
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if not command.strip():
                continue  # ended (a zombie): its last reading stands
            table = self.engines if any(name in command for name in ENGINE_PROCESSES) else self.others
            previous = table.get(pid, (0.0, command))[0]
            table[pid] = (max(previous, peak_kb / 1024**2), command.strip())


def environment(events: Path | None = None, dask: bool = False) -> dict:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(LIBRARY), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    )
    if events is not None:
        env[EVENTS_ENV] = str(events)
    if dask:
        env["DASK_DISTRIBUTED__WORKER__PRELOAD"] = json.dumps([str(Path(__file__).resolve())])
    return env


def startups(events: list[dict], timings: dict[str, dict]) -> dict[str, float]:
    """Per case: seconds from its hand-off to the engine's first iteration stage, less the work done in
    between: reading the images (``read_s`` of the summary's ``timings_s``, done before the worker's
    "checking inputs" event) and the checks, search and metric before (done between "checking inputs" and
    "loading <engine>", so never counted). The last attempt of a retried case counts."""
    result = {}
    for case in sorted({e["case"] for e in events}):
        mine = sorted((e for e in events if e["case"] == case), key=lambda e: e["t"])
        handed = [e["t"] for e in mine if e["event"] == "handed"]
        if not handed or case not in timings:
            continue
        after = [e for e in mine if e["t"] >= handed[-1] and e["event"] == "progress"]  # the last attempt
        stages = [e["stage"] or "" for e in after]
        if "checking inputs" not in stages:
            continue
        checking = after[stages.index("checking inputs")]["t"]
        loading = next((i for i, stage in enumerate(stages) if stage.startswith("loading ")), None)
        if loading is None or loading + 1 >= len(after):
            continue
        before_checks = checking - handed[-1] - timings[case].get("read_s", 0.0)
        result[case] = before_checks + (after[loading + 1]["t"] - after[loading]["t"])
    return result


def run_loop(manifest: Path, folder: Path) -> dict:
    """`mmreg register` once per case, one process after the other; wall time and progress lines of each."""
    with open(manifest, newline="") as file:
        rows = list(csv.DictReader(file))
    events, seconds, failed = [], {}, {}
    started = time.time()
    for row in rows:
        case, target = row["case"], folder / row["case"]
        target.mkdir(parents=True)
        command = [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "register",
                   "--fixed", str(manifest.parent / row["fixed"]), "--moving", str(manifest.parent / row["moving"]),
                   "--output-transform", str(target / "transform.h5"), "--json", str(target / "summary.json")]  # fmt: skip
        with open(target / "stdout.txt", "w") as stdout:
            launched = time.time()
            process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=environment())
            events.append({"t": launched, "case": case, "event": "handed"})
            lines = []
            for line in process.stderr:  # "  5% loading elastix": one line per stage when not on a terminal
                lines.append(line)
                match = re.match(r"^\s*\d+% (.*)$", line.rstrip("\n"))
                if match:
                    events.append({"t": time.time(), "case": case, "event": "progress", "stage": match.group(1)})
            code = process.wait()
        seconds[case] = time.time() - launched
        if code != 0:
            failed[case] = "".join(lines)[-300:]
    return {"wall": time.time() - started, "seconds": seconds, "events": events, "failed": failed, "workers": 1,
            "lead_in": 0.0}  # fmt: skip


def run_batch_row(manifest: Path, folder: Path, options: list[str], workers: int, dask: bool) -> dict:
    """`mmreg batch` (through the probe) into ``folder``; its wall time, batch.csv and the worker events."""
    events_path = folder.parent / f"{folder.name}-events.jsonl"
    events_path.unlink(missing_ok=True)
    command = [sys.executable, "-c", DRIVER, str(Path(__file__).resolve()),
               "batch", str(manifest), "--output-dir", str(folder), *options]  # fmt: skip
    started = time.time()
    run = subprocess.run(command, check=False, capture_output=True, text=True, env=environment(events_path, dask))
    wall = time.time() - started
    (folder / "bench-stdout.txt").write_text(run.stdout + "\n--- stderr\n" + run.stderr)
    table = folder / "batch.csv"
    if not table.exists():
        raise RuntimeError(
            f"mmreg batch {' '.join(options)} wrote no batch.csv (exit {run.returncode}):\n{run.stderr[-3000:]}"
        )
    with open(table, newline="") as file:
        rows = list(csv.DictReader(file))
    events = [json.loads(line) for line in events_path.read_text().splitlines()] if events_path.exists() else []
    handed = [e["t"] for e in events if e["event"] == "handed"]
    results = [e for e in events if e["event"] in ("result", "error")]
    return {
        "wall": wall,
        "seconds": {r["case"]: float(r["seconds"]) for r in rows},
        "events": events,
        "failed": {r["case"]: f"{r['kind']}: {r['message']}" for r in rows if r["status"] != "ok"},
        "workers": workers,
        "lead_in": (min(handed) - started) if handed else float("nan"),
        "tail": (started + wall - max(e["t"] for e in results)) if results else float("nan"),
        "imported": sum(bool((e.get("worker") or {}).get("imported_now")) for e in results),
        "exit": run.returncode,
    }


# ----------------------------------------------------------------------------- the benchmark
def load() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", type=int, default=20, help="phantom pairs in the cohort (default 20, as in the issue)"
    )
    arguments = parser.parse_args()
    if arguments.cases < 1:
        parser.error("--cases must be at least 1")

    # Here, not at the top: this file is also loaded as the probe inside mmreg's process, where this folder
    # is not on sys.path.
    import bench_paths  # noqa: F401 (the library and the test-data makers on sys.path)
    from cohort_data import write_cohort
    from MultimodalRegistrationLib.core.phantom import mean_error_mm
    from MultimodalRegistrationLib.core.transforms import Transform

    print(f"generating {arguments.cases} phantom pairs at 256 x 256 x 180, 1 mm, into {COHORT} ...", flush=True)
    shutil.rmtree(COHORT, ignore_errors=True)
    manifest, truths = write_cohort(
        COHORT, arguments.cases, broken=False,
        ct_spacing=(1.0, 1.0, 1.0), mr_spacing=(1.0, 1.0, 1.0), field_of_view_mm=(256, 256, 180),
    )  # fmt: skip
    cases = list(truths)

    rows = [
        ("shell loop of `mmreg register`", "loop", None),
        ("`mmreg batch --workers 1`", "workers1", (["--workers", "1"], 1, False)),
        ("`mmreg batch --workers 2 --threads 1`", "workers2", (["--workers", "2", "--threads", "1"], 2, False)),
        ("`mmreg batch --dask local:2 --threads 1`", "dask2", (["--dask", "local:2", "--threads", "1"], 2, True)),
    ]
    has_dask = importlib.util.find_spec("distributed") is not None
    results = []
    for label, key, batch in rows:
        if batch is not None and batch[2] and not has_dask:
            results.append(
                (label, None, "skipped: the `distributed` package is not installed (pip install distributed)", key)
            )
            continue
        folder = RUNS / key
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        before = load()
        print(f"{label}: {len(cases)} cases (load average {before:.2f}) ...", flush=True)
        with PeakMemory() as memory:
            try:
                row = run_loop(manifest, folder) if batch is None else run_batch_row(manifest, folder, *batch)
            except RuntimeError as failure:
                results.append((label, None, f"failed: {str(failure).splitlines()[0]}", key))
                continue
        row["load"] = (before, load())
        row["memory"] = (dict(memory.engines), dict(memory.others))
        timings, errors = {}, {}
        for case in cases:
            summary_path, transform_path = folder / case / "summary.json", folder / case / "transform.h5"
            if case in row["failed"] or not transform_path.exists():
                continue
            timings[case] = json.loads(summary_path.read_text())["provenance"]["timings_s"]
            truth, points = truths[case]
            errors[case] = mean_error_mm(Transform.read(transform_path), truth, points)
        row["errors"], row["startups"] = errors, startups(row["events"], timings)
        results.append((label, row, "", key))
        print(f"  {row['wall']:.0f} s, {len(errors)}/{len(cases)} registered", flush=True)

    print()
    print(f"Cohort of {len(cases)} rigid CT->MR phantom pairs, 256 x 256 x 180 at 1 mm, poses 10-180 deg, "
          f"default options (elastix rigid, init auto), this machine: {os.cpu_count()} cores")  # fmt: skip
    print()
    print("| run | cases per hour | median s per case | peak GB per worker | start-up share | mean error mm (max) |")
    print("|---|---|---|---|---|---|")

    def rate_of(row: dict) -> float:  # registered cases per hour: a failed case is no throughput
        return (len(cases) - len(row["failed"])) * 3600 / row["wall"]

    loop_rate = next((rate_of(row) for _, row, _, key in results if key == "loop" and row), None)
    for label, row, reason, key in results:
        if row is None:
            print(f"| {label} | {reason} | | | | |")
            continue
        rate = rate_of(row)
        speed = f" ({rate / loop_rate:.1f}x)" if loop_rate and key != "loop" else ""
        median = statistics.median(row["seconds"].values())
        engines = row["memory"][0]
        peak = f"{max(v[0] for v in engines.values()):.2f}" if engines else "n/a"
        measured = row["startups"]
        if len(measured) == len(cases) - len(row["failed"]) and measured:
            total = row["workers"] * row["lead_in"] + sum(measured.values())
            share = f"{100 * total / (row['workers'] * row['wall']):.0f}%"
        else:
            share = f"n/a ({len(measured)} of {len(cases)} cases timed)"
        errors = row["errors"]
        error = f"{statistics.mean(errors.values()):.3f} ({max(errors.values()):.3f})" if errors else "n/a"
        if row["failed"]:
            error += f", {len(row['failed'])} failed"
        print(f"| {label} | {rate:.0f}{speed} | {median:.1f} | {peak} | {share} | {error} |")
    print()
    print("Per row:")
    for label, row, reason, _ in results:
        if row is None:
            print(f"- {label}: {reason}")
            continue
        engines, others = row["memory"]
        measured = row["startups"]
        parts = [f"wall {row['wall']:.0f} s", f"load average {row['load'][0]:.2f} before, {row['load'][1]:.2f} after"]
        if measured:
            parts.append(f"start-up per case median {statistics.median(measured.values()):.1f} s "
                         f"(max {max(measured.values()):.1f} s, sum {sum(measured.values()):.0f} s)")  # fmt: skip
        if row["workers"] and "imported" in row:
            parts.append(f"lead-in to the first case {row['lead_in']:.1f} s, after the last case {row['tail']:.1f} s")
            parts.append(
                f"{row['imported']} case(s) imported the engine in their worker, {len(engines)} engine process(es)"
            )
        if others:
            parts.append(f"coordinating processes peak {max(v[0] for v in others.values()):.2f} GB ({len(others)})")
        print(f"- {label}: " + "; ".join(parts))
        for case, message in row["failed"].items():
            print(f"  - {case} failed: {message.strip().splitlines()[-1] if message.strip() else '?'}")
    print()
    print(NOTES)
    print("Targets (issue): >= 3x the shell loop's throughput; start-up under 10% of the batch's time.")
    records = [{"run": label, "skipped": reason, **({k: v for k, v in row.items() if k != "events"} if row else {})}
               for label, row, reason, _ in results]  # fmt: skip
    (RUNS / "bench_batch.json").write_text(json.dumps(records, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
