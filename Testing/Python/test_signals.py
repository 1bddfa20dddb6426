"""Signals: mmreg stops its worker within a second, leaves no scratch folder and no output, and exits
130 after Ctrl-C (SIGINT) and 143 after SIGTERM or SIGHUP; a worker whose parent is killed stops too."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from MultimodalRegistrationLib.process.worker import library_root

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker")


def workers_in(folder: Path) -> list[int]:
    """Processes whose working folder lies under ``folder`` (the worker runs in its scratch folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(folder)):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _dispositions(ignored: tuple) -> None:
    """In the child before it runs mmreg: SIGHUP as a terminal session has it (the suite itself may run under nohup,
    which mmreg now respects), then ``ignored`` ignored."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    for one in ignored:
        signal.signal(one, signal.SIG_IGN)


MMREG = ("-m", "MultimodalRegistrationLib.cli.main")  # how the child Python starts mmreg


def start_and_wait_for_the_engine(pair_files, tmp_path, sigint_ignored: bool = False, ignored: tuple = (),
                                  mmreg: tuple = MMREG):  # fmt: skip
    """mmreg register with ANTs (slow enough to interrupt), returned once ANTs iterates; ``sigint_ignored``
    starts it as a parent that ignores SIGINT would (the disposition is inherited), ``ignored`` with those signals
    ignored (``nohup``: SIGHUP); ``mmreg``: the child Python's arguments that start mmreg."""
    ignored = (*ignored, signal.SIGINT) if sigint_ignored else ignored
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    environment = dict(os.environ, PYTHONPATH=str(library_root()), TMPDIR=str(scratch))
    process = subprocess.Popen(
        [sys.executable, *mmreg, "register", "--engine", "ants",
         "--fixed", str(pair_files / "ct.nrrd"), "--moving", str(pair_files / "mr.nrrd"),
         "--output-transform", str(tmp_path / "out" / "T.h5"), "--json", str(tmp_path / "out" / "s.json")],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment,
        preexec_fn=lambda: _dispositions(ignored),  # noqa: PLW1509 (only signal dispositions)
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    deadline = time.monotonic() + 180
    while not any("level" in line for line in lines) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any("ANTs rigid: level" in line for line in lines), "".join(lines)[-2000:]
    return process, scratch, lines


@pytest.mark.slow
@pytest.mark.parametrize("signal_number, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_mmreg_and_its_worker_within_a_second(pair_files, tmp_path, signal_number, code):
    process, scratch, lines = start_and_wait_for_the_engine(pair_files, tmp_path)
    assert workers_in(scratch), "the worker is not running"
    started = time.monotonic()
    process.send_signal(signal_number)
    assert process.wait(timeout=10) == code, "".join(lines)[-2000:]
    assert time.monotonic() - started < 1.5
    assert workers_in(scratch) == []
    assert list(scratch.iterdir()) == [], "a scratch folder was left behind"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_stops_mmreg_even_when_its_parent_ignored_sigint(pair_files, tmp_path):
    """Python keeps SIGINT ignored when it starts so (a pytest worker, some launchers); mmreg turns Ctrl-C
    back on. It once hung here until killed."""
    process, scratch, lines = start_and_wait_for_the_engine(pair_files, tmp_path, sigint_ignored=True)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130, "".join(lines)[-2000:]
    assert workers_in(scratch) == [] and list(scratch.iterdir()) == []


@pytest.mark.slow
def test_a_hangup_leaves_a_run_started_under_nohup_running(pair_files, tmp_path):
    """nohup ignores SIGHUP so that a logout leaves an overnight batch running; mmreg had put its own handler
    in place of that and stopped (exit 143, a helper's sweep). SIGTERM still stops it."""
    process, scratch, lines = start_and_wait_for_the_engine(pair_files, tmp_path, ignored=(signal.SIGHUP,))
    process.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert process.poll() is None and workers_in(scratch), "".join(lines)[-2000:]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 143
    assert workers_in(scratch) == []


@pytest.mark.slow
def test_a_worker_whose_parent_is_killed_stops_by_itself(pair_files, tmp_path):
    process, scratch, _ = start_and_wait_for_the_engine(pair_files, tmp_path)
    process.kill()  # SIGKILL: the parent cannot clean up
    process.wait(timeout=10)
    deadline = time.monotonic() + 2.0
    while workers_in(scratch) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers_in(scratch) == []
    assert not (tmp_path / "out" / "T.h5").exists()


# =========================================================================== issue 25: signals in the main process


@pytest.mark.slow
@pytest.mark.parametrize("signal_number, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_prep_n4_running_in_the_main_process(tmp_path, signal_number, code):
    """mmreg prep runs N4 in its own process: a signal stops it within an N4 iteration (seconds; the whole
    correction at this shrink factor takes minutes), exits 130 or 143 and writes nothing."""
    import numpy as np
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.images import write_image

    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in (100, 120, 120)], indexing="ij")
    array = (np.exp(-2 * (x**2 + y**2 + z**2)) * 800 + 100) * (1 + 0.3 * x)
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((1.5, 1.5, 1.5))
    for name in ("ct.nrrd", "mr.nrrd"):
        write_image(image, tmp_path / name)
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    process = subprocess.Popen(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "prep", "--fixed", str(tmp_path / "ct.nrrd"),
         "--moving", str(tmp_path / "mr.nrrd"), "--n4", "moving", "--n4-shrink", "1", "--modality-moving", "mr",
         "--output-dir", str(tmp_path / "out")],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    deadline = time.monotonic() + 120
    while not any("bias correction" in line for line in lines) and process.poll() is None:
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)
    time.sleep(1.0)  # inside N4
    process.send_signal(signal_number)
    assert process.wait(timeout=60) == code, "".join(lines)[-2000:]
    assert "nothing was written" in "".join(lines)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def terminated_batch(program: list[str], pair_files: Path, tmp_path: Path) -> tuple[int, str, Path]:
    """A one-case ANTs batch run by ``program`` (then the manifest and options) into ``tmp_path / "out"``, sent
    SIGTERM 2 s into its case: (exit code, standard error, the scratch folder its worker used)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"case,fixed,moving\nc1,{pair_files / 'ct.nrrd'},{pair_files / 'mr.nrrd'}\n")
    environment = dict(os.environ, PYTHONPATH=str(library_root()), TMPDIR=str(scratch))
    process = subprocess.Popen(
        [*program, str(manifest), "--engine", "ants", "--workers", "1", "--output-dir", str(tmp_path / "out")],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    # The case's own scratch folder: the worker has it (a loaded machine can take seconds to hand it over).
    while not list(scratch.glob("mmreg-job-*")) and process.poll() is None:
        assert time.monotonic() < deadline, "no case started"
        time.sleep(0.05)
    time.sleep(2.0)  # the case is running
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=30)
    return process.returncode, error, scratch


@pytest.mark.slow
def test_sigterm_stops_a_batch_at_once_and_says_what_is_kept(pair_files, tmp_path):
    """SIGTERM during a batch's only case: the case is stopped, not retried in a new worker (which took
    a whole case's time), exit 143, and the message says the ended cases are kept and how to resume."""
    code, error, scratch = terminated_batch(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "batch"], pair_files, tmp_path
    )
    assert code == 143, error
    assert "terminated after 0 of 1 cases" in error and "run the same command again to resume" in error, error
    assert not (tmp_path / "out" / "batch.csv").exists()
    assert workers_in(scratch) == []


KILLED_WHILE_DRAWING = """
import os, signal, sys
import SimpleITK as sitk
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.qa import assess
from MultimodalRegistrationLib.qa.assess import QAOptions, assess_registration, write_qa_outputs

def draw_then_die(folder, *args, **kwargs):
    drawn = real(folder, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

real, assess.write_qa_pictures = assess.write_qa_pictures, draw_then_die
image = sitk.GaussianSource(sitk.sitkFloat32, [32, 32, 32], [6, 6, 6], [16, 16, 16], 100.0)
report = assess_registration(image, image, Transform.identity(), QAOptions())
write_qa_outputs(report, image, image, Transform.identity(), sys.argv[1] + "/qa.html", sys.argv[1] + "/qa.json")
"""


def test_qa_pictures_of_a_process_killed_while_drawing_are_removed_as_its_other_partial_files(tmp_path):
    """A batch stopped while a case drew its QA pictures left their hidden staging folder in the case folder until
    the case was resumed (a helper's sweep): it is named by the process, as the other partial files are, so the
    worker's owner removes it once the process has died (what ``process.worker`` does for a stopped worker)."""
    from MultimodalRegistrationLib.core.files import PARTIAL_PREFIX, remove_orphans

    child = subprocess.run([sys.executable, "-c", KILLED_WHILE_DRAWING, str(tmp_path)], cwd=library_root(),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and any(left[0].iterdir()), left  # the pictures were drawn, nothing was moved into place
    assert remove_orphans(tmp_path, PARTIAL_PREFIX) == left
    assert not list(tmp_path.iterdir())
