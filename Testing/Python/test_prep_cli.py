"""mmreg prep on files: a header spacing of 0 or NaN fixed by --spacing-fixed, a reused output folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import EXIT_OK


def blob(size=(40, 36, 30), spacing=(2.0, 2.0, 2.5)) -> sitk.Image:
    """A bright ellipsoid in a dark box (about 80 mm)."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in size[::-1]], indexing="ij")
    array = 1000 * (x**2 + y**2 + z**2 < 0.5) + np.random.default_rng(0).normal(20, 5, x.shape)
    image = sitk.GetImageFromArray(array.astype(np.int16))
    image.SetSpacing(spacing)
    return image


@pytest.mark.parametrize("written", ["0 2 2.5", "nan 2 2.5"])
@pytest.mark.parametrize("suffix", [".mha", ".mhd"])
def test_spacing_fixed_repairs_a_header_spacing_of_zero_or_nan(tmp_path, capsys, written, suffix):
    path = tmp_path / f"fixed{suffix}"
    sitk.WriteImage(blob(), str(path), False)
    path.write_bytes(path.read_bytes().replace(b"ElementSpacing = 2 2 2.5", f"ElementSpacing = {written}".encode()))
    sitk.WriteImage(blob(), str(tmp_path / "moving.nrrd"))
    out = tmp_path / "out"
    argv = ["prep", "--fixed", str(path), "--moving", str(tmp_path / "moving.nrrd"), "--output-dir", str(out)]
    assert main(argv + ["--crop-common"]) == 2  # the header's spacing is refused ...
    assert "--spacing-fixed" in capsys.readouterr().err
    code = main(argv + ["--spacing-fixed", "2,2,2.5", "--crop-common"])  # ... and the advice works
    assert code == EXIT_OK, capsys.readouterr().err
    prepared = sitk.ReadImage(str(out / "fixed.nrrd"))
    assert prepared.GetSpacing() == pytest.approx((2.0, 2.0, 2.5))
    assert np.array_equal(sitk.GetArrayFromImage(prepared), sitk.GetArrayFromImage(blob()))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("mmreg")] == []


def test_a_reused_output_folder_keeps_no_stale_mask(tmp_path, capsys):
    for role in ("fixed", "moving"):
        sitk.WriteImage(blob(), str(tmp_path / f"{role}.nrrd"))
    out = tmp_path / "out"
    argv = ["prep", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd")]
    assert main(argv + ["--mask-fixed", "auto", "--mask-moving", "auto", "--output-dir", str(out)]) == EXIT_OK
    assert (out / "fixed_mask.nrrd").exists() and (out / "moving_mask.nrrd").exists()
    assert main(argv + ["--crop-common", "--output-dir", str(out)]) == EXIT_OK
    assert sorted(p.name for p in out.iterdir()) == ["fixed.nrrd", "moving.nrrd", "prep.json"]
    assert set(json.loads((out / "prep.json").read_text())["outputs"]) == {"fixed", "moving", "summary"}


def test_a_crop_says_how_much_it_kept_and_when_it_kept_the_whole_image(tmp_path, capsys):
    """A helper's real spinal cords: "crop (fixed): both images cover only this region" was printed for a fixed image
    left whole (60 x 55 x 52); the panel said how much each crop kept, mmreg prep did not."""
    sitk.WriteImage(blob(), str(tmp_path / "fixed.nrrd"))
    moving = blob(size=(40, 36, 60))  # the fixed box lies within it, 37.5 mm beyond each face along z
    moving.SetOrigin((0.0, 0.0, -37.5))
    sitk.WriteImage(moving, str(tmp_path / "moving.nrrd"))
    argv = ["prep", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd"),
            "--crop-common", "--margin", "0", "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "crop (fixed): both images cover only this region" in out
    assert "; nothing cropped: the whole image lies in the region" in out.split("crop (fixed)")[1].split("\n")[0]
    assert "% of the voxels kept (40 x 36 " in out.split("crop (moving)")[1].split("\n")[0]
