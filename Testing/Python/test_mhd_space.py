"""A detached MetaImage whose data file name holds a space (``ElementDataFile = my scan.raw``): read as MetaIO
reads it (one name), its voxel bytes checked, and its header spacing repaired in a copy, never in place."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import EXIT_OK, InputError
from MultimodalRegistrationLib.core.file_bytes import voxel_bytes
from MultimodalRegistrationLib.core.file_headers import metaimage_data_file
from MultimodalRegistrationLib.core.images import read_image
from test_prep_cli import blob  # the same bright ellipsoid in a dark box


def spaced_pair(folder: Path, spacing: str = "2 2 2.5", data: str = "my scan.raw") -> Path:
    """``scan.mhd`` with its voxels in ``data`` (renamed after SimpleITK wrote ``scan.raw``), spacing as written."""
    header = folder / "scan.mhd"
    sitk.WriteImage(blob(), str(header), False)
    (folder / "scan.raw").rename(folder / data)
    text = header.read_text().replace("ElementDataFile = scan.raw", f"ElementDataFile = {data}")
    header.write_text(text.replace("ElementSpacing = 2 2 2.5", f"ElementSpacing = {spacing}"))
    return header


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_a_data_file_with_a_space_is_read_and_its_bytes_checked(tmp_path):
    header = spaced_pair(tmp_path)
    voxels = sitk.GetArrayFromImage(blob())
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(header))), voxels)  # SimpleITK reads it
    assert np.array_equal(sitk.GetArrayFromImage(read_image(header, "moving image")), voxels)
    assert voxel_bytes(header).data == tmp_path / "my scan.raw"  # one file, not a pattern left unchecked
    data = tmp_path / "my scan.raw"
    data.write_bytes(data.read_bytes()[:-10])  # cut short: named, not "damaged"
    with pytest.raises(InputError, match="shorter than its header says.*my scan.raw holds only 86,390 bytes"):
        read_image(header, "moving image")
    data.unlink()
    with pytest.raises(InputError, match="keeps its voxels in my scan.raw, which is not at .*copy the data file"):
        read_image(header, "moving image")


def test_what_element_data_file_names(tmp_path):
    header = tmp_path / "scan.mhd"
    assert metaimage_data_file(header, " my  scan.raw ") == tmp_path / "my  scan.raw"
    assert metaimage_data_file(header, "scan 1 6 1.raw") == tmp_path / "scan 1 6 1.raw"  # no %: MetaIO reads a name
    for written in ("LOCAL", "LIST", "LIST 2D", "slice%03d.raw 1 30 1", ""):
        assert metaimage_data_file(header, written) is None


@pytest.mark.parametrize("spacing", ["0 0 0", "nan 2 2.5"])
def test_spacing_moving_repairs_a_header_whose_data_file_has_a_space(tmp_path, capsys, monkeypatch, spacing):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the repaired header copy goes
    user = tmp_path / "user files"
    user.mkdir()
    header = spaced_pair(user, spacing)
    sitk.WriteImage(blob(), str(tmp_path / "fixed.nrrd"))
    before = digests(user)
    out = tmp_path / "out"
    argv = ["prep", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(header), "--output-dir", str(out),
            "--crop-common", "--spacing-moving", "2,2,2.5"]  # fmt: skip
    assert main(argv) == EXIT_OK, capsys.readouterr().err  # was exit 2: "the file is damaged ... export it again"
    prepared = sitk.ReadImage(str(out / "moving.nrrd"))
    assert prepared.GetSpacing() == pytest.approx((2.0, 2.0, 2.5))
    assert np.array_equal(sitk.GetArrayFromImage(prepared), sitk.GetArrayFromImage(blob()))
    assert digests(user) == before  # the repair was a copy: the user's header and data are untouched
    assert list(scratch.iterdir()) == []  # and the copy is gone
