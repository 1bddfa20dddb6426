"""The batch's bookkeeping without an engine: which cases run again, with how many threads, what a failed or
cancelled case leaves, and what the cohort folder says while cases run. A stand-in for the worker writes each
case's files, so each test takes well under a second."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import pytest
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.process import batch, case_results
from MultimodalRegistrationLib.process.jobs import CaseJob
from MultimodalRegistrationLib.process.manifest import DONE, CaseRecord, case_hash, read_manifest
from MultimodalRegistrationLib.process.worker import WorkerFailure
from MultimodalRegistrationLib.qa.triage import Verdict

PRESETS = Path(__file__).resolve().parents[2] / "Resources" / "Presets"


@pytest.fixture
def cohort(tmp_path):
    """Two cases whose images are stand-in bytes (the worker is a stand-in too)."""
    for name in ("a_ct.nrrd", "a_mr.nrrd", "b_ct.nrrd", "b_mr.nrrd"):
        (tmp_path / name).write_bytes(name.encode())
    manifest = tmp_path / "m.csv"
    manifest.write_text("case,fixed,moving,engine\na,a_ct.nrrd,a_mr.nrrd,ants\nb,b_ct.nrrd,b_mr.nrrd,elastix\n")
    return manifest


@pytest.fixture
def ran(monkeypatch):
    """Replace the worker: each case 'runs' by writing its output files; returns the jobs run, as run."""
    jobs: list[CaseJob] = []

    def execute(job: dict, digest: str, timeout_s=None, python=None) -> dict:
        case = CaseJob.from_json(job)
        jobs.append(case)
        folder = Path(case.output_transform).parent
        folder.mkdir(parents=True, exist_ok=True)
        for name in CaseJob.paths("output"):
            if getattr(case, name):
                Path(getattr(case, name)).write_text("written")
        if case.qa:  # the worker writes the HTML report beside qa.json
            Path(case.qa).with_suffix(".html").write_text("written")
        record = CaseRecord(case.case, "ok", digest, 1.5, verdict=Verdict())
        (folder / DONE).write_text(json.dumps(record.to_dict()))
        return record.to_dict()

    monkeypatch.setattr(batch, "execute_case", execute)
    monkeypatch.setattr(batch, "start_workers", lambda *arguments: None)
    return jobs


def test_ants_keeps_its_one_thread_and_threads_left_unset_do_not_rerun_a_case(cohort, ran, tmp_path, monkeypatch):
    """ANTs repeats a result only with 1 thread: the batch ran it with the cores shared (2 here), so the same
    manifest gave other transforms each run. Threads the user did not set are not in the hash: another --workers
    (or another machine) redid every case."""
    monkeypatch.setattr(batch, "usable_cores", lambda: 4)
    batch.run_batch(cohort, tmp_path / "out", workers=2)
    assert {job.case: job.threads for job in ran} == {"a": 1, "b": 2}
    again = batch.run_batch(cohort, tmp_path / "out", workers=1)
    assert sorted(again.skipped) == ["a", "b"] and len(ran) == 2
    batch.run_batch(cohort, tmp_path / "out", {"threads": 3}, workers=1)  # the user's threads: in the hash, used
    assert [(job.case, job.threads) for job in ran[2:]] == [("a", 3), ("b", 3)]


def test_a_skipped_case_is_heard_without_seconds_and_a_missing_output_reruns_it(cohort, ran, tmp_path):
    heard: list[CaseRecord] = []
    batch.run_batch(cohort, tmp_path / "out", workers=1)
    result = batch.run_batch(cohort, tmp_path / "out", workers=1, on_case=heard.append)
    assert [(record.case, record.seconds) for record in heard] == [("a", None), ("b", None)]
    assert [record.seconds for record in result.records] == [1.5, 1.5]  # batch.csv keeps the time it took
    result = batch.run_batch(cohort, tmp_path / "out", {"output_volume": True}, workers=1)
    assert result.skipped == [] and (tmp_path / "out" / "a" / "resampled.nrrd").is_file()
    (tmp_path / "out" / "b" / "qa.html").unlink()  # deleted by hand: the cohort report would link to nothing
    result = batch.run_batch(cohort, tmp_path / "out", {"output_volume": True}, workers=1)
    assert result.skipped == ["a"] and (tmp_path / "out" / "b" / "qa.html").is_file()


def test_cohort_files_go_when_cases_run_and_unlisted_case_folders_are_named(cohort, ran, tmp_path, monkeypatch):
    out = tmp_path / "out"
    batch.run_batch(cohort, out, workers=1)
    (tmp_path / "a_ct.nrrd").write_bytes(b"changed")  # case a runs again
    seen, run_local = [], batch._run_local

    def run(*arguments):
        seen.append(sorted(path.name for path in out.iterdir()))
        run_local(*arguments)

    monkeypatch.setattr(batch, "_run_local", run)
    batch.run_batch(cohort, out, workers=1)
    assert seen == [[".earlier", ".mmreg-batch.lock", "a", "b"]], "batch.csv and report.html described case a while it ran again"
    assert not (out / ".earlier").exists()  # gone with the run
    assert (out / "batch.csv").is_file() and (out / "report.html").is_file()  # written again at the end
    one = cohort.with_name("one.csv")
    one.write_text("\n".join(cohort.read_text().splitlines()[:2]) + "\n")
    result = batch.run_batch(one, out, workers=1)
    assert len(result.warnings) == 1 and result.warnings[0].endswith(
        "left out of batch.csv and report.html: b: remove them, or add their rows to the manifest"
    )


@pytest.mark.parametrize("case_redone", [False, True], ids=["stopped before a case ended", "case a redone"])
def test_a_stopped_rerun_puts_the_cohort_files_back_unless_a_case_changed(case_redone, cohort, ran, tmp_path, monkeypatch):
    """A stopped rerun removed batch.csv and report.html (review): they wait aside while cases run, and come back
    when the stop left every case's earlier record as it was; a case redone before the stop makes them stale."""
    out = tmp_path / "out"
    batch.run_batch(cohort, out, workers=1)
    kept = {name: (out / name).read_bytes() for name in ("batch.csv", "report.html")}
    (tmp_path / "a_ct.nrrd").write_bytes(b"changed")  # case a runs again

    def stopped(*arguments):
        if case_redone:
            (out / "a" / DONE).write_text(json.dumps(CaseRecord("a", "ok", "new hash", 2.0).to_dict()))
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_run_local", stopped)
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(cohort, out, workers=1)
    left = {name: (out / name).read_bytes() for name in kept if (out / name).exists()}
    assert left == ({} if case_redone else kept)
    assert not (out / case_results.EARLIER).exists()


def test_cohort_files_a_killed_batch_left_aside_do_not_come_back(cohort, ran, tmp_path, monkeypatch):
    """A batch killed outright leaves batch.csv aside; it may have redone cases since, so the next run does not put
    it back (it came back beside a case.json it contradicted; review), even when that run is stopped in turn."""
    out = tmp_path / "out"
    batch.run_batch(cohort, out, workers=1)
    (out / case_results.EARLIER).mkdir()
    (out / "batch.csv").rename(out / case_results.EARLIER / "batch.csv")  # killed with cases running
    (tmp_path / "a_ct.nrrd").write_bytes(b"changed")  # case a runs again

    def stopped(*arguments):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_run_local", stopped)
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(cohort, out, workers=1)
    assert not (out / "batch.csv").exists() and not (out / case_results.EARLIER).exists()


def test_a_batch_csv_open_in_excel_is_named_before_any_case_runs(cohort, ran, tmp_path, monkeypatch):
    """Windows: a rerun while batch.csv is open in Excel ended in a PermissionError traceback (audit). It is named,
    with the fix, before any case runs, and the folder is as it was."""

    from test_user_files_kept import held_open_by_another_program

    out = tmp_path / "out"
    batch.run_batch(cohort, out, workers=1)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".mmreg-batch.lock"}
    (tmp_path / "a_ct.nrrd").write_bytes(b"changed")  # case a runs again
    held_open_by_another_program(monkeypatch, lambda source: source.name == "batch.csv")
    with pytest.raises(InputError, match=r"cannot replace or move .*batch\.csv .*close it where it is open"):
        batch.run_batch(cohort, out, workers=1)
    assert len(ran) == 2  # the first run's two cases only
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".mmreg-batch.lock"}
    assert after == before and not (out / case_results.EARLIER).exists()


class _Stopped:
    """A worker whose case writes its transform and summary, then fails at ``stage`` with ``failure``."""

    def __init__(self, failure: WorkerFailure, stage: str):
        self.failure, self.stage, self.worker_info, self.alive = failure, stage, {}, False

    def run(self, case: CaseJob):
        self.folder = Path(case.output_transform).parent
        return self

    def wait(self, timeout=None):
        for name in ("transform.h5", "summary.json"):
            (self.folder / name).write_text("written before the failure")
        raise self.failure


@pytest.mark.parametrize(
    "failure, stage, cancelled, kind, reason",
    [
        (WorkerFailure("timeout", "the job took longer than 3 s and was stopped"), "quality", False, "timeout",
         "the quality check failed: the job took longer than 3 s"),
        (WorkerFailure("input", "all 8 fixed points lie outside the fixed image"), "inputs", False, "input",
         "the input check failed: all 8 fixed points"),
        (WorkerFailure("internal", "the registration worker stopped unexpectedly (exit code -15)", "out of memory"),
         "registration", True, "cancelled", "the registration failed: stopped with the batch"),
    ],
    ids=["timeout in QA", "bad points", "Ctrl-C"],
)  # fmt: skip
def test_a_failed_case_leaves_only_its_record(failure, stage, cancelled, kind, reason, tmp_path, monkeypatch):
    """A failed case kept the transform and summary its run wrote before failing (next to a case.json saying
    failed), and a re-run kept the old qa_figures/; a case stopped by Ctrl-C was recorded as a crash blaming memory."""
    folder = tmp_path / "c1"
    job = CaseJob(case="c1", fixed="f.nrrd", moving="m.nrrd", output_transform=str(folder / "transform.h5"))
    (folder / "qa_figures").mkdir(parents=True)
    for name in ("qa.html", "qa_figures/after.png"):
        (folder / name).write_text("from an earlier run")
    monkeypatch.setattr(batch, "_warm_worker", lambda python: _Stopped(failure, stage))
    if cancelled:
        monkeypatch.setattr(batch, "_cancelled", threading.Event())
        batch._cancelled.set()
    record = CaseRecord.from_dict(batch.execute_case(job.to_json(), "hash"))
    assert sorted(path.name for path in folder.iterdir()) == [DONE]
    assert (record.status, record.kind, record.attempts) == ("failed", kind, 1)
    assert record.verdict.reasons[0].startswith(reason), record.verdict.reasons
    assert "memory" not in (record.message or "")


def test_a_cancelled_rerun_leaves_the_case_s_earlier_result_as_it_was(tmp_path, monkeypatch):
    """A batch rerun with other settings, stopped with Ctrl-C, deleted the earlier finished result of every case it
    had started (transform, summary, QA) and recorded them as cancelled (audit). They are set aside while the case
    runs and put back when it is stopped; the next run redoes the case (its record keeps the earlier hash)."""
    folder = tmp_path / "c1"
    job = CaseJob(case="c1", fixed="f.nrrd", moving="m.nrrd", output_transform=str(folder / "transform.h5"))
    earlier = CaseRecord("c1", "ok", "earlier hash", 12.5, attempts=1)
    (folder / "qa_figures").mkdir(parents=True)
    files = {"transform.h5": "earlier transform", "summary.json": "{}", "qa.html": "earlier report",
             "qa_figures/fusion_after.png": "png", DONE: json.dumps(earlier.to_dict())}  # fmt: skip
    for name, text in files.items():
        (folder / name).write_text(text)
    stopped = WorkerFailure("internal", "the registration worker stopped unexpectedly (exit code -15)")
    monkeypatch.setattr(batch, "_warm_worker", lambda python: _Stopped(stopped, "registration"))
    monkeypatch.setattr(batch, "_cancelled", threading.Event())
    batch._cancelled.set()
    record = CaseRecord.from_dict(batch.execute_case(job.to_json(), "new hash"))
    assert {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()} == files
    assert (record.status, record.hash) == ("ok", "earlier hash") and not (folder / case_results.EARLIER).exists()


def _job(folder: Path, **options) -> CaseJob:
    for name in ("f.nrrd", "m.nrrd"):
        (folder / name).write_bytes(name.encode())
    return CaseJob(case="c", fixed=str(folder / "f.nrrd"), moving=str(folder / "m.nrrd"), **options)


def test_the_hash_holds_the_bytes_of_the_preset_files(tmp_path, monkeypatch):
    """Only a preset file's path was hashed: an edited preset kept the old result, reported as done."""
    mine = tmp_path / "mine.txt"
    shutil.copy(PRESETS / "elastix" / "rigid.txt", mine)
    job = _job(tmp_path, preset=str(mine))
    before = case_hash(job)
    mine.write_text(mine.read_text().replace("(MaximumNumberOfIterations 256)", "(MaximumNumberOfIterations 2)"))
    assert case_hash(job) != before
    # A built-in preset edited in Resources/Presets (no new version) runs the case again too.
    copy = tmp_path / "Presets"
    shutil.copytree(PRESETS, copy)
    monkeypatch.setenv("MMREG_PRESETS_DIR", str(copy))
    builtin = _job(tmp_path, preset="rigid")
    before = case_hash(builtin)
    (copy / "elastix" / "rigid.txt").write_text((copy / "elastix" / "rigid.txt").read_text() + "\n(Dummy 1)\n")
    assert case_hash(builtin) != before
    assert case_hash(_job(tmp_path, preset="affine")) == case_hash(_job(tmp_path, preset="affine"))


def test_the_hash_holds_the_voxels_of_a_detached_header(tmp_path):
    """A .nhdr or .mhd input: only its header was hashed, so a case whose .raw voxels were replaced (or first
    copied beside a header that had lacked them) stayed 'done before' with the old result."""
    import numpy as np
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    for name in ("m.nhdr", "f.mhd"):
        sitk.WriteImage(image, str(tmp_path / name), False)
    job = CaseJob(case="c", fixed=str(tmp_path / "f.mhd"), moving=str(tmp_path / "m.nhdr"))
    before = case_hash(job)
    for raw in (tmp_path / "m.raw", tmp_path / "f.raw"):
        assert raw.is_file()
        voxels = bytearray(raw.read_bytes())
        voxels[:8] = bytes(8)
        raw.write_bytes(bytes(voxels))
        assert case_hash(job) != before
        before = case_hash(job)
    (tmp_path / "m.raw").unlink()  # the header alone: a case that will fail on it, then run again once it is back
    missing = case_hash(job)
    (tmp_path / "m.raw").write_bytes(bytes(96))
    assert len({before, missing, case_hash(job)}) == 3


def test_a_manifest_reads_as_a_spreadsheet_writes_it(tmp_path, monkeypatch):
    """A preset file beside the manifest (was looked for in the current folder), '~' in a path (was joined to the
    manifest's folder), a ',,' row (was a case named ''), blank lines before a row (shifted its line number), a
    quoted comma and trailing empty cells."""
    (tmp_path / "data").mkdir()
    shutil.copy(PRESETS / "elastix" / "rigid.txt", tmp_path / "data" / "mine.txt")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    manifest = tmp_path / "data" / "m.csv"
    manifest.write_text('case,fixed,moving,preset\n\n\na,"ct,1.nrrd",~/mr.nrrd,mine.txt,,\n,,,\n\nb,b.nrrd,b.nrrd,\n'
                        "b,b.nrrd,b.nrrd,\n")  # fmt: skip
    with pytest.raises(InputError, match="line 8: case 'b' appears twice \\(first on line 7\\)"):
        read_manifest(manifest, tmp_path / "out")
    manifest.write_text(manifest.read_text().rsplit("b,", 1)[0])
    a, b = read_manifest(manifest, tmp_path / "out")
    assert (a.fixed, a.moving, a.preset) == (
        str(tmp_path / "data" / "ct,1.nrrd"),
        str(home / "mr.nrrd"),
        str(tmp_path / "data" / "mine.txt"),
    )
    assert (b.case, b.preset) == ("b", "rigid")


@pytest.mark.parametrize(
    "rows, said",
    [(["a,1000,0,0", "b,1000,10,0"], "all 2 fixed points lie outside the fixed image"),
     (None, "the first line must name the columns")],
    ids=["points far outside", "not a points file"],
)  # fmt: skip
def test_a_case_s_target_points_are_checked_before_its_registration(rows, said, tmp_path, monkeypatch):
    """The engine ran first (5 s), then the case failed on its points, saying 'the registration failed'; points
    1000 mm off gave a TRE of 1000 mm and the verdict ok, where mmreg qa refuses them."""
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.images import write_image
    from MultimodalRegistrationLib.process import case_job

    image = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    image.SetSpacing([4.0] * 3)
    for name in ("f.nrrd", "m.nrrd"):
        write_image(image, tmp_path / name)
    fixed = tmp_path / "f.csv"
    fixed.write_text("label,x,y,z\n" + "\n".join(rows) + "\n" if rows else "not a points file\n")
    (tmp_path / "m.csv").write_text("label,x,y,z\na,-1,-1,1\nb,-1,-2,1\n")
    monkeypatch.setattr(case_job, "run_registration_job", lambda *arguments: pytest.fail("the registration ran"))
    job = CaseJob(case="c", fixed=str(tmp_path / "f.nrrd"), moving=str(tmp_path / "m.nrrd"), fixed_points=str(fixed),
                  moving_points=str(tmp_path / "m.csv"), output_transform=str(tmp_path / "out" / "T.h5"))  # fmt: skip
    events: list[dict] = []
    with pytest.raises(InputError, match=said):
        case_job.run_case_job(job, events.append)
    assert [event["stage"] for event in events] == ["inputs"]
    assert not (tmp_path / "out").exists()


def test_a_case_that_fails_after_its_target_points_passed_is_not_blamed_on_them(tmp_path, monkeypatch):
    """The case's last stage stayed 'inputs' through the registration's own reading: a worker crash there read
    'the input check failed' in the triage (review finding)."""
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.images import write_image
    from MultimodalRegistrationLib.process import case_job

    image = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    image.SetSpacing([4.0] * 3)
    for name in ("f.nrrd", "m.nrrd"):
        write_image(image, tmp_path / name)
    for name, z in (("f.csv", 1), ("m.csv", 2)):  # lists of the same bytes are refused
        (tmp_path / name).write_text(f"label,x,y,z\na,-1,-1,{z}\nb,-1,-2,{z}\n")

    def crash(*arguments):
        raise MemoryError("out of memory while reading")

    monkeypatch.setattr(case_job, "run_registration_job", crash)
    job = CaseJob(case="c", fixed=str(tmp_path / "f.nrrd"), moving=str(tmp_path / "m.nrrd"),
                  fixed_points=str(tmp_path / "f.csv"), moving_points=str(tmp_path / "m.csv"),
                  output_transform=str(tmp_path / "out" / "T.h5"))  # fmt: skip
    events: list[dict] = []
    with pytest.raises(MemoryError):
        case_job.run_case_job(job, events.append)
    assert [event["stage"] for event in events] == ["inputs", "registration"]
    assert case_job.failed_step(events[-1]["stage"]) == "registration"


def test_a_second_batch_into_a_busy_folder_is_refused_and_a_killed_ones_lock_is_taken_over(cohort, ran, tmp_path):
    """Two batches into one folder cleared each other's files and reported cases as failed (audit)."""
    import signal
    import subprocess
    import sys

    from MultimodalRegistrationLib.process.batch_lock import LOCK_NAME

    out = tmp_path / "out"
    out.mkdir()
    lock = out / LOCK_NAME
    holding = ("import sys, time; sys.path.insert(0, sys.argv[2]); "
               "from MultimodalRegistrationLib.process.batch_lock import batch_lock\n"
               "with batch_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)")  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", holding, str(out), str(Path(batch.__file__).parents[2])],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"another mmreg batch is writing into {out} \(process {other.pid} "):
            batch.run_batch(cohort, out, workers=1)
        assert ran == [] and sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    finally:
        other.send_signal(signal.SIGKILL)  # no cleanup: its lock file stays, its lock goes with the process
        other.wait()
    assert lock.exists()
    result = batch.run_batch(cohort, out, workers=1)
    assert [record.case for record in result.records] == ["a", "b"] and not lock.exists()


def test_a_batch_lock_left_on_a_file_its_holder_removed_is_not_shared(tmp_path):
    """A batch that opened the lock file just before its holder let go (and removed it) must not run beside the
    next one: it finds the file it locked gone and locks the one there now."""
    import os

    from MultimodalRegistrationLib.process import batch_lock as locking

    order: list[str] = []
    with locking.batch_lock(tmp_path):
        late = os.open(tmp_path / locking.LOCK_NAME, os.O_RDWR)  # a racer's open, before the holder lets go
        order.append("first")
    assert locking._try_lock(late) and not locking._still_the_file(late, tmp_path / locking.LOCK_NAME)
    with locking.batch_lock(tmp_path):  # the racer's lock is on the removed file: no conflict with the new one
        order.append("second")
        with pytest.raises(InputError, match="another mmreg batch"), locking.batch_lock(tmp_path):
            order.append("third")
    os.close(late)
    assert order == ["first", "second"]


def test_an_earlier_result_left_aside_by_a_stopped_dask_case_is_back_before_the_resume_check(tmp_path):
    """A dask worker stopped with the batch never reached its restore: the earlier result stayed hidden in .earlier
    and even the original command registered the case again (review)."""
    folder = tmp_path / "c1"
    job = CaseJob(case="c1", fixed="f.nrrd", moving="m.nrrd", output_transform=str(folder / "transform.h5"))
    (folder / case_results.EARLIER).mkdir(parents=True)
    (folder / case_results.EARLIER / "transform.h5").write_text("earlier transform")
    (folder / case_results.EARLIER / DONE).write_text(json.dumps(CaseRecord("c1", "ok", "the hash", 3.0).to_dict()))
    (folder / "transform.h5").write_text("half of a stopped run")
    record = batch._is_done(job, "the hash")
    assert record is not None and record.hash == "the hash"
    assert (folder / "transform.h5").read_text() == "earlier transform" and not (folder / case_results.EARLIER).exists()


def test_a_file_system_without_locks_runs_the_batch_unguarded(tmp_path, monkeypatch):
    """flock raised OSError (ENOLCK) on cluster file systems without locks: the batch stopped with a traceback."""
    import errno
    import fcntl

    from MultimodalRegistrationLib.process import batch_lock as locking

    def unsupported(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    with locking.batch_lock(tmp_path):
        assert (tmp_path / locking.LOCK_NAME).exists()
    assert not (tmp_path / locking.LOCK_NAME).exists()


@pytest.mark.parametrize("kind, runs_again", [("busy", True), ("input", False)])
def test_a_case_stopped_by_a_file_open_elsewhere_runs_again(kind, runs_again, tmp_path):
    """A file held open (Windows) was reported as bad input, which a batch never redoes while the case is unchanged:
    'close it and run again' then skipped the case (review). Its worker says 'busy'; that case runs again."""
    from MultimodalRegistrationLib.core.errors import EXIT_INPUT, FileInUseError
    from MultimodalRegistrationLib.process.worker_side import run_one

    events = []

    def held(job, emit):
        raise FileInUseError("cannot replace or move qa.html: close it where it is open (Excel, a viewer) and run again")

    job = CaseJob(case="c1", fixed="f.nrrd", moving="m.nrrd", output_transform=str(tmp_path / "c1" / "transform.h5"))
    assert run_one(CaseJob, held, job.to_json(), events.append) == EXIT_INPUT and events[0]["kind"] == "busy"
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / DONE).write_text(json.dumps(CaseRecord("c1", "failed", "the hash", 3.0, kind).to_dict()))
    assert (batch._is_done(job, "the hash") is None) == runs_again


def test_a_full_disk_is_named_not_called_a_bug_and_the_case_runs_again(tmp_path):
    """A helper's cohort on a full disk: each case was recorded 'internal', "this is a bug: report it"."""
    import errno

    from MultimodalRegistrationLib.core.errors import EXIT_ENGINE
    from MultimodalRegistrationLib.process.worker_side import run_one

    events = []

    def full(job, emit):
        raise OSError(errno.ENOSPC, "No space left on device")

    job = CaseJob(case="c1", fixed="f.nrrd", moving="m.nrrd", output_transform=str(tmp_path / "c1" / "transform.h5"))
    assert run_one(CaseJob, full, job.to_json(), events.append) == EXIT_ENGINE
    assert events[0]["kind"] == "disk" and events[0]["message"].startswith("the disk is full: ")
    assert "bug" not in events[0]["hint"] and "free some space" in events[0]["hint"]
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / DONE).write_text(json.dumps(CaseRecord("c1", "failed", "the hash", 3.0, "disk").to_dict()))
    assert batch._is_done(job, "the hash") is None  # runs again once there is room


def test_running_out_of_memory_is_named_not_called_a_bug_and_the_case_runs_again(tmp_path):
    """numpy's MemoryError under a batch job's memory limit had read "this is a bug: report it with the traceback"
    (a helper's sweep): it says what to do instead, and a resumed batch tries the case again."""
    import numpy as np
    from MultimodalRegistrationLib.core.errors import EXIT_ENGINE
    from MultimodalRegistrationLib.process.worker_side import run_one

    events = []

    def large(job, emit):
        return np.zeros(2**62, np.uint8)  # more than any machine: numpy raises MemoryError

    job = CaseJob(case="c1", fixed="f.nrrd", moving="m.nrrd", output_transform=str(tmp_path / "c1" / "transform.h5"))
    assert run_one(CaseJob, large, job.to_json(), events.append) == EXIT_ENGINE
    assert events[0]["kind"] == "memory" and events[0]["message"].startswith("out of memory")
    assert "bug" not in events[0]["hint"] and "--downsample-to auto" in events[0]["hint"]
    assert "traceback" not in events[0]
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / DONE).write_text(json.dumps(CaseRecord("c1", "failed", "the hash", 3.0, "memory").to_dict()))
    assert batch._is_done(job, "the hash") is None


def test_a_case_whose_earlier_result_is_held_open_is_recorded_busy_and_the_batch_goes_on(tmp_path, monkeypatch):
    """A case file held open (Windows) when its rerun set the earlier result aside stopped the whole batch with exit 2
    (review): the case is recorded 'busy', its earlier result left as it was, and the next run redoes it."""
    from test_user_files_kept import held_open_by_another_program

    folder = tmp_path / "c1"
    folder.mkdir()
    files = {"transform.h5": "earlier transform", "qa.html": "earlier report",
             DONE: json.dumps(CaseRecord("c1", "ok", "earlier hash", 12.5, attempts=1).to_dict())}  # fmt: skip
    for name, text in files.items():
        (folder / name).write_text(text)
    held_open_by_another_program(monkeypatch, lambda source: source.name == "qa.html")
    job = CaseJob(case="c1", fixed="f.nrrd", moving="m.nrrd", output_transform=str(folder / "transform.h5"))
    record = CaseRecord.from_dict(batch.execute_case(job.to_json(), "new hash"))
    assert (record.status, record.kind, record.hash) == ("failed", "busy", "new hash") and "qa.html" in record.message
    assert {p.name: p.read_text() for p in folder.iterdir()} == files
    assert batch._is_done(job, "new hash") is None  # runs again


def test_batch_help_names_every_column_a_manifest_takes():
    """mmreg batch --help lists its columns without importing the manifest reader; they must not drift apart."""
    from MultimodalRegistrationLib.cli.batch import OPTIONAL_COLUMNS
    from MultimodalRegistrationLib.process.manifest import COLUMNS, REQUIRED

    assert sorted(REQUIRED + OPTIONAL_COLUMNS) == sorted(COLUMNS) and len(set(OPTIONAL_COLUMNS)) == len(OPTIONAL_COLUMNS)


def _stopped_after_first(monkeypatch, execute, release: threading.Event, names: tuple) -> list[str]:
    """Run ``names`` on 2 local workers with ``execute`` as the case runner, Ctrl-C once "first" is heard (the stop
    sets ``release``); the cases heard, in order."""
    heard_cases: list[str] = []

    def heard(record: CaseRecord) -> None:
        heard_cases.append(record.case)
        if record.case == "first":
            raise KeyboardInterrupt

    monkeypatch.setattr(batch, "execute_case", execute)
    monkeypatch.setattr(batch, "stop_workers", release.set)
    jobs = [(CaseJob(case=name, fixed="f.nrrd", moving="m.nrrd", output_transform=f"{name}/T.h5"), "x")
            for name in names]  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        batch._run_local(jobs, 2, None, None, heard, lambda case: None)
    return heard_cases


def test_a_stopped_batch_waits_for_its_running_case_only_and_counts_one_that_ended_meanwhile(monkeypatch):
    """Queued cases are cancelled by the stop, and concurrent.futures.wait never counts a cancelled future done:
    every Ctrl-C with cases queued waited out RESTORE_WAIT_S (10.7 s in a helper's sweep). A case that ended in
    the stop's grace was kept on disk but not counted in what the stop said ("after 0 of 5", one had ended)."""
    import time

    release = threading.Event()

    def execute(job: dict, digest: str, *rest) -> dict:
        if job["case"] == "first":
            return {"case": "first", "status": "ok", "hash": digest}
        release.wait(5.0)  # the running case: it ends once the batch is told to stop its workers
        return {"case": job["case"], "status": "ok", "hash": digest}

    monkeypatch.setattr(batch, "RESTORE_WAIT_S", 60.0)
    started = time.perf_counter()
    heard_cases = _stopped_after_first(monkeypatch, execute, release, ("first", "second", "third", "fourth", "fifth"))
    assert time.perf_counter() - started < 30.0  # not the 60 s wait on the cancelled cases
    # "second" was running when the stop came, and ended in its grace; "third" may have started too (a worker freed
    # by "first" can take it before the stop cancels the queue); the last two were cancelled, never run.
    assert heard_cases[:2] == ["first", "second"] and heard_cases[2:] in ([], ["third"])


def test_a_case_stopped_and_put_back_is_not_heard_as_ended(monkeypatch):
    """A case stopped with the batch whose earlier result was put back returned that record, and the stop read
    "[2/7] good1: ok (1.9 s)" and "after 2 of 7 cases" though it had not run again (a helper's batch sweep)."""
    release = threading.Event()

    def execute(job: dict, digest: str, *rest) -> dict:
        if job["case"] == "first":
            return {"case": "first", "status": "ok", "hash": digest}
        release.wait(5.0)  # stopped with the batch: its earlier result is put back, as execute_case does
        batch._restored.add(job["case"])
        return {"case": job["case"], "status": "ok", "hash": digest, "seconds": 1.9}

    assert _stopped_after_first(monkeypatch, execute, release, ("first", "second", "third")) == ["first"]


def test_a_guided_case_runs_no_intensity_only_restarts_and_says_so(tmp_path, monkeypatch):
    """--stability re-registers on the intensities alone: a guided MR -> TRUS case read 'unstable: 10.7 mm' against
    its own guided result (a helper's batch sweep). A guided case skips them, with a note; its verdict stands."""
    from MultimodalRegistrationLib.process import case_job, stability
    from trus_data import trus_pair, write_trus_pair

    files = write_trus_pair(trus_pair(101), tmp_path / "case")
    monkeypatch.setattr(stability, "_run_jobs", lambda *arguments: pytest.fail("restarts ran"))
    job = CaseJob(case="trus", fixed=str(files["fixed"]), moving=str(files["moving"]),
                  fixed_segmentation=str(files["fixed_labels"]), moving_segmentation=str(files["moving_labels"]),
                  fixed_points=str(files["landmarks_fixed"]), moving_points=str(files["landmarks_moving"]),
                  output_transform=str(tmp_path / "out" / "T.h5"), stability=2)  # fmt: skip
    result = case_job.run_case_job(job, lambda event: None)
    assert result.qa.stability is None
    assert any(w.startswith("no stability restarts: they register on the intensities alone") for w in result.qa.warnings)
    assert result.qa.landmarks.tre_after.median_mm < 6.0


@pytest.mark.parametrize("options, said", [({"workers": -1}, "--workers -1: give 1 or more"),
                                           ({"workers": 0}, "--workers 0: give 1 or more"),
                                           ({"timeout_s": 0}, "--timeout 0 s: give a positive number"),
                                           ({"defaults": {"stability": -1}}, "--stability -1: give the number")])  # fmt: skip
def test_run_batch_checks_its_options_as_mmreg_batch_does(tmp_path, options, said):
    """From Python, workers=-1 raised a raw ValueError, workers=0 used the default, timeout_s=0 timed out every case
    and stability=-1 failed each case after its registration (a helper's batch sweep)."""
    with pytest.raises(InputError, match=re.escape(said)):
        batch.run_batch(tmp_path / "cases.csv", tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()
