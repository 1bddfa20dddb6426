"""`mmreg register` and `mmreg demo` end to end, with their exit codes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.process.worker import library_root


def mmreg(*arguments, cwd=None):
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    return subprocess.run(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", *map(str, arguments)],
        capture_output=True, text=True, env=environment, cwd=cwd, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_register_writes_a_transform_that_simpleitk_resamples_with(small_pair, tmp_path):
    write_image(small_pair.fixed, tmp_path / "ct.nrrd")
    write_image(small_pair.moving, tmp_path / "mr.nii.gz")
    run = mmreg(
        "register", "--fixed", tmp_path / "ct.nrrd", "--moving", tmp_path / "mr.nii.gz",
        "--output-transform", tmp_path / "T.h5", "--output-volume", tmp_path / "R.nrrd", "--json", tmp_path / "s.json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "wrote transform" in run.stdout and "%" in run.stderr  # plain progress lines off a terminal
    assert re.search(r"started from the pose search \(\d+ deg and \d+ mm from the image centres; search [\d.]+ s over \d+ poses\)", run.stdout)
    transform = sitk.ReadTransform(str(tmp_path / "T.h5"))
    error = mean_error_mm(Transform(transform), small_pair.truth, small_pair.head_points)
    assert error < 0.5
    # The contract: Resample(moving, fixed, ReadTransform(T)) puts the moving image on the fixed one.
    expected = sitk.Resample(sitk.ReadImage(str(tmp_path / "mr.nii.gz")), small_pair.fixed, transform, sitk.sitkLinear, 0.0)
    written = sitk.ReadImage(str(tmp_path / "R.nrrd"))
    assert written.GetSize() == small_pair.fixed.GetSize()
    inside = sitk.GetArrayViewFromImage(expected) > 0
    assert np.allclose(sitk.GetArrayViewFromImage(written)[inside], sitk.GetArrayViewFromImage(expected)[inside], atol=1e-3)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["metric"]["after"] > summary["metric"]["before"]
    assert summary["provenance"]["fixed"]["source"] == str(tmp_path / "ct.nrrd")
    assert summary["provenance"]["init"] == "auto" and summary["provenance"]["any_pose"]["candidates"] >= 800


def test_init_options_reach_the_worker_job(tmp_path):
    from MultimodalRegistrationLib.cli.main import build_parser, job_from_arguments
    from MultimodalRegistrationLib.core.choices import INIT_METHODS

    import SimpleITK as sitk

    for name in ("fixed.nrrd", "moving.nrrd"):  # the pre-flight reads the headers
        sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkFloat32), str(tmp_path / name))
    common = ["register", "--fixed", tmp_path / "fixed.nrrd", "--moving", tmp_path / "moving.nrrd", "--output-transform", "T.h5"]
    job = job_from_arguments(build_parser().parse_args(map(str, common + ["--init", "any-pose", "--max-rotation-deg", "30"])))
    assert job["init"] == "any-pose" and job["max_rotation_deg"] == 30.0
    assert job_from_arguments(build_parser().parse_args(map(str, common)))["init"] == "auto"
    assert set(INIT_METHODS) == {"auto", "any-pose", "moments", "geometry", "none"}
    run = mmreg(*common, "--init", "everywhere")
    assert run.returncode == 2 and "any-pose" in run.stderr


def test_bad_input_exits_2_with_the_fix(tmp_path):
    flat = sitk.Image([2160, 8, 8], sitk.sitkUInt8)
    flat[0, 0, 0] = 1
    write_image(flat, tmp_path / "stack.nrrd")
    run = mmreg("register", "--fixed", tmp_path / "stack.nrrd", "--moving", tmp_path / "stack.nrrd", "--output-transform", tmp_path / "T.h5")
    assert run.returncode == 2
    assert "set the true spacing" in run.stderr
    assert not (tmp_path / "T.h5").exists()
    missing = mmreg("register", "--fixed", tmp_path / "nope.nrrd", "--moving", tmp_path / "stack.nrrd", "--output-transform", tmp_path / "T.h5")
    assert missing.returncode == 2 and "not found" in missing.stderr


@pytest.mark.slow
def test_engine_failure_exits_1_with_a_hint(small_pair, tmp_path):
    write_image(small_pair.fixed, tmp_path / "ct.nrrd")
    write_image(small_pair.moving, tmp_path / "mr.nrrd")
    broken = tmp_path / "broken.txt"
    broken.write_text('(Transform "EulerTransform")\n(Metric "NoSuchMetric")\n')
    run = mmreg("register", "--fixed", tmp_path / "ct.nrrd", "--moving", tmp_path / "mr.nrrd", "--preset", broken, "--output-transform", tmp_path / "T.h5")
    assert run.returncode == 1, run.stderr
    assert "elastix failed" in run.stderr and "hint:" in run.stderr
    assert not (tmp_path / "T.h5").exists()


@pytest.mark.slow
def test_a_failed_run_keeps_the_engine_log_when_asked(small_pair, tmp_path):
    write_image(small_pair.fixed, tmp_path / "ct.nrrd")
    write_image(small_pair.moving, tmp_path / "mr.nrrd")
    broken = tmp_path / "broken.txt"
    broken.write_text('(Transform "EulerTransform")\n(Metric "NoSuchMetric")\n')
    run = mmreg("register", "--fixed", tmp_path / "ct.nrrd", "--moving", tmp_path / "mr.nrrd", "--preset", broken,
                "--output-transform", tmp_path / "T.h5", "--keep-log")  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert f"engine log: {tmp_path / 'T.log'}" in run.stderr
    log = (tmp_path / "T.log").read_text()
    assert "NoSuchMetric" in log and "(failed)" in log
    assert not (tmp_path / "T.h5").exists()


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    run = mmreg("demo", "--output-dir", "demo", cwd=tmp_path)  # relative, as `make demo` gives it
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["demo"]["mean_error_mm"] < 0.5 and summary["demo"]["start_mean_error_mm"] > 30
    picture = sitk.ReadImage(str(tmp_path / "demo" / "checkerboard_before_after.png"))
    assert picture.GetWidth() > 300 and picture.GetHeight() > 200
    assert "mean error" in run.stdout


def test_presets_are_listed_with_descriptions():
    run = mmreg("presets")
    assert run.returncode == 0
    lines = run.stdout.strip().splitlines()
    assert {line.split()[0] + " " + line.split()[1] for line in lines} >= {
        "elastix rigid", "elastix affine", "elastix deformable", "ants rigid", "ants affine", "ants deformable",
    }  # fmt: skip
    assert all(len(line.split()) > 4 for line in lines)


@pytest.mark.slow
def test_register_with_prep_crops_on_the_fly_and_resamples_onto_the_full_fixed_grid(small_pair, tmp_path):
    from test_prep import _whole_body_ct

    ct = _whole_body_ct()
    write_image(ct, tmp_path / "body_ct.nrrd")
    write_image(small_pair.moving, tmp_path / "head_mr.nrrd")
    run = mmreg(
        "register", "--fixed", "body_ct.nrrd", "--moving", "head_mr.nrrd", "--prep",
        "--output-transform", "T.h5", "--output-volume", "R.nrrd", "--json", "s.json", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert mean_error_mm(Transform.read(tmp_path / "T.h5"), small_pair.truth, small_pair.head_points) < 1.0
    assert sitk.ReadImage(str(tmp_path / "R.nrrd")).GetSize() == ct.GetSize()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["prep"]["steps"][0]["step"] == "crop"
