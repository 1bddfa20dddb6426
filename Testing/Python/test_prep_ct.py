"""CT in preparation: CT stored as HU + 1024 is recognised, and metal is excluded at full resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import index_to_physical_matrix, write_image
from MultimodalRegistrationLib.core.phantom import make_phantom_pair
from MultimodalRegistrationLib.prep.masks import looks_like_ct
from MultimodalRegistrationLib.prep.pipeline import PrepOptions, prepare

METAL_HU = 3000.0
METAL_RADIUS_MM = 3.0


@pytest.fixture(scope="module")
def phantom():
    """The phantom CT in HU (1.5 mm voxels) with a 6 mm metal sphere, and the phantom MR (5 mm voxels)."""
    pair = make_phantom_pair(ct_spacing=(1.5, 1.5, 1.5), mr_spacing=(5.0, 5.0, 5.0))
    ct = sitk.GetArrayFromImage(pair.fixed)
    points = voxel_centres(pair.fixed)
    metal = np.linalg.norm(points - np.array([0.0, 40.0, 0.0]), axis=-1) <= METAL_RADIUS_MM
    ct[metal] = METAL_HU
    hu = sitk.GetImageFromArray(ct.astype(np.int16))
    hu.CopyInformation(pair.fixed)
    return hu, pair.moving, points[metal]


def voxel_centres(image: sitk.Image) -> np.ndarray:
    """LPS mm of every voxel centre, (z, y, x, 3)."""
    index = np.stack(np.meshgrid(*[np.arange(s) for s in image.GetSize()[::-1]], indexing="ij")[::-1], -1)
    matrix = index_to_physical_matrix(image)
    return index @ matrix[:3, :3].T + matrix[:3, 3]


def stored_with_offset(hu: sitk.Image) -> sitk.Image:
    """The CT as many scanners store it: HU + 1024 in unsigned integers."""
    result = sitk.GetImageFromArray(
        np.clip(sitk.GetArrayFromImage(hu).astype(np.int32) + 1024, 0, None).astype(np.uint16)
    )
    result.CopyInformation(hu)
    return result


def test_ct_in_hu_is_recognised_and_mr_is_not_whatever_its_scale(phantom):
    """CT stored as HU + 1024 is not guessed (it is given as CT): a histogram test for it took the real Visible
    Human MRI scaled by 3.3-3.6, an ordinary 12-bit MR, for CT (review)."""
    hu, mr, _ = phantom
    assert looks_like_ct(hu) and not looks_like_ct(stored_with_offset(hu))
    array = sitk.GetArrayFromImage(mr)
    for scale in (1, 2, 3, 4, 6, 8):  # MR stored so that its tissue lands anywhere around 1024
        assert not looks_like_ct(sitk.GetImageFromArray((array * scale).astype(np.uint16))), scale
    real = Path(__file__).resolve().parents[2].parent / "shared/data/visible_human_head/vm_head_mri.mha"
    if real.is_file():
        mri = sitk.GetArrayFromImage(sitk.ReadImage(str(real))).astype(float)
        for scale in (3.3, 3.5, 3.6):
            assert not looks_like_ct(sitk.GetImageFromArray(np.rint(mri * scale).astype(np.uint16))), scale


def test_hu_plus_1024_gets_the_ct_mask_and_its_metal_excluded(phantom):
    hu, mr, metal = phantom
    options = PrepOptions(mask_fixed="auto", exclude_above=2500.0, n4="both", modality_fixed="ct")
    pair = prepare(stored_with_offset(hu), mr, options)
    mask_step = next(s for s in pair.steps if s["step"] == "mask")
    assert mask_step["modality"] == "ct" and mask_step["threshold"] == pytest.approx(524.0)
    excluded = next(s for s in pair.steps if s["step"] == "exclude")["voxels_excluded"]
    assert excluded >= len(metal)
    assert sitk.GetArrayViewFromImage(pair.fixed_mask)[mask_of(pair.fixed_mask, metal)].sum() == 0
    assert [s["image"] for s in pair.steps if s["step"] == "bias correction"] == ["moving"]  # not N4 on the CT
    assert "skipped on the fixed image, which was given as CT" in " ".join(pair.warnings)


def mask_of(grid: sitk.Image, points: np.ndarray) -> tuple:
    """Numpy indices (z, y, x) of the ``grid`` voxels holding ``points`` (LPS mm)."""
    ijk = np.rint((points - grid.GetOrigin()) @ np.linalg.inv(index_to_physical_matrix(grid)[:3, :3]).T).astype(int)
    return ijk[:, 2], ijk[:, 1], ijk[:, 0]


@pytest.mark.parametrize("read", ["in memory", "streamed from the file"])
@pytest.mark.parametrize("stored", ["hu", "hu+1024"])
def test_metal_is_excluded_at_full_resolution_before_downsampling(phantom, tmp_path, read, stored):
    hu, mr, metal = phantom
    ct = hu if stored == "hu" else stored_with_offset(hu)
    if read != "in memory":
        write_image(ct, tmp_path / "ct.nrrd")
        ct = tmp_path / "ct.nrrd"
    # Averaged into 4 mm voxels the 6 mm sphere stays under 2500 HU: nothing was excluded.
    pair = prepare(ct, mr, PrepOptions(exclude_above=2500.0, exclude_margin_mm=0.0, downsample_to=4.0,
                                       modality_fixed="ct"))  # fmt: skip
    assert pair.fixed.GetSpacing() == pytest.approx((4.0, 4.0, 4.0))
    assert float(sitk.GetArrayViewFromImage(pair.fixed).max()) < 2500 + (0 if stored == "hu" else 1024)
    holding_metal = mask_of(pair.fixed_mask, metal)
    assert sitk.GetArrayViewFromImage(pair.fixed_mask)[holding_metal].sum() == 0  # every voxel holding metal is out
    excluded = next(s for s in pair.steps if s["step"] == "exclude")["voxels_excluded"]
    assert excluded == len(set(zip(*holding_metal)))


def test_exclusion_with_no_image_taken_for_ct_names_the_modality_option(phantom):
    """A CT stored in other values than HU is not taken for CT: the warning says how to say it is one (a helper's
    prep sweep: the Visible Human CT, 0-2669, was only told 'nothing excluded')."""
    _, mr, _ = phantom
    pair = prepare(mr, mr, PrepOptions(exclude_above=1500.0))
    assert not any(step["step"] == "exclude" for step in pair.steps)
    assert any(w.startswith("--exclude-above is for CT, and neither image looks like CT") and "--modality-fixed ct" in w
               for w in pair.warnings)  # fmt: skip


@pytest.mark.parametrize("fill", [-1000.0, -1024.0, -3024.0])
def test_mr_padded_with_a_ct_fill_value_is_not_taken_for_ct(phantom, fill):
    """An MR resampled onto a larger grid with Slicer's or a converter's CT default (-1000, -1024) had a third of its
    voxels 'at air': it was taken for CT, its mask was the whole padded box and N4 was skipped. CT stays CT, also
    with its air clipped to one value."""
    hu, mr, _ = phantom
    array = sitk.GetArrayFromImage(mr).astype(np.float32)
    padded = np.full(np.array(array.shape) + 20, fill, np.float32)
    padded[10:-10, 10:-10, 10:-10] = array
    assert not looks_like_ct(sitk.GetImageFromArray(padded))
    ct = sitk.GetArrayFromImage(hu)
    clipped = np.where(ct <= -500, -1024, ct).astype(np.int16)  # every voxel at air one value, as some scanners store
    assert ((clipped > -500) & (clipped < 0)).any()  # the fat and noise below 0 HU that tell it from a padded MR
    assert looks_like_ct(hu) and looks_like_ct(sitk.GetImageFromArray(clipped))
