"""A cohort run: every case of a manifest in warm workers, locally or on a Dask cluster, with resume.

One function runs a case, wherever it runs (:func:`execute_case`): in a thread of this process that
keeps its own warm worker (:class:`.warm_worker.WarmWorker`), or in a Dask worker, which keeps one the
same way. It writes the case's ``case.json`` last, atomically, so a case is done only when that file
exists (a failed case's folder holds nothing else); a re-run skips the done cases whose inputs and options hash the same (:func:`.manifest.case_hash`).
A crashed worker is replaced and its case retried once; a case over its time limit is stopped.
The cohort's verdicts (:mod:`..qa.triage`), ``batch.csv`` and ``report.html`` come last.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.cores import usable_cores
from ..core.errors import FileInUseError
from ..core.files import write_text_atomically
from ..core.open_files import allow_open_files, files_for_workers
from ..engines.registry import engine_spec
from ..qa.cohort_provenance import CohortProvenance, cohort_provenance
from .batch_lock import batch_lock
from .case_job import failed_step, qa_report_path
from .case_results import EARLIER, clear, cohort_files_aside, recover_earlier, restore, set_aside
from .jobs import CaseJob
from .manifest import COHORT_FILES, DONE, CaseRecord, case_hash, check_batch_options, read_done, read_manifest
from .warm_worker import WarmWorker
from .worker import WAIT_SLICE_S, WorkerFailure

# Failures that a re-run would repeat (the inputs or the engine's answer); the others are retried.
REPEATABLE = ("input", "engine")
CSV_COLUMNS = ("case", "status", "verdict", "reasons", "seconds", "metric_before", "metric_after", "tre_median_mm",
               "kind", "message", "attempts", "dice_before", "dice_after")  # dice: guided by segments (mean, QA's)

_local = threading.local()  # the warm worker of this thread: a batch thread or a Dask worker's thread
_workers: set[WarmWorker] = set()
_spares: list[WarmWorker] = []  # started ahead by start_workers, not yet taken by a thread
_workers_lock = threading.Lock()
_cancelled = threading.Event()  # a local batch was interrupted: its running cases stop, none is retried
# Cases stopped with the batch whose earlier result was put back: not heard as ended (a stop read "[2/7] good1: ok
# (1.9 s)" and "after 2 of 7 cases" for a case that had not run again; a helper's batch sweep).
_restored: set[str] = set()


def _warm_worker(python: str | None) -> WarmWorker:
    worker = getattr(_local, "worker", None)
    if worker is None or not worker.alive:
        with _workers_lock:
            worker = _spares.pop() if _spares else None
        if worker is None or not worker.alive:
            # No engine imported ahead: the case imports its own when it needs it, and a bad one fails fast.
            worker = WarmWorker(python=python, engines=())
            with _workers_lock:
                _workers.add(worker)
        _local.worker = worker
    return worker


def start_workers(count: int, engine: str, python: str | None = None) -> None:
    """Start ``count`` warm workers now, each importing ``engine``, for the batch's threads to take at their
    first case: the import (other processes) overlaps the batch's own start, hashing the inputs for the
    resume check. A case handed to a worker still importing waits for it."""
    started = [WarmWorker(python=python, engines=(engine,)) for _ in range(count)]
    with _workers_lock:
        _workers.update(started)
        _spares.extend(started)


def stop_workers() -> None:
    """Stop every warm worker this process started (at the end of a batch, or when it is interrupted)."""
    with _workers_lock:
        workers = list(_workers)
        _workers.clear()
        _spares.clear()
    for worker in workers:
        worker.stop()


RESTORE_WAIT_S = 10.0  # how long a stopped batch waits for its running cases to put earlier results back


def execute_case(job: dict, digest: str, timeout_s: float | None = None, python: str | None = None) -> dict:
    """Run one case (a :class:`.jobs.CaseJob` as JSON) in this thread's warm worker; returns its
    :class:`.manifest.CaseRecord` as a dictionary, also written as the case's ``case.json``. ``digest`` is
    the job's :func:`.manifest.case_hash`, taken once by the batch for its resume check."""
    from ..qa.triage import triage_case

    case = CaseJob.from_json(job)
    folder = Path(case.output_transform).parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        earlier = set_aside(folder)
    except FileInUseError as error:  # its earlier result stays as it was, record and all; the next run redoes it
        verdict = triage_case(None, None, str(error), "inputs")
        return CaseRecord(case.case, "failed", digest, 0.0, "busy", str(error), 0, verdict=verdict).to_dict()
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        worker = _warm_worker(python)
        running = worker.run(case)
        try:
            result = running.wait(timeout=timeout_s)
        except WorkerFailure as failure:
            crashed = failure.kind == "internal" and not worker.alive
            if _cancelled.is_set() and failure.kind not in REPEATABLE:  # its worker was stopped with the batch
                if (earlier / DONE).exists():  # the earlier result stands: the case was stopped, not redone
                    restore(folder, earlier)
                    _restored.add(case.case)
                    return CaseRecord.from_dict(json.loads((folder / DONE).read_text())).to_dict()
                failure = WorkerFailure("cancelled", "stopped with the batch (Ctrl-C or SIGTERM) before it finished: "
                                        "run the same command again to redo it")  # fmt: skip
            elif crashed and attempts < 2:
                continue  # a crashed worker gets one more try, in a fresh worker
            clear(folder)  # what the failed run wrote (a transform before its QA failed) must not pass for a result
            verdict = triage_case(None, None, failure.message, failed_step(running.stage))
            record = CaseRecord(
                case.case, "failed", digest, round(time.monotonic() - started, 3), failure.kind, str(failure),
                attempts, verdict=verdict, worker=running.worker_info,
            )  # fmt: skip
            break
        record = CaseRecord(
            case.case, "ok", digest, round(time.monotonic() - started, 3), attempts=attempts,
            outputs=result.outputs.relative_to(folder), summary=result.summary, qa=result.qa, verdict=result.verdict,
            worker=running.worker_info,
        )  # fmt: skip
        break
    text = json.dumps(record.to_dict(), indent=2)
    write_text_atomically(folder / DONE, text)
    shutil.rmtree(earlier, ignore_errors=True)
    return record.to_dict()


def _is_done(job: CaseJob, digest: str) -> CaseRecord | None:
    recover_earlier(Path(job.output_transform).parent)
    record = read_done(Path(job.output_transform).parent)
    if record is None or record.hash != digest:
        return None
    if record.status == "failed" and record.kind not in REPEATABLE:
        return None  # a crash, a time-out or a cancelled run may not happen again
    if record.status == "ok" and any(not Path(path).is_file() for path in _case_outputs(job)):
        return None  # an output asked for now (--output-volume) or deleted since: run the case again
    return record


def _case_outputs(job: CaseJob) -> list[str]:
    """The files a finished case must still have, its HTML QA report too (deleted by hand, it had not been redone:
    the cohort report then linked to nothing; a helper's sweep)."""
    named = [getattr(job, name) for name in CaseJob.paths("output") if getattr(job, name)]
    return named + ([qa_report_path(job.qa)] if job.qa else [])


def _threads(job: CaseJob, share: int) -> CaseJob:
    """The job with the engine threads it runs with: the user's, else :meth:`..engines.registry.EngineSpec.
    threads_when_unset`."""
    return replace(job, threads=job.threads or engine_spec(job.engine).threads_when_unset(share))


@dataclass
class BatchResult:
    """A finished batch: one record per case (manifest order), the final verdicts, what was written."""

    records: list[CaseRecord]
    verdicts: dict[str, dict]
    skipped: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [record.case for record in self.records if record.status == "failed"]


def _announced(on_start: Callable[[str], None], case: str, *arguments) -> dict:
    """:func:`execute_case` in a batch thread, telling ``on_start`` first which case the thread begins."""
    on_start(case)
    return execute_case(*arguments)


def _run_local(jobs: list[tuple[CaseJob, str]], workers: int, timeout_s, python, on_case, on_start) -> None:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmreg-batch")
    _cancelled.clear()
    _restored.clear()
    futures, heard = [], set()
    try:
        futures += [pool.submit(_announced, on_start, job.case, job.to_json(), digest, timeout_s, python)
                    for job, digest in jobs]  # fmt: skip
        pending = set(futures)
        while pending:  # in slices: on Windows Ctrl-C cannot interrupt a wait on a lock before Python 3.14
            done, pending = wait(pending, timeout=WAIT_SLICE_S, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=futures.index):
                heard.add(future)
                on_case(CaseRecord.from_dict(future.result()))
    except BaseException:
        _cancelled.set()  # a case whose worker is stopped now is not retried in a new one
        pool.shutdown(wait=False, cancel_futures=True)
        stop_workers()  # the running cases end, and put their earlier results back ...
        # ... before the batch lets go of its folder (review). Queued cases are cancelled: wait() never counts them
        # done, and waiting on them held every Ctrl-C for RESTORE_WAIT_S.
        wait([future for future in futures if not future.cancelled()], timeout=RESTORE_WAIT_S)
        _hear_the_last(futures, heard, on_case)
        raise
    pool.shutdown(wait=True)


def _hear_the_last(futures: list, heard: set, on_case) -> None:
    """``on_case`` for the cases that finished while the batch was stopping (the worker's grace lets a case about to
    end finish), so that what the stop says counts them; stopped ones are not, nor those whose earlier result was put
    back."""
    for future in futures:
        if future in heard or not future.done() or future.cancelled() or future.exception() is not None:
            continue
        record = CaseRecord.from_dict(future.result())
        if record.kind != "cancelled" and record.case not in _restored:
            on_case(record)


def run_batch(
    manifest: str | os.PathLike,
    output_dir: str | os.PathLike,
    defaults: dict | None = None,
    workers: int | None = None,
    timeout_s: float | None = None,
    dask: str | None = None,
    python: str | None = None,
    on_case: Callable[[CaseRecord], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    command: str | None = None,
) -> BatchResult:
    """Run every case of ``manifest`` into ``output_dir/<case>/``; skip the cases already done.

    ``defaults`` are :func:`.manifest.read_manifest`'s; ``workers`` warm local workers (default: one
    per two cores, at least one); ``timeout_s`` limits each case; ``dask`` is a scheduler address or
    ``local:N``. ``on_case`` hears each case as it ends (also the skipped ones, first, with ``seconds`` None);
    ``on_start`` hears each case's name as a local worker thread begins it (not on Dask, whose workers run
    elsewhere). ``command`` is the command line that ran the batch, for the report's provenance.
    """
    output_dir = Path(output_dir)
    # As mmreg batch checks them: from Python, workers=-1 raised ValueError, timeout_s=0 timed out every case and
    # stability=-1 failed each case after its registration (a helper's batch sweep).
    check_batch_options(dict(defaults or {}), workers, timeout_s, local=not dask)
    jobs = read_manifest(manifest, output_dir, defaults)
    if dask:
        from .batch_dask import check_dask, run_dask

        check_dask(dask)
    count = workers or max(1, usable_cores() // 2)
    if not dask:
        allow_open_files(files_for_workers(count))  # as mmreg batch does (it also refuses too many, before)
    # Share the cores: N engines each using every core oversubscribe the machine (a Dask worker runs one case
    # per thread: one engine thread each). Filled in after hashing: threads the user did not set change no result.
    share = 1 if dask else max(1, usable_cores() // count)
    warnings = _unlisted_cases(output_dir, jobs)
    output_dir.mkdir(parents=True, exist_ok=True)
    with batch_lock(output_dir):  # refused while another batch writes here
        shutil.rmtree(output_dir / EARLIER, ignore_errors=True)  # a killed batch's cohort files: it may have redone cases
        notify = on_case or (lambda record: None)
        records: dict[str, CaseRecord] = {}

        def finished(record: CaseRecord) -> None:
            records[record.case] = record
            notify(record)

        try:
            todo = []  # (job, its hash), hashed once: the inputs' bytes are read for it
            for job in jobs:
                digest = case_hash(job)
                done = _is_done(job, digest)
                if done is None:
                    if not dask and len(todo) < count:
                        start_workers(1, job.engine, python)  # one per case to run, up to the thread count
                    todo.append((_threads(job, share), digest))
                else:
                    records[job.case] = done
                    notify(replace(done, seconds=None))  # done before: no time spent now
            skipped = list(records)
            if todo:
                with cohort_files_aside(output_dir, [Path(job.output_transform).parent for job in jobs]):
                    if dask:
                        run_dask(todo, dask, timeout_s, python, finished, execute_case, stop_workers)
                    else:
                        _run_local(todo, min(count, len(todo)), timeout_s, python, finished,
                                   on_start or (lambda case: None))  # fmt: skip
        finally:
            stop_workers()  # engines hold the GIL: only stopping their processes ends the running cases
        ordered = [records[job.case] for job in jobs]
        verdicts = cohort_verdicts(ordered)
        provenance = cohort_provenance([job.engine for job in jobs], [job.preset for job in jobs], command, len(jobs))
        outputs = write_cohort_results(ordered, verdicts, output_dir, provenance)
        return BatchResult(ordered, verdicts, skipped, outputs, warnings)


def _unlisted_cases(output_dir: Path, jobs: list[CaseJob]) -> list[str]:
    """A warning naming the case folders in ``output_dir`` that the manifest does not list (an earlier manifest's):
    the batch neither lists nor removes them."""
    listed = {job.case for job in jobs}
    try:
        others = sorted(
            entry.name for entry in output_dir.iterdir() if entry.name not in listed and (entry / DONE).is_file()
        )
    except OSError:
        return []
    if not others:
        return []
    names = ", ".join(others)
    return [f"{output_dir} holds case folders the manifest does not name, left out of batch.csv and report.html: "
            + f"{names}: remove them, or add their rows to the manifest"]  # fmt: skip


def cohort_verdicts(records: list[CaseRecord]) -> dict[str, dict]:
    """Each case's final verdict: its own, plus the cohort's outlier reasons (:mod:`..qa.triage`)."""
    from ..qa.cohort_triage import CohortRow, apply_cohort, cohort_outliers
    from ..qa.triage import Verdict

    verdicts = {record.case: record.verdict or Verdict("failed") for record in records}
    rows = [CohortRow.from_summary(r.case, r.summary) for r in records if r.summary]
    return {case: verdict.to_dict() for case, verdict in apply_cohort(verdicts, cohort_outliers(rows)).items()}


def csv_rows(records: list[CaseRecord], verdicts: dict[str, dict]) -> list[dict]:
    """One row per case, as ``batch.csv`` holds it (MI in nats, TRE in mm)."""
    from ..registration.runs import failure_line

    rows = []
    for record in records:
        summary, landmarks = record.summary, record.qa.landmarks if record.qa is not None else None
        tre = landmarks.tre_after if landmarks is not None else None
        verdict, measures = verdicts[record.case], verdicts[record.case].get("measures", {})
        rows.append({
            "case": record.case, "status": record.status, "verdict": verdict["verdict"],
            "reasons": "; ".join(verdict["reasons"]), "seconds": record.seconds,
            "metric_before": summary and summary.metric_before, "metric_after": summary and summary.metric_after,
            "tre_median_mm": tre and round(tre.median_mm, 4), "kind": record.kind or "",
            "message": failure_line(record.message) if record.message else "", "attempts": record.attempts,
            "dice_before": measures.get("guiding_dice_before"), "dice_after": measures.get("guiding_dice_after"),
        })  # fmt: skip
    return rows


def write_cohort_results(
    records: list[CaseRecord], verdicts: dict[str, dict], output_dir: Path, provenance: CohortProvenance | None = None
) -> dict[str, str]:
    """Write ``batch.csv`` and ``report.html`` (headed by ``provenance``) into ``output_dir``; returns their paths."""
    from ..qa.cohort_report import write_cohort_report

    rows = csv_rows(records, verdicts)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    table = output_dir / COHORT_FILES[0]
    write_text_atomically(table, buffer.getvalue())
    report = output_dir / COHORT_FILES[1]
    write_cohort_report(
        report, rows, {r.case: {k: str(output_dir / r.case / v) for k, v in r.outputs.items()} for r in records},
        provenance,
    )  # fmt: skip
    return {"table": str(table), "report": str(report)}
