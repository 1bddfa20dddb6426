"""A hot voxel far outside an image's range is clipped for the metric; images as they come are left alone.

Audit: one voxel at 1e6 in the moving MR (its tissue ends at about 450) made elastix stop with "Too many samples
map outside moving image buffer" (exit 1) and a hint about overlap; at 1e30, an ITK region error.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SMALL
from MultimodalRegistrationLib.core.outliers import clip_outliers
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm
from MultimodalRegistrationLib.registration.register import register


@pytest.fixture(scope="module")
def pair():
    return make_phantom_pair(**SMALL)


def spiked(image: sitk.Image, value: float) -> sitk.Image:
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array[tuple(s // 2 for s in array.shape)] = value
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(image)
    return result


def test_a_hot_voxel_is_clipped_and_named_and_ordinary_images_are_not(pair):
    for image in (pair.fixed, pair.moving):  # a CT with its bone and an MR: nothing to clip
        kept, warning = clip_outliers(image, "image")
        assert kept is image and warning is None
    hot = spiked(pair.moving, 1e6)
    clipped, warning = clip_outliers(hot, "moving image")
    tissue_top = float(np.percentile(sitk.GetArrayViewFromImage(pair.moving), 99.9))
    top = float(sitk.GetArrayViewFromImage(clipped).max())
    assert tissue_top < top < 4 * tissue_top  # within two spans of the tissue, not 1e6
    assert warning.startswith("the moving image holds 1 voxel(s) far outside its intensity range")
    assert sitk.GetArrayViewFromImage(hot).max() == 1e6  # the caller's image keeps it
    constant = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    assert clip_outliers(constant, "image") == (constant, None)


@pytest.mark.parametrize("share", [0.002, 0.03])
def test_saturated_voxels_are_clipped_too(pair, share):
    """Voxels at a detector's 65535 (a helper's light-sheet stack with 0.12% saturated: 71 mm off, exit 0, when the
    span was read at 0.1-99.9). 3% puts the 99.5th percentile there too: they are measured against the others,
    and the warning quotes the share the span holds."""
    array = sitk.GetArrayFromImage(pair.moving).astype(np.float32)
    flat = array.ravel()
    count = int(flat.size * share)
    flat[np.random.default_rng(0).choice(flat.size, count, replace=False)] = 65535.0
    saturated = sitk.GetImageFromArray(array)
    saturated.CopyInformation(pair.moving)
    assert (float(np.percentile(array, 99.5)) == 65535.0) == (share > 0.005)
    clipped, warning = clip_outliers(saturated, "moving image")
    tissue_top = float(np.percentile(sitk.GetArrayViewFromImage(pair.moving), 99.9))
    assert tissue_top < float(sitk.GetArrayViewFromImage(clipped).max()) < 4 * tissue_top
    assert warning.startswith(f"the moving image holds {count} voxel(s) far outside its intensity range")
    quoted = float(warning.split(", while ")[1].split("%")[0])
    assert quoted < 97.5 if share > 0.005 else quoted >= 99.0  # 96.5% and 99.5% (the background at the minimum)


def test_a_ct_whose_air_wrapped_round_uint16_is_clipped(pair):
    """A CT stored as uint16 without its intercept, values below -1024 HU wrapped to about 65500: 0.43% of a
    helper's CT, above the 99.9th percentile the span was read at, so nothing was clipped and elastix rigid ended
    11.5 mm off, silently (affine crashed)."""
    array = sitk.GetArrayFromImage(pair.fixed).astype(np.float32) + 1024.0
    flat = array.ravel()
    wrapped = np.random.default_rng(1).choice(flat.size, int(flat.size * 0.0043), replace=False)
    flat[wrapped] = 65536.0 - np.random.default_rng(2).uniform(1, 200, wrapped.size)
    stored = sitk.GetImageFromArray(array)
    stored.CopyInformation(pair.fixed)
    clipped, warning = clip_outliers(stored, "fixed image")
    tissue_top = float(np.percentile(sitk.GetArrayViewFromImage(pair.fixed), 99.5)) + 1024.0
    assert tissue_top < float(sitk.GetArrayViewFromImage(clipped).max()) < 4 * tissue_top
    assert warning.startswith(f"the fixed image holds {wrapped.size} voxel(s) far outside its intensity range")


@pytest.mark.parametrize("value", [1e6, 1e30])
def test_a_registration_with_a_hot_voxel_runs_and_lands(pair, value):
    result = register(pair.fixed, spiked(pair.moving, value), engine="elastix", preset="rigid", threads=1)
    assert mean_error_mm(result.transform, pair.truth, pair.head_points) < 1.0
    assert any("far outside its intensity range" in warning for warning in result.warnings)
    assert 0.2 < result.metric_before < result.metric_after  # measured on the clipped images, not 0.000


def test_qa_measures_a_spiked_image_as_the_registration_did(pair):
    """The registration's MI comes from the clipped images; QA's did not (a 1e6 voxel: MI about 0 before and after),
    so a batch's QA disagreed with the summary it checks."""
    from MultimodalRegistrationLib.qa.assess import QAOptions, assess_registration

    hot = spiked(pair.moving, 1e6)
    report = assess_registration(pair.fixed, hot, pair.truth, QAOptions(jacobian_spacing_mm=4.0))
    clean = assess_registration(pair.fixed, pair.moving, pair.truth, QAOptions(jacobian_spacing_mm=4.0))
    assert report.images_after.mutual_information == pytest.approx(clean.images_after.mutual_information, abs=0.02)
    assert clean.images_after.mutual_information > 0.3
    assert any("far outside its intensity range" in warning for warning in report.warnings)
    record = report.to_dict()  # qa.json says with which versions it was measured (it gave the library's only)
    assert record["made_by"]["simpleitk"] == sitk.Version.VersionString()
    assert type(report).from_dict(record).made_by == record["made_by"]


def test_rows_as_long_as_the_sample_stride_and_a_bright_bead_are_left_alone():
    """A strided sample lined up with 512-voxel rows read only the edge column: every voxel of the anatomy counted
    as an outlier and half the image was clipped (review). A bead a few spans above the tissue is no outlier."""
    _, y, x = np.mgrid[0:391, 0:64, 0:512]
    body = np.where(((x - 256) / 200) ** 2 + ((y - 32) / 25) ** 2 < 1, 400.0, 0.0).astype(np.float32)
    assert clip_outliers(sitk.GetImageFromArray(body), "image")[1] is None
    body[100:103, 30:33, 250:253] = 1500.0  # about 4 spans above the tissue
    assert clip_outliers(sitk.GetImageFromArray(body), "image")[1] is None
    body[10, 10, 10] = 1e6  # a hot voxel: everything beyond 2 spans goes, the bead's 27 voxels with it
    clipped, warning = clip_outliers(sitk.GetImageFromArray(body), "image")
    assert "holds 28 voxel(s)" in warning and sitk.GetArrayViewFromImage(clipped).max() == 1200.0


def test_a_guided_result_refused_under_the_segments_metric_is_not_said_to_agree_better():
    """--metric segments sets the intensities aside: their verdict is not a reason to doubt the guidance (review)."""
    from MultimodalRegistrationLib.registration.rules.keep import OUTVOTED, images_outvote_guidance

    worse = {"worse": "landmark distance 30.45 mm > 0.00 mm (RMS)", "intensity": True}
    assert images_outvote_guidance(0.277, 0.726, worse).startswith(OUTVOTED)
    assert images_outvote_guidance(0.277, 0.726, {**worse, "intensity": False}) == ""
    assert images_outvote_guidance(0.12, 0.25, worse) == ""  # a small gain from near nothing: not far better
