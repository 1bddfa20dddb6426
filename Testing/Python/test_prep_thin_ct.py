"""N4's size refusal applies only to images N4 would run on: a CT (given or guessed) is never refused as too thin
for N4; an MR is, with the fix that helps."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.prep import pipeline
from MultimodalRegistrationLib.prep.masks import looks_like_ct
from MultimodalRegistrationLib.prep.options import roi_from_ras_corners
from MultimodalRegistrationLib.prep.pipeline import PrepOptions, prepare

N4_THIN = "too thin for N4 bias correction"
GRID_THIN = "a registration needs at least 4 along each axis; give the whole volume"


def volume(size, ct: bool, spacing=(2.0, 2.0, 2.5), seed=1) -> sitk.Image:
    """A smooth blob: CT in HU (air -1000 to bone 2000) or MR-like (0 to 1000)."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in size[::-1]], indexing="ij")
    blob = np.exp(-3 * (x**2 + (1.3 * y) ** 2 + (0.3 * z) ** 2))
    array = np.clip(blob * 3000 - 1000, -1000, 2000) if ct else blob * 1000
    array = array + np.random.default_rng(seed).normal(0, 5, array.shape)
    image = sitk.GetImageFromArray(array.astype(np.int16 if ct else np.float32))
    image.SetSpacing(spacing)
    return image


@pytest.mark.parametrize(
    "ct, modality, fragment",
    [
        (True, "auto", GRID_THIN),  # guessed CT: no N4 refusal, only the registration's own minimum
        (True, "ct", GRID_THIN),
        (False, "auto", f"{N4_THIN}, which needs 4 or more along every axis; give the whole volume"),
        (True, "mr", N4_THIN),  # given as MR: N4 would run
    ],
)
def test_a_three_slice_image_is_refused_for_n4_only_when_n4_would_run(tmp_path, capsys, ct, modality, fragment):
    thin = volume((48, 40, 3), ct)
    assert looks_like_ct(thin) is ct
    write_image(volume((48, 40, 32), False, seed=0), tmp_path / "fixed.nrrd")
    write_image(thin, tmp_path / "thin.nrrd")
    argv = ["prep", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "thin.nrrd"),
            "--output-dir", str(tmp_path / "out"), "--n4", "both", "--modality-moving", modality]  # fmt: skip
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert fragment in message
    assert (N4_THIN in message) is (fragment != GRID_THIN)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.fixture
def n4_calls(monkeypatch):
    """The roles N4 ran on."""
    calls = []
    real = pipeline.correct_bias

    def recorded(image, *args, role="image", **kwargs):
        calls.append(role)
        return real(image, *args, role=role, **kwargs)

    monkeypatch.setattr(pipeline, "correct_bias", recorded)
    return calls


@pytest.mark.parametrize("ct", [True, False])
def test_a_crop_to_three_slices_is_refused_before_any_n4_naming_the_region(n4_calls, ct):
    """A CT cropped to 3 slices had been prepared (exit 0) and then refused by the registration as a thumbnail;
    an MR, refused by N4 with 'leave N4 off'. Both are now refused at the crop, naming --roi (a helper's sweep)."""
    fixed = volume((48, 40, 80), False, spacing=(2.0, 2.0, 1.0), seed=0)  # 1 mm slices: 5 of them in the region
    roi = roi_from_ras_corners(["-80", "-70", "30", "-10", "-10", "34"])  # S 30 to 34 mm: 2.5 mm slices keep < 4
    options = PrepOptions(roi_lps=roi, margin_mm=0.0, n4="both")
    with pytest.raises(InputError, match="the crop leaves the moving image 3 voxel.s. along axis 2 .7.5 mm of the "
                       "region of interest.*widen --roi"):  # fmt: skip
        prepare(fixed, volume((48, 40, 32), ct), options)
    assert n4_calls == []  # refused before N4 ran on the fixed image (it took its whole time first)
