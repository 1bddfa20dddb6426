"""The Slicer batch script (Resources/Scripts/slicer_register.py), run here on slicer-core's MRML."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")

from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.core.transforms import Transform

SCRIPT = Path(__file__).resolve().parents[2] / "Resources" / "Scripts" / "slicer_register.py"


@pytest.fixture(scope="module")
def script_run(small_pair, tmp_path_factory):
    """One run of the script with every output option: the two tests below read the same run, as each run pays
    the worker's engine import. It is given the "--" that Slicer's --python-script needs before the options."""
    folder = tmp_path_factory.mktemp("script")
    write_image(small_pair.fixed, folder / "ct.nrrd")
    write_image(small_pair.moving, folder / "mr.nrrd")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--fixed", str(folder / "ct.nrrd"), "--moving", str(folder / "mr.nrrd"),
         "--output-transform", str(folder / "T.h5"), "--output-volume", str(folder / "R.nrrd"),
         "--output-inverse", str(folder / "Tinv.h5"), "--crop-common", "--keep-log", "--json", str(folder / "s.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return folder, run


@pytest.mark.slow
def test_batch_script_registers_files_and_exits_like_mmreg(small_pair, script_run):
    folder, run = script_run
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((folder / "s.json").read_text())
    assert summary["provenance"]["engine"] == "elastix"
    assert f"wrote transform: {folder / 'T.h5'}" in run.stdout  # as mmreg register says it
    assert mean_error_mm(Transform.read(folder / "T.h5"), small_pair.truth, small_pair.head_points) < 0.5
    # Cropped for the registration, resampled onto the whole fixed grid.
    assert sitk.ReadImage(str(folder / "R.nrrd")).GetSize() == small_pair.fixed.GetSize()
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--fixed", str(folder / "ct.nrrd"), "--moving", str(folder / "missing.nrrd"),
         "--output-transform", str(folder / "T2.h5")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and f"moving file not found: {folder / 'missing.nrrd'}: check the path" in bad.stderr


@pytest.mark.slow
def test_batch_script_prepares_writes_the_inverse_and_keeps_the_log(small_pair, script_run):
    folder, run = script_run
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((folder / "s.json").read_text())
    assert [step["step"] for step in summary["prep"]["steps"]] == ["crop", "crop"]
    transform, inverse = Transform.read(folder / "T.h5"), Transform.read(folder / "Tinv.h5")
    assert mean_error_mm(transform, small_pair.truth, small_pair.head_points) < 0.5
    # The inverse brings moving points back onto the fixed points they came from (mm).
    moved = transform.transform_points(small_pair.head_points)
    assert abs(inverse.transform_points(moved) - small_pair.head_points).max() < 1e-6
    log = (folder / "T.log").read_text()
    assert "elastix" in log and "from the" in log
    # The files written where asked, not the worker's scratch copies (which are removed by now).
    assert summary["outputs"] == {"transform": str(folder / "T.h5"), "inverse": str(folder / "Tinv.h5"),
                                  "volume": str(folder / "R.nrrd"), "log": str(folder / "T.log")}  # fmt: skip
    # The command that repeats the run names the files given, not the scene's scratch copies (removed by now).
    command = summary["provenance"]["command"]
    assert f"--fixed {folder / 'ct.nrrd'}" in command and f"--moving {folder / 'mr.nrrd'}" in command


@pytest.mark.slow
def test_batch_script_registers_two_slides_as_mmreg_does(tmp_path):
    """On two 2D files the script had loaded a scene and ignored the 2D options: a slide given its pixel size (its
    file states none) ended 166 mm off with exit 0, written as a 3D transform (a helper's sweep). It now runs mmreg
    register's own path: the 2D transform and its 3D embedding, the same matrix, within a pixel of the truth."""
    import numpy as np
    import two_d_data as data

    points = data.mr_slice(tmp_path / "mr.nrrd", 1.0)
    truth = data.truth_of("rigid")
    data.he_section(tmp_path / "he.png", truth, 0.5)
    summaries = {}
    for name, command in (("script", [str(SCRIPT), "--"]), ("mmreg", ["-m", "MultimodalRegistrationLib.cli",
                                                                      "register"])):  # fmt: skip
        out = tmp_path / name
        run = subprocess.run(
            [sys.executable, *command, "--fixed", str(tmp_path / "mr.nrrd"), "--moving", str(tmp_path / "he.png"),
             "--moving-pixel-size", "0.5", "--output-transform", str(out / "T.tfm"), "--json", str(out / "S.json")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        assert sitk.ReadTransform(str(out / "T.tfm")).GetDimension() == 2 and (out / "T_3d.tfm").is_file()
        summaries[name] = json.loads((out / "S.json").read_text())
    assert summaries["script"]["pixel_mm"] == {"fixed": 1.0, "moving": 0.5}
    assert summaries["script"]["matrix"] == summaries["mmreg"]["matrix"]
    error = data.errors_mm(np.asarray(summaries["script"]["matrix"]), truth, points)
    assert error.mean() < 1.0  # within a fixed pixel
