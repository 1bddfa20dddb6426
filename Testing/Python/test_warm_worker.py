"""The warm worker: engines imported once for job after job; a cancelled job costs only its worker."""

import os
import sys
import time

import pytest
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm
from MultimodalRegistrationLib.core.processes import tree_alive
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.process.jobs import RegistrationJob
from MultimodalRegistrationLib.process.warm_worker import WarmWorker
from MultimodalRegistrationLib.process.worker import WorkerFailure


@pytest.fixture(scope="module")
def coarse_pair(tmp_path_factory):
    pair = make_phantom_pair(ct_spacing=(3.0, 3.0, 3.0), mr_spacing=(3.0, 3.0, 3.0))
    folder = tmp_path_factory.mktemp("coarse")
    write_image(pair.fixed, folder / "ct.nrrd")
    write_image(pair.moving, folder / "mr.nrrd")
    return pair, folder


def _job(folder, out, name, **options) -> RegistrationJob:
    return RegistrationJob(
        fixed=str(folder / "ct.nrrd"), moving=str(folder / "mr.nrrd"), init="geometry",
        output_transform=str(out / f"{name}.h5"), **options,
    )  # fmt: skip


@pytest.mark.slow
def test_three_jobs_in_a_row_import_the_engine_once(coarse_pair, tmp_path):
    pair, folder = coarse_pair
    worker = WarmWorker(engines=())
    try:
        infos, errors = [], []
        for name in ("a", "b", "c"):
            job = worker.run(_job(folder, tmp_path, name))
            job.wait(timeout=300)
            infos.append(job.worker_info)
            errors.append(mean_error_mm(Transform.read(tmp_path / f"{name}.h5"), pair.truth, pair.head_points))
        assert [info["imported_now"] for info in infos] == [["elastix"], [], []]
        assert len({info["pid"] for info in infos}) == 1 and [info["jobs"] for info in infos] == [1, 2, 3]
        assert max(errors) < 1.0, errors
        assert errors[0] == errors[1] == errors[2], "the same job in a warm worker must give the same transform"
    finally:
        worker.stop()
    assert not worker.process.folder.exists()


@pytest.mark.slow
def test_a_cancelled_job_stops_its_worker_and_the_next_worker_runs(coarse_pair, tmp_path):
    pair, folder = coarse_pair
    worker = WarmWorker(engines=())
    job = worker.run(_job(folder, tmp_path, "cancelled", engine="ants"))
    deadline = time.monotonic() + 120
    while job.poll() and "level" not in job.stage and time.monotonic() < deadline:
        time.sleep(0.05)
    job.cancel()
    with pytest.raises(WorkerFailure, match="cancelled"):
        job.wait()
    assert not worker.alive and not worker.process.folder.exists()
    assert not (tmp_path / "cancelled.h5").exists()

    fresh = WarmWorker(engines=())
    try:
        fresh.run(_job(folder, tmp_path, "next")).wait(timeout=300)
    finally:
        fresh.stop()
    assert mean_error_mm(Transform.read(tmp_path / "next.h5"), pair.truth, pair.head_points) < 1.0


def test_bad_input_leaves_the_warm_worker_ready_for_the_next_job(coarse_pair, tmp_path):
    _, folder = coarse_pair
    worker = WarmWorker(engines=())
    try:
        missing = worker.run(_job(tmp_path, tmp_path, "missing"))
        with pytest.raises(WorkerFailure, match="not found"):
            missing.wait(timeout=60)
        # Refused before the engine: the job did not pay for its import.
        assert missing.worker_info["engines_loaded"] == [] and missing.worker_info["jobs"] == 1
        with pytest.raises(WorkerFailure, match="unknown elastix preset"):
            worker.run(_job(folder, tmp_path, "bad", preset="nonsense")).wait(timeout=60)
        assert worker.alive and not worker.busy and worker.jobs == 2
    finally:
        worker.stop()
    assert not worker.alive


def test_a_session_slot_hands_out_its_worker_once_and_refills_after_a_cancel(coarse_pair, tmp_path):
    from MultimodalRegistrationLib.process.warm_worker import WarmSlot

    _, folder = coarse_pair
    slot = WarmSlot(engines=())
    try:
        worker = slot.take()
        job = worker.run(_job(folder, tmp_path, "a", engine="ants"))
        assert slot.take() is None, "a busy worker must not take a second job"
        job.cancel()
        assert not worker.alive
        slot.refill()
        fresh = slot.take()
        assert fresh is not None and fresh is not worker and fresh.alive
        with pytest.raises(WorkerFailure, match="unknown elastix preset"):
            fresh.run(_job(folder, tmp_path, "bad", preset="nonsense")).wait(timeout=60)
        assert slot.take() is fresh
    finally:
        slot.stop()
    assert not fresh.alive


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for Slicer's PythonSlicer launcher")
def test_a_worker_started_through_a_launcher_runs_and_a_cancel_stops_the_interpreter_too(coarse_pair, tmp_path):
    """Slicer's PythonSlicer is a launcher that runs the interpreter as its child. The worker compared its parent's
    id with Slicer's and stopped at once (exit 143) in every Slicer run; and stopping the launcher alone would have
    left the engine running (audit)."""
    pair, folder = coarse_pair
    launcher = tmp_path / "PythonSlicer"
    launcher.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\nexit $?\n')
    launcher.chmod(0o755)
    worker = WarmWorker(python=str(launcher), engines=())
    try:
        worker.run(_job(folder, tmp_path, "through")).wait(timeout=300)
    finally:
        worker.stop()
    assert mean_error_mm(Transform.read(tmp_path / "through.h5"), pair.truth, pair.head_points) < 1.0

    worker = WarmWorker(python=str(launcher), engines=())
    job = worker.run(_job(folder, tmp_path, "cancelled", engine="ants"))
    deadline = time.monotonic() + 120
    while job.poll() and "level" not in job.stage and time.monotonic() < deadline:
        time.sleep(0.05)
    group = worker.process.popen.pid  # the launcher leads a process group of its own, the interpreter in it
    job.cancel()
    with pytest.raises(WorkerFailure, match="cancelled"):
        job.wait()
    time.sleep(0.2)
    assert not tree_alive(worker.process.popen), f"group {group} still runs"  # neither launcher nor interpreter


def test_a_stopped_worker_leaves_no_pipe_open_in_this_process():
    """A batch starts a worker per thread, and macOS lets a process hold 256 files: each pipe goes with its
    worker, not when Python collects the Popen."""
    workers = [WarmWorker(engines=()) for _ in range(2)]
    for worker in workers:
        worker.stop()
    deadline = time.monotonic() + 10
    pipes = [pipe for worker in workers for pipe in (worker.process.popen.stdin, worker.process.popen.stdout)]
    while not all(pipe.closed for pipe in pipes) and time.monotonic() < deadline:
        time.sleep(0.05)  # the reader thread closes stdout at its end of file
    assert [pipe.closed for pipe in pipes] == [True] * 4


def test_a_warm_worker_asked_for_an_engine_that_is_not_installed_still_runs_the_other(coarse_pair, tmp_path):
    """Slicer installs an engine when it is first chosen, so an ANTs user may have no itk-elastix; the session's
    warm worker imported elastix before its first job, died, and every Register click failed with 'No module named
    itk', also after the refill (GUI audit H1). A missing engine is skipped; the job that needs it says so."""
    pair, folder = coarse_pair
    blocker = tmp_path / "no_elastix"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoElastix:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('itk', 'itkConfig', 'itk_elastix'):\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\")\n"
        "sys.meta_path.insert(0, _NoElastix())\n"
    )
    python = tmp_path / "python-without-elastix"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={blocker}${{PYTHONPATH:+:$PYTHONPATH}} exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    worker = WarmWorker(python=str(python), engines=("elastix",))
    try:
        job = worker.run(_job(folder, tmp_path, "ants", engine="ants"))
        job.wait(timeout=300)
        assert job.worker_info["engines_loaded"] == ["ants"] and worker.alive
        error = mean_error_mm(Transform.read(tmp_path / "ants.h5"), pair.truth, pair.head_points)
        assert error < 1.0, f"{error:.2f} mm"
        with pytest.raises(WorkerFailure, match="itk"):
            worker.run(_job(folder, tmp_path, "elastix")).wait(timeout=300)
    finally:
        worker.stop()
