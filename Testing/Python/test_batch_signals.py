"""The Slicer batch script stopped by a signal exits and reports as `mmreg batch` does, and the case it
stopped is recorded as cancelled (not as a crash blaming memory), with nothing else left in its folder."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from MultimodalRegistrationLib.process.worker import library_root
from test_signals import workers_in

SCRIPT = Path(__file__).resolve().parents[2] / "Resources" / "Scripts" / "slicer_batch.py"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker")


@pytest.mark.slow
def test_sigterm_stops_the_slicer_batch_script_as_it_stops_mmreg_batch(pair_files, tmp_path):
    """The script was killed by SIGTERM with no word (exit -15, an empty case folder) and ended Ctrl-C with a
    traceback and exit 1."""
    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"case,fixed,moving\nc1,{pair_files / 'ct.nrrd'},{pair_files / 'mr.nrrd'}\n")
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--", str(manifest), "--engine", "ants", "--workers", "1", "--output-dir",
         str(out)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(library_root()), TMPDIR=str(scratch)),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not workers_in(scratch) and process.poll() is None:
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.05)
    time.sleep(3.0)  # the case is running
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=30)
    assert process.returncode == 143, error
    assert "terminated after 0 of 1 cases" in error and "run the same command again to resume" in error, error
    assert "Traceback" not in error
    record = json.loads((out / "c1" / "case.json").read_text())
    assert (record["status"], record["kind"]) == ("failed", "cancelled"), record
    assert "memory" not in record["message"]
    assert sorted(path.name for path in (out / "c1").iterdir()) == ["case.json"]
    assert not (out / "batch.csv").exists() and workers_in(scratch) == []
