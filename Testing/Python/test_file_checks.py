"""Damaged or wrongly written image files are refused before any engine runs, each with its own message
and the fix (issue 14): a truncated .nii.gz is no longer read as zeros, NaN and negative spacing are
reported as they are written, and a damaged file in a supported format is not told to convert."""

import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import read_image
from MultimodalRegistrationLib.process.worker import library_root


@pytest.fixture
def volume():
    image = sitk.GetImageFromArray(np.random.default_rng(1).random((30, 40, 50)).astype(np.float32))
    image.SetSpacing((1.0, 1.0, 2.0))
    return image


def test_a_truncated_nifti_gz_is_refused_not_zero_filled(volume, tmp_path):
    sitk.WriteImage(volume, str(tmp_path / "whole.nii.gz"))
    data = (tmp_path / "whole.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    assert read_image(tmp_path / "whole.nii.gz").GetSize() == (50, 40, 30)
    with pytest.raises(InputError, match="truncated or damaged.*copy or download the file again"):
        read_image(tmp_path / "cut.nii.gz", "moving image")


@pytest.mark.parametrize("written, shown", [("nan 1 2", "spacing nan along axis 0"), ("1 -1 2", "spacing -1 along axis 1"),
                                            ("1 1 0", "spacing 0 along axis 2")])  # fmt: skip
def test_bad_spacing_is_reported_as_written(volume, tmp_path, written, shown):
    sitk.WriteImage(volume, str(tmp_path / "good.mha"))
    text = (tmp_path / "good.mha").read_bytes().replace(b"ElementSpacing = 1 1 2", f"ElementSpacing = {written}".encode())
    (tmp_path / "bad.mha").write_bytes(text)
    with pytest.raises(InputError, match=f"{shown}.*correct the spacing in the file's header"):
        read_image(tmp_path / "bad.mha", "fixed image")


def test_a_damaged_file_is_not_told_to_change_format(tmp_path):
    (tmp_path / "garbage.nrrd").write_bytes(b"NRRD0004\nnot a header at all\n")
    with pytest.raises(InputError) as error:
        read_image(tmp_path / "garbage.nrrd")
    assert "damaged" in str(error.value) and "save it as NRRD" not in str(error.value)


def test_mmreg_refuses_a_truncated_file_with_exit_2_and_writes_nothing(volume, tmp_path):
    sitk.WriteImage(volume, str(tmp_path / "ct.nii.gz"))
    data = (tmp_path / "ct.nii.gz").read_bytes()
    (tmp_path / "mr.nii.gz").write_bytes(data[: len(data) // 3])
    before = (tmp_path / "mr.nii.gz").read_bytes()
    run = subprocess.run(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", "register", "--fixed", str(tmp_path / "ct.nii.gz"),
         "--moving", str(tmp_path / "mr.nii.gz"), "--output-transform", str(tmp_path / "out" / "T.h5")],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(library_root())),
    )  # fmt: skip
    assert run.returncode == 2 and "truncated" in run.stderr
    assert (tmp_path / "mr.nii.gz").read_bytes() == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, output, fragment", [
    (["register", "--output-transform", "{folder}/T.xyz"], None, "cannot write the output transform to 'T.xyz': use one of .h5"),
    (["register", "--output-transform", "{blocker}/T.h5"], None, "is a file, not a folder"),
    (["prealign", "--output-transform", "{blocker}/sub/T.h5"], None, "is a file, not a folder"),
    (["qa", "--report", "{blocker}/qa.html"], None, "is a file, not a folder"),
    (["prep", "--crop-common", "--output-dir", "{blocker}/out"], None, "is a file, not a folder"),
])  # fmt: skip
def test_outputs_that_cannot_be_written_are_refused_before_any_work(volume, tmp_path, command, output, fragment):
    sitk.WriteImage(volume, str(tmp_path / "ct.nrrd"))
    (tmp_path / "blocker").write_text("a file where a folder should be")
    names = {"folder": tmp_path, "blocker": tmp_path / "blocker"}
    arguments = [part.format(**names) for part in command]
    inputs = {"register": ["--fixed", "ct.nrrd", "--moving", "ct.nrrd"], "prep": ["--fixed", "ct.nrrd", "--moving", "ct.nrrd"],
              "qa": ["--fixed", "ct.nrrd", "--moving", "ct.nrrd", "--transform", "T0.tfm"],
              "prealign": ["--fixed-points", "p.csv", "--moving-points", "p.csv"]}[command[0]]  # fmt: skip
    (tmp_path / "p.csv").write_text("a,0,0,0\nb,10,0,0\nc,0,10,0\nd,0,0,10\n")
    sitk.WriteTransform(sitk.Euler3DTransform(), str(tmp_path / "T0.tfm"))
    run = subprocess.run(
        [sys.executable, "-m", "MultimodalRegistrationLib.cli.main", arguments[0], *inputs, *arguments[1:]],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(library_root())),
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert fragment in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T0.tfm", "blocker", "ct.nrrd", "p.csv"]
