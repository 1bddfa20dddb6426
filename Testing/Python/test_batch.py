"""The Slicer batch script (Resources/Scripts/slicer_register.py), run here on slicer-core's MRML."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")

from MultimodalRegistrationLib.core.images import write_image  # noqa: E402
from MultimodalRegistrationLib.core.phantom import mean_error_mm  # noqa: E402
from MultimodalRegistrationLib.core.transforms import Transform  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "Resources" / "Scripts" / "slicer_register.py"


@pytest.mark.slow
def test_batch_script_registers_files_and_exits_like_mmreg(small_pair, tmp_path):
    write_image(small_pair.fixed, tmp_path / "ct.nrrd")
    write_image(small_pair.moving, tmp_path / "mr.nrrd")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--fixed", str(tmp_path / "ct.nrrd"), "--moving", str(tmp_path / "mr.nrrd"),
         "--output-transform", str(tmp_path / "T.h5"), "--output-volume", str(tmp_path / "R.nrrd")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["provenance"]["engine"] == "elastix"
    assert mean_error_mm(Transform.read(tmp_path / "T.h5"), small_pair.truth, small_pair.head_points) < 0.5
    assert (tmp_path / "R.nrrd").exists()
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--fixed", str(tmp_path / "ct.nrrd"), "--moving", str(tmp_path / "missing.nrrd"),
         "--output-transform", str(tmp_path / "T2.h5")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "could not read" in bad.stderr.lower()


@pytest.mark.slow
def test_batch_script_prepares_writes_the_inverse_and_keeps_the_log(small_pair, tmp_path):
    write_image(small_pair.fixed, tmp_path / "ct.nrrd")
    write_image(small_pair.moving, tmp_path / "mr.nrrd")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--fixed", str(tmp_path / "ct.nrrd"), "--moving", str(tmp_path / "mr.nrrd"),
         "--output-transform", str(tmp_path / "T.h5"), "--output-inverse", str(tmp_path / "Tinv.h5"),
         "--crop-common", "--keep-log", "--json", str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [step["step"] for step in summary["prep"]["steps"]] == ["crop", "crop"]
    transform, inverse = Transform.read(tmp_path / "T.h5"), Transform.read(tmp_path / "Tinv.h5")
    assert mean_error_mm(transform, small_pair.truth, small_pair.head_points) < 0.5
    # The inverse brings moving points back onto the fixed points they came from (mm).
    moved = transform.transform_points(small_pair.head_points)
    assert abs(inverse.transform_points(moved) - small_pair.head_points).max() < 1e-6
    log = (tmp_path / "T.log").read_text()
    assert summary["outputs"]["log"] == str(tmp_path / "T.log") and "elastix" in log and "from the" in log
