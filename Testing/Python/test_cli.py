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


class Started:
    """``mmreg`` started in the background (its output to files, so that no pipe fills); :meth:`wait` gives what
    :func:`mmreg` gives."""

    def __init__(self, folder: Path, *arguments, cwd=None):
        self.command = [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", *map(str, arguments)]
        self.stdout, self.stderr = folder / "mmreg-stdout.txt", folder / "mmreg-stderr.txt"
        environment = dict(os.environ, PYTHONPATH=str(library_root()))
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=err, env=environment, cwd=cwd)

    def wait(self) -> subprocess.CompletedProcess:
        self.process.wait(timeout=600)
        return subprocess.CompletedProcess(
            self.command, self.process.returncode, self.stdout.read_text(), self.stderr.read_text()
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _start_register(folder: Path, small_pair) -> Started:
    write_image(small_pair.fixed, folder / "ct.nrrd")
    write_image(small_pair.moving, folder / "mr.nii.gz")
    return Started(
        folder, "register", "--fixed", folder / "ct.nrrd", "--moving", folder / "mr.nii.gz",
        "--output-transform", folder / "T.h5", "--output-volume", folder / "R.nrrd",  # the summary goes to T.json
    )  # fmt: skip


def _start_failing(folder: Path, small_pair) -> Started:
    """A preset that elastix refuses, with the log kept: two tests read this one run."""
    write_image(small_pair.fixed, folder / "ct.nrrd")
    write_image(small_pair.moving, folder / "mr.nrrd")
    broken = folder / "broken.txt"
    # a metric elastix has no component for, named as mutual information (the checks refuse any other metric)
    broken.write_text('(Transform "EulerTransform")\n(Metric "NoSuchMutualInformation")\n')
    return Started(
        folder, "register", "--fixed", folder / "ct.nrrd", "--moving", folder / "mr.nrrd", "--preset", broken,
        "--output-transform", folder / "T.h5", "--keep-log",
    )  # fmt: skip


def _start_demo(folder: Path, small_pair) -> Started:
    return Started(folder, "demo", "--output-dir", "demo", cwd=folder)  # relative, as `make demo` gives it


def _start_prep(folder: Path, small_pair) -> Started:
    from test_prep import _whole_body_ct

    write_image(_whole_body_ct(), folder / "body_ct.nrrd")
    write_image(small_pair.moving, folder / "head_mr.nrrd")
    return Started(
        folder, "register", "--fixed", "body_ct.nrrd", "--moving", "head_mr.nrrd", "--prep",
        "--output-transform", "T.h5", "--output-volume", "R.nrrd", "--json", "s.json", cwd=folder,
    )  # fmt: skip


# The runs that register, and the tests that read them.
RUNS = {
    "register": (_start_register, ["test_register_writes_a_transform_that_simpleitk_resamples_with"]),
    "failing": (
        _start_failing, ["test_engine_failure_exits_1_with_a_hint", "test_a_failed_run_keeps_the_engine_log_when_asked"]
    ),
    "demo": (_start_demo, ["test_demo_runs_end_to_end"]),
    "prep": (_start_prep, ["test_register_with_prep_crops_on_the_fly_and_resamples_onto_the_full_fixed_grid"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def runs(request, small_pair, tmp_path_factory):
    """Every run of RUNS whose tests are to run, started together with the first of them: each is mostly its
    worker's start (interpreter, library and elastix imports, one thread) and a short registration, so they go side by side, not one
    after the other. Returns {run: (its folder, the run)}; each test waits for its own."""
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    started = {}
    try:
        for name, (start, tests) in RUNS.items():
            if selected & set(tests):
                folder = tmp_path_factory.mktemp(name)
                started[name] = (folder, start(folder, small_pair))
        yield started
    finally:
        for _, run in started.values():
            run.stop()


@pytest.mark.slow
def test_register_writes_a_transform_that_simpleitk_resamples_with(small_pair, runs):
    tmp_path, run = runs["register"]
    run = run.wait()
    assert run.returncode == 0, run.stderr
    assert "wrote transform" in run.stdout and "%" in run.stderr  # plain progress lines off a terminal
    assert re.search(r"started from the pose search \(\d+ deg and \d+ mm from the image centres; search [\d.]+ s over \d+ poses"
                     r"; also tried the headers' pose \(the scanner alignment\)\)", run.stdout)  # fmt: skip
    transform = sitk.ReadTransform(str(tmp_path / "T.h5"))
    error = mean_error_mm(Transform(transform), small_pair.truth, small_pair.head_points)
    assert error < 0.5
    # The contract: Resample(moving, fixed, ReadTransform(T)) puts the moving image on the fixed one.
    expected = sitk.Resample(sitk.ReadImage(str(tmp_path / "mr.nii.gz")), small_pair.fixed, transform, sitk.sitkLinear, 0.0)
    written = sitk.ReadImage(str(tmp_path / "R.nrrd"))
    assert written.GetSize() == small_pair.fixed.GetSize()
    inside = sitk.GetArrayViewFromImage(expected) > 0
    assert np.allclose(sitk.GetArrayViewFromImage(written)[inside], sitk.GetArrayViewFromImage(expected)[inside], atol=1e-3)
    assert f"wrote summary: {tmp_path / 'T.json'}" in run.stdout  # without --json, beside the transform
    summary = json.loads((tmp_path / "T.json").read_text())
    assert summary["metric"]["after"] > summary["metric"]["before"]
    assert summary["provenance"]["fixed"]["source"] == str(tmp_path / "ct.nrrd")
    assert summary["provenance"]["preset_sha256"] and "mmreg register" in summary["provenance"]["command"]
    assert summary["provenance"]["init"] == "auto" and summary["provenance"]["any_pose"]["candidates"] >= 800


def test_init_options_reach_the_worker_job(tmp_path):
    import SimpleITK as sitk
    from MultimodalRegistrationLib.cli.main import build_parser, job_from_arguments
    from MultimodalRegistrationLib.core.choices import INIT_METHODS

    for name in ("fixed.nrrd", "moving.nrrd"):  # the pre-flight reads the headers
        sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkFloat32), str(tmp_path / name))
    common = ["register", "--fixed", tmp_path / "fixed.nrrd", "--moving", tmp_path / "moving.nrrd", "--output-transform", "T.h5"]
    job = job_from_arguments(build_parser().parse_args(map(str, common + ["--init", "any-pose", "--max-rotation-deg", "30"])))
    assert job.init == "any-pose" and job.max_rotation_deg == 30.0
    assert job_from_arguments(build_parser().parse_args(map(str, common))).init == "auto"
    assert set(INIT_METHODS) == {"auto", "any-pose", "moments", "geometry", "none"}
    run = mmreg(*common, "--init", "everywhere")
    assert run.returncode == 2 and "any-pose" in run.stderr


def test_a_written_result_records_how_it_was_made_without_json(tmp_path):
    from MultimodalRegistrationLib.cli.main import build_parser, job_from_arguments
    from MultimodalRegistrationLib.process.beside import copy_summary_beside

    for name in ("fixed.nrrd", "moving.nrrd"):
        sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkFloat32), str(tmp_path / name))
    common = ["register", "--fixed", tmp_path / "fixed.nrrd", "--moving", tmp_path / "moving.nrrd"]

    def summary(*more):
        return job_from_arguments(build_parser().parse_args(map(str, common + list(more)))).summary

    assert summary("--output-transform", tmp_path / "T.h5") == str(tmp_path / "T.json")
    beside_tfm = summary("--output-transform", tmp_path / "T.tfm", "--output-volume", tmp_path / "R.nii.gz")
    assert beside_tfm == str(tmp_path / "T.json")
    assert summary("--output-transform", tmp_path / "T.h5", "--json", tmp_path / "s.json") == str(tmp_path / "s.json")
    assert summary("--output-transform", tmp_path / "T.h5", "--json", "-") == str(tmp_path / "T.json")  # and printed
    # --json elsewhere: once the run has written it, the same record goes beside the transform too, replacing an
    # earlier run's (a reviewer's walkthrough: the old T.json had stayed beside the new T.h5, naming another image).
    elsewhere = job_from_arguments(build_parser().parse_args(map(str, common + [
        "--output-transform", tmp_path / "T.h5", "--json", tmp_path / "s.json"])))  # fmt: skip
    (tmp_path / "T.json").write_text('{"moving": "an earlier run\'s"}')
    (tmp_path / "s.json").write_text('{"moving": "this run\'s"}')
    assert copy_summary_beside(elsewhere) == str(tmp_path / "T.json")
    assert (tmp_path / "T.json").read_text() == (tmp_path / "s.json").read_text()
    points = tmp_path / "T.json"  # an input of that name is never overwritten: no summary then
    points.write_text('{"@schema": "x", "markups": []}')
    assert summary("--output-transform", tmp_path / "T.h5", "--fixed-points", points, "--moving-points", points) is None


def test_bad_input_exits_2_with_the_fix(tmp_path):
    flat = sitk.Image([2160, 8, 8], sitk.sitkUInt8)
    flat[0, 0, 0] = 1
    write_image(flat, tmp_path / "stack.nrrd")
    write_image(flat, tmp_path / "other.nrrd")  # not the same file: that is refused for itself
    run = mmreg("register", "--fixed", tmp_path / "stack.nrrd", "--moving", tmp_path / "other.nrrd", "--output-transform", tmp_path / "T.h5")
    assert run.returncode == 2
    assert "set the true spacing" in run.stderr
    assert not (tmp_path / "T.h5").exists()
    missing = mmreg("register", "--fixed", tmp_path / "nope.nrrd", "--moving", tmp_path / "stack.nrrd", "--output-transform", tmp_path / "T.h5")
    assert missing.returncode == 2 and "not found" in missing.stderr


@pytest.mark.slow
def test_engine_failure_exits_1_with_a_hint(runs):
    folder, run = runs["failing"]
    run = run.wait()
    assert run.returncode == 1, run.stderr
    assert "elastix failed" in run.stderr and "hint:" in run.stderr
    assert not (folder / "T.h5").exists() and not (folder / "T.json").exists()


@pytest.mark.slow
def test_a_failed_run_keeps_the_engine_log_when_asked(runs):
    folder, run = runs["failing"]
    run = run.wait()
    assert run.returncode == 1, run.stderr
    assert f"engine log: {folder / 'T.log'}" in run.stderr
    log = (folder / "T.log").read_text()
    assert "NoSuchMutualInformation" in log and "(failed)" in log
    assert not (folder / "T.h5").exists()


@pytest.mark.slow
def test_demo_runs_end_to_end(runs):
    tmp_path, run = runs["demo"]  # mmreg demo --output-dir demo, run in tmp_path
    run = run.wait()
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["demo"]["mean_error_mm"] < 0.5 and summary["demo"]["start_mean_error_mm"] > 30
    picture = sitk.ReadImage(str(tmp_path / "demo" / "checkerboard_before_after.png"))
    assert picture.GetWidth() > 300 and picture.GetHeight() > 200
    assert "mean error" in run.stdout
    # The record beside the transform too, as mmreg register writes it (an earlier run's had stayed there).
    assert json.loads((tmp_path / "demo" / "transform.json").read_text()) == summary
    # A nonlinear preset is held to 2 mm, not 1: the rigid truth leaves its freedom unused (deformable ended 1.13 mm
    # and the demo had always exited 1; a helper's sweep).
    from MultimodalRegistrationLib.cli.demo import expected_error_mm

    assert expected_error_mm("elastix", "rigid") == expected_error_mm("ants", "affine") == 1.0
    assert expected_error_mm("elastix", "deformable") == expected_error_mm("ants", "deformable") == 2.0


def test_presets_are_listed_with_descriptions():
    run = mmreg("presets")
    assert run.returncode == 0
    lines = run.stdout.strip().splitlines()
    assert {line.split()[0] + " " + line.split()[1] for line in lines} >= {
        "elastix rigid", "elastix affine", "elastix deformable", "ants rigid", "ants affine", "ants deformable",
    }  # fmt: skip
    assert all(len(line.split()) > 4 for line in lines)
    # each with its files (to copy for a custom preset) and whether its result is linear (a helper's preset sweep)
    by_name = {" ".join(line.split()[:2]): line for line in lines}
    assert by_name["elastix rigid"].endswith("[linear; elastix/rigid.txt]")
    assert "[nonlinear: write it to .h5; elastix/rigid.txt, elastix/affine.txt, elastix/bspline.txt]" in by_name[
        "elastix deformable"]
    # read by a reader that stops early (`| head -1`): no traceback, exit 0
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    process = subprocess.Popen([sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "presets"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)  # fmt: skip
    process.stdout.close()
    assert process.wait(timeout=60) == 0 and b"Traceback" not in process.stderr.read()


@pytest.mark.slow
def test_register_with_prep_crops_on_the_fly_and_resamples_onto_the_full_fixed_grid(small_pair, runs):
    tmp_path, run = runs["prep"]  # registers body_ct.nrrd (the whole-body CT of test_prep) and head_mr.nrrd
    run = run.wait()
    assert run.returncode == 0, run.stderr[-2000:]
    assert mean_error_mm(Transform.read(tmp_path / "T.h5"), small_pair.truth, small_pair.head_points) < 1.0
    ct = sitk.ReadImage(str(tmp_path / "body_ct.nrrd"))
    assert sitk.ReadImage(str(tmp_path / "R.nrrd")).GetSize() == ct.GetSize()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["prep"]["steps"][0]["step"] == "crop"


def test_a_stopped_command_names_only_outputs_that_are_there(tmp_path, monkeypatch):
    """A stopped `mmreg qa --stability 3` said "its outputs were written first (/tmp/mmreg-stability-.../start-0.h5,
    ...)": its restarts' files, moved into place in a scratch folder removed since (a helper's sweep)."""
    from MultimodalRegistrationLib.cli.main import _what_was_written
    from MultimodalRegistrationLib.core import files

    kept = tmp_path / "T.h5"
    kept.write_text("x")
    monkeypatch.setattr(files, "_COMMITTED", [tmp_path / "gone" / "start-0.h5"])
    assert _what_was_written() == "nothing was written"
    monkeypatch.setattr(files, "_COMMITTED", [tmp_path / "gone" / "start-0.h5", kept])
    assert _what_was_written() == f"its outputs were written first ({kept})"


def test_the_record_beside_the_transform_never_replaces_a_file_the_run_reads(tmp_path):
    """An ANTs preset my.json beside --output-transform my.h5 had been replaced by the run's record (exit 0; the
    next run with that preset failed on 'unknown key'); a folder named T.json had stopped the run with a traceback
    after the engine (a helper's sweep). Neither gets a record beside the transform; other runs do."""
    from MultimodalRegistrationLib.process.beside import summary_beside
    from MultimodalRegistrationLib.process.jobs import RegistrationJob

    preset = tmp_path / "my.json"
    preset.write_text("{}")
    job = RegistrationJob(fixed="f.nrrd", moving="m.nrrd", engine="ants", preset=str(preset),
                          output_transform=str(tmp_path / "my.h5"))  # fmt: skip
    assert summary_beside(job) is None
    (tmp_path / "T.json").mkdir()

    def beside(name: str) -> str | None:
        return summary_beside(RegistrationJob(fixed="f.nrrd", moving="m.nrrd", output_transform=str(tmp_path / name)))

    assert beside("T.h5") is None and beside("R.h5") == str(tmp_path / "R.json")


def test_a_json_record_for_a_reader_that_closed_standard_output_warns_and_exits_0(tmp_path):
    """`mmreg ... --json - | true`: the outputs were written, then a BrokenPipeError traceback and exit 1 (a helper's
    sweep). Now the outputs stay, a warning says the record was not printed, and the exit code is 0."""
    points = tmp_path / "f.csv"
    points.write_text("label,r,a,s\n" + "".join(f"P{i},{10 * i},{5 * (i % 3)},{7 * (i % 2)}\n" for i in range(5)))
    points.with_name("m.csv").write_text(points.read_text().replace(",0\n", ",1\n"))  # not the same bytes (refused)
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    process = subprocess.Popen(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "prealign", "--fixed-points", str(points),
         "--moving-points", str(points.with_name("m.csv")), "--output-transform", str(tmp_path / "T.tfm"), "--json",
         "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, text=True,
    )  # fmt: skip
    process.stdout.close()  # the reader gone before the record is printed
    error = process.stderr.read()
    assert process.wait(timeout=120) == 0, error
    assert "Traceback" not in error and "the JSON record was not printed" in error
    assert (tmp_path / "T.tfm").is_file()


def test_a_ctrl_c_while_the_commands_load_ends_with_one_line_not_a_traceback(monkeypatch, capsys):
    """Ctrl-C in mmreg's first half second (the library loading, before main() handles it) had printed a
    traceback; it ends as a later stop does: exit 130 and what was written."""
    import importlib.abc

    import MultimodalRegistrationLib.cli as cli_package
    from MultimodalRegistrationLib.cli import entry

    class Interrupted(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "MultimodalRegistrationLib.cli.main":
                raise KeyboardInterrupt  # as SIGINT would, while the module loads
            return None

    monkeypatch.delitem(sys.modules, "MultimodalRegistrationLib.cli.main", raising=False)
    monkeypatch.delattr(cli_package, "main", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Interrupted(), *sys.meta_path])
    assert entry.main(["presets"]) == 130
    assert capsys.readouterr().err == "error: interrupted; nothing was written\n"
