"""The Slicer batch script stopped by a signal exits and reports as `mmreg batch` does, and the case it
stopped is recorded as cancelled (not as a crash blaming memory), with nothing else left in its folder."""

import json
import sys
from pathlib import Path

import pytest
from test_signals import terminated_batch, workers_in

SCRIPT = Path(__file__).resolve().parents[2] / "Resources" / "Scripts" / "slicer_batch.py"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker")


@pytest.mark.slow
def test_sigterm_stops_the_slicer_batch_script_as_it_stops_mmreg_batch(pair_files, tmp_path):
    """The script was killed by SIGTERM with no word (exit -15, an empty case folder) and ended Ctrl-C with a
    traceback and exit 1."""
    out = tmp_path / "out"
    code, error, scratch = terminated_batch([sys.executable, str(SCRIPT), "--"], pair_files, tmp_path)
    assert code == 143, error
    assert "terminated after 0 of 1 cases" in error and "run the same command again to resume" in error, error
    assert "Traceback" not in error
    record = json.loads((out / "c1" / "case.json").read_text())
    assert (record["status"], record["kind"]) == ("failed", "cancelled"), record
    assert "memory" not in record["message"]
    assert sorted(path.name for path in (out / "c1").iterdir()) == ["case.json"]
    assert not (out / "batch.csv").exists() and workers_in(scratch) == []
