"""Reproducible runs: `mmreg --version`, `--json -`, and the recorded `mmreg register` command (process/command.py)
that repeats a registration bit for bit."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from MultimodalRegistrationLib.cli.main import build_parser
from MultimodalRegistrationLib.cli.prep import prep_options, wants_prep
from MultimodalRegistrationLib.core.version import __version__
from MultimodalRegistrationLib.prep.options import PrepOptions
from MultimodalRegistrationLib.process.command import register_arguments, register_command
from MultimodalRegistrationLib.process.jobs import RegistrationJob
from test_cli import mmreg


def _parsed(job: RegistrationJob):
    """The namespace mmreg's own parser makes of the command built for ``job``."""
    return build_parser().parse_args(register_arguments(job))


def test_a_plain_job_is_the_command_with_its_deciding_choices():
    job = RegistrationJob(fixed="/data/ct.nrrd", moving="/data/my mr.nii.gz", output_transform="/out/T.h5")
    command = register_command(job)
    assert command.startswith("mmreg register --fixed /data/ct.nrrd --moving '/data/my mr.nii.gz' --engine elastix")
    for choice in ("--preset rigid", "--init auto", f"--seed {job.seed}", "--output-transform /out/T.h5"):
        assert choice in command
    assert "--max-rotation-deg" not in command and "--prep" not in command and "--json" not in command


def test_every_field_reads_back_through_mmregs_own_parser():
    job = RegistrationJob(
        fixed="/d/ct.nrrd", moving="/d/mr.nrrd", engine="ants", preset="affine", fixed_mask="/d/fm.nrrd",
        moving_mask="/d/mm.nrrd", initial_transform="/d/T0.h5", init="geometry", max_rotation_deg=32.5, seed=7,
        threads=1, output_transform="/o/T.h5", output_inverse="/o/Ti.h5", output_volume="/o/R.nrrd",
        summary="/o/s.json", log="/o/T.log", fixed_segmentation="/d/fs.nrrd", moving_segmentation="/d/ms.nrrd",
        segments=["bone", "liver"], guidance_fixed_points="/d/f.mrk.json", guidance_moving_points="/d/m.mrk.json",
        guidance_weight=0.35, metric="segments", piecewise=["femur", "tibia"],
    )  # fmt: skip
    arguments = _parsed(job)
    for name in ("fixed", "moving", "engine", "preset", "fixed_mask", "moving_mask", "initial_transform", "init",
                 "seed", "threads", "output_transform", "output_inverse", "output_volume",
                 "summary", "fixed_segmentation", "moving_segmentation", "guidance_weight", "metric"):  # fmt: skip
        assert getattr(arguments, name) == getattr(job, name), name
    assert arguments.max_rotation_deg == 180.0  # --init geometry runs no search: the limit is not recorded
    searched = _parsed(replace(job, init="any-pose"))
    assert searched.max_rotation_deg == 32.5
    assert arguments.guidance_fixed_points == job.guidance_fixed_points and arguments.guidance_moving_points == job.guidance_moving_points
    assert arguments.segments == "bone,liver" and arguments.piecewise == "femur,tibia"
    assert arguments.keep_log  # T.log is beside T.h5
    assert not wants_prep(arguments)


def test_preparation_reads_back_to_the_same_options():
    prep = PrepOptions(
        crop_common=True, margin_mm=12.5, roi_lps=((-10.0, -20.0, 5.0), (30.0, 40.0, 60.25)), mask_fixed="auto",
        mask_moving=None, modality_fixed="ct", modality_moving="mr", exclude_above=2500.0, exclude_margin_mm=4.0,
        n4="moving", n4_shrink=3, spacing_moving=(0.5, 0.5, 1.25), downsample_to="auto",
    )  # fmt: skip
    job = RegistrationJob(fixed="/d/ct.nrrd", moving="/d/mr.nrrd", output_transform="/o/T.h5", prep=prep)
    arguments = _parsed(job)
    assert wants_prep(arguments)
    read = prep_options(arguments)
    for name in ("crop_common", "margin_mm", "mask_fixed", "mask_moving", "modality_fixed", "modality_moving",
                 "exclude_above", "exclude_margin_mm", "n4", "n4_shrink", "spacing_fixed", "spacing_moving",
                 "downsample_to"):  # fmt: skip
        value, wanted = getattr(read, name), getattr(prep, name)
        assert (tuple(value) if isinstance(value, list) else value) == wanted, name
    # the box goes out as RAS corners (the option's frame) and comes back as the same LPS corners, in mm
    assert [list(corner) for corner in read.roi_lps] == [list(corner) for corner in prep.roi_lps]


def test_version_names_mmreg_and_its_engines():
    run = mmreg("--version")
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip()
    assert line.startswith(f"mmreg {__version__} (") and "itk-elastix " in line and "antspyx " in line
    assert "Python 3." in line


@pytest.mark.slow
def test_the_recorded_command_repeats_the_transform_bit_for_bit(pair_files, tmp_path):
    """elastix rigid on the phantom pair: summary.json's command, run again, writes the same transform file."""
    fixed, moving = pair_files / "ct.nrrd", pair_files / "mr.nrrd"
    first = mmreg("register", "--fixed", fixed, "--moving", moving, "--output-transform", tmp_path / "T.tfm",
                  "--json", "-")  # fmt: skip
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)  # --json -: the summary alone on standard output
    assert "wrote transform" in first.stderr
    command = summary["provenance"]["command"]
    argv = shlex.split(command)
    assert argv[:2] == ["mmreg", "register"]
    assert "--json" not in argv  # standard output is not a file to write again
    # elastix's result depends on its thread count: the count it ran with is written, though none was given (a
    # helper: one command on 1 and 2 cores gave deformable results 0.27 mm apart).
    assert argv[argv.index("--threads") + 1] == str(summary["provenance"]["threads"])
    position = argv.index("--output-transform") + 1
    assert Path(argv[position]) == (tmp_path / "T.tfm").resolve()
    argv[position] = str(tmp_path / "again.tfm")
    second = mmreg(*argv[1:], "--json", tmp_path / "again.json")
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "again.tfm").read_bytes() == (tmp_path / "T.tfm").read_bytes()
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["metric"]["after"] == summary["metric"]["after"]
    assert again["provenance"]["seed"] == summary["provenance"]["seed"]


def test_a_rotation_limit_that_narrows_nothing_is_not_recorded():
    """The panel greys the box out under --init geometry but still passes its value: the recorded command then
    held --max-rotation-deg 30, which mmreg refuses where no search runs (review)."""
    from MultimodalRegistrationLib.process.command import register_command

    job = RegistrationJob(fixed="f.nrrd", moving="m.nrrd", output_transform="T.h5", init="geometry",
                          max_rotation_deg=30.0)  # fmt: skip
    assert "--max-rotation-deg" not in register_command(job)
    assert "--max-rotation-deg 30" in register_command(replace(job, init="any-pose"))


@pytest.mark.parametrize("windows", [True, False], ids=["Windows", "POSIX"])
def test_a_recorded_command_is_quoted_for_the_user_s_shell_and_reads_back(windows):
    """Every Windows path was recorded in POSIX single quotes ('C:\\Users\\...'), which cmd.exe passes on as part of the
    name, and a path with a space then split in two (audit). On Windows the record quotes with double quotes, as
    the C runtime reads them; "Copy as command" splits it back by the same rules."""
    from MultimodalRegistrationLib.core.command_line import join, split

    argv = ["mmreg", "register2d", "--fixed", r"C:\Users\Ann Lee\ct.nrrd", "--moving", r"D:\slides\H&E.nrrd",
            "--segments", 'gland="x"', r"--json", "ends with\\", "", r"\\server\share\T.h5", "µm"]  # fmt: skip
    line = join(argv, windows)
    assert split(line, windows) == argv
    if windows:
        assert r'--fixed "C:\Users\Ann Lee\ct.nrrd" --moving "D:\slides\H&E.nrrd"' in line and "'" not in line
        assert join(["mmreg", r"C:\Users\ann\ct.nrrd", "gland,urethra"], True) == r'mmreg C:\Users\ann\ct.nrrd "gland,urethra"'  # H&E: cmd.exe ran E.nrrd


@pytest.mark.slow
def test_a_mask_the_preparation_made_is_named_in_the_record(pair_files, tmp_path):
    """--mask-fixed auto had recorded provenance.fixed_mask null, as if no mask had been used (a helper's sweep)."""
    run = mmreg("register", "--fixed", pair_files / "ct.nrrd", "--moving", pair_files / "mr.nrrd", "--prep",
                "--mask-fixed", "auto", "--output-transform", tmp_path / "T.h5", "--json", tmp_path / "s.json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    provenance = json.loads((tmp_path / "s.json").read_text())["provenance"]
    assert provenance["fixed_mask"] == "made by the preparation (--mask-fixed auto)"
    assert provenance["moving_mask"] is None
