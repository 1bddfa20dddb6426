"""Preparation decisions that belong to the whole input, not to its crop or downsampled copy (audit of the prep
path): CT or not and a CT's HU offset judged once before any crop; a mask file given with a spacing fix; the
automatic mask's closing scaled to the image; one mask per image; and what prep.json and the warnings say."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SMALL
from MultimodalRegistrationLib.cli.main import build_parser, job_from_arguments, main
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import make_phantom_pair
from MultimodalRegistrationLib.prep.masks import foreground_mask, looks_like_ct
from MultimodalRegistrationLib.prep.options import roi_from_ras_corners
from MultimodalRegistrationLib.prep.pipeline import PrepOptions, prepare


@pytest.fixture(scope="module")
def phantom():
    return make_phantom_pair(**SMALL)


def step(pair, kind: str, image: str) -> dict:
    return next(s for s in pair.steps if s["step"] == kind and s["image"] == image)


# --------------------------------------------------------------------------- 1a: a CT cropped to air-free tissue
def test_a_ct_cropped_inside_the_body_is_still_taken_for_ct(phantom):
    """A small-FOV MR inside the head: the CT's crop holds no air (min +6 HU). Guessed on the crop, the CT was
    taken for MR: N4 ran on it, the MR mask rule was used and its 3500 HU metal was not excluded."""
    ct, mr = phantom.fixed, phantom.moving
    size = np.array(mr.GetSize())
    small_fov = sitk.RegionOfInterest(mr, [int(s) for s in size // 5], [int(i) for i in 2 * size // 5])
    array = sitk.GetArrayFromImage(ct)
    c = np.array(array.shape) // 2
    array[c[0] - 1 : c[0] + 2, c[1] - 2 : c[1] + 2, c[2] - 2 : c[2] + 2] = 3500  # metal inside the region
    with_metal = sitk.GetImageFromArray(array)
    with_metal.CopyInformation(ct)
    options = PrepOptions(crop_common=True, margin_mm=2.0, mask_fixed="auto", exclude_above=2500.0, n4="fixed")
    pair = prepare(with_metal, small_fov, options, initial_transform=phantom.truth)
    assert sitk.GetArrayViewFromImage(pair.fixed).min() > -500 and not looks_like_ct(pair.fixed)  # the crop: no air
    assert step(pair, "mask", "fixed")["modality"] == "ct" and step(pair, "mask", "fixed")["threshold"] == -500.0
    assert step(pair, "exclude", "fixed")["voxels_excluded"] >= 36  # the 3 x 4 x 4 metal block, and its margin
    assert not [s for s in pair.steps if s["step"] == "bias correction"]  # N4 skipped on the CT
    record = pair.summary().to_dict()["modality"]
    assert record["fixed"] == {"modality": "ct", "given": False, "share_at_air": pytest.approx(0.81, abs=0.01),
                               "hu_offset": 0.0}  # fmt: skip
    assert record["moving"]["modality"] == "mr" and "hu_offset" not in record["moving"]


# --------------------------------------------------------------------------- 1b: a CT in HU read as HU + 1024
def hip_ct(n: int = 60) -> sitk.Image:
    """A hip CT in HU, 1 mm voxels, 15 HU noise: fat, muscle, bone, marrow and a 3071 HU (clipped) implant."""
    rng = np.random.default_rng(0)
    _, y, x = np.mgrid[0:n, 0:n, 0:n].astype(np.float32)
    r = np.hypot(x - n / 2, y - n / 2)
    ct = np.full((n, n, n), -1000, np.float32)
    for radius, value in ((29, -100), (24, 40), (9, 1200), (6, 300), (3.5, 3071)):
        ct[r < radius] = value
    image = sitk.GetImageFromArray(ct + rng.normal(0, 15, ct.shape).astype(np.float32))
    return image


@pytest.mark.parametrize("read", ["in memory", "streamed from the file"])
def test_a_ct_in_hu_cropped_and_downsampled_keeps_its_hu_thresholds(tmp_path, read):
    """Cropped to muscle and averaged into 2 mm voxels, the CT's minimum is +18: judged there, its HU were read
    as HU + 1024, the metal threshold became 3524 (implant not excluded: 0 voxels) and the body mask +524 HU."""
    ct = hip_ct()
    mr = sitk.GetImageFromArray(np.where(sitk.GetArrayViewFromImage(ct) > -500, 300, 5).astype(np.float32))
    source = ct
    if read != "in memory":
        write_image(ct, tmp_path / "ct.nrrd")
        source = tmp_path / "ct.nrrd"
    roi = roi_from_ras_corners([-15, -15, 10, -45, -45, 50])  # LPS x, y 15..45: inside the muscle
    options = PrepOptions(roi_lps=roi, margin_mm=0.0, modality_fixed="ct", mask_fixed="auto", exclude_above=2500.0,
                          downsample_to=2.0)  # fmt: skip
    pair = prepare(source, mr, options)
    assert sitk.GetArrayViewFromImage(pair.fixed).min() > 0  # the working voxels alone look like HU + 1024
    mask = step(pair, "mask", "fixed")
    assert mask["threshold"] == -500.0 and mask["coverage"] == 1.0 and "1024" not in mask["rule"]
    assert mask["closing_mm"] == 3.0  # the 60 mm input's radius: the 40 mm crop's 5% would be 2 mm (review)
    assert step(pair, "exclude", "fixed")["voxels_excluded"] > 100  # the implant (7 mm across) and its margin
    centre = np.array(pair.fixed_mask.GetSize()[::-1]) // 2
    assert sitk.GetArrayViewFromImage(pair.fixed_mask)[tuple(centre)] == 0  # the implant is out of the mask
    assert pair.modality["fixed"].hu_offset == 0.0 and pair.modality["fixed"].given
    if read != "in memory":  # the sample taken while streaming is the one taken in memory
        assert pair.modality["fixed"] == prepare(ct, mr, options).modality["fixed"]


# --------------------------------------------------------------------------- 2: a mask file with a spacing fix
def ball_stack(spacing: float) -> tuple[sitk.Image, sitk.Image]:
    z, y, x = np.mgrid[0:24, 0:24, 0:24]
    inside = ((x - 12) ** 2 + (y - 12) ** 2 + (z - 12) ** 2) < 7**2
    image = sitk.GetImageFromArray((inside * 100.0 + 10).astype(np.float32))
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    for item in (image, mask):
        item.SetSpacing((spacing,) * 3)
    return image, mask


def dice(a: sitk.Image, b: np.ndarray) -> float:
    a = sitk.GetArrayViewFromImage(a) > 0
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_a_mask_drawn_on_the_same_stack_gets_the_same_spacing_fix(tmp_path):
    """The header says 1 mm, the truth is 0.5 mm; the mask was drawn on the same stack (its header says 1 mm
    too). Resampled by physical position onto the re-spaced image, it had Dice 0.017 with the ball."""
    fixed, _ = ball_stack(0.5)
    moving, mask = ball_stack(1.0)
    for name, image in (("f", fixed), ("m", moving), ("m_mask", mask)):
        write_image(image, tmp_path / f"{name}.nrrd")
    options = PrepOptions(spacing_moving=(0.5, 0.5, 0.5), mask_moving=str(tmp_path / "m_mask.nrrd"))
    pair = prepare(tmp_path / "f.nrrd", tmp_path / "m.nrrd", options)
    ball = sitk.GetArrayViewFromImage(pair.moving) > 50
    assert dice(pair.moving_mask, ball) == 1.0
    fix = step(pair, "set spacing", "moving mask")
    assert fix["to_mm"] == [0.5, 0.5, 0.5] and fix["source"] == str(tmp_path / "m_mask.nrrd")
    # A mask already given the new spacing on that grid is used as it is.
    write_image(sitk.Cast(pair.moving_mask, sitk.sitkUInt8), tmp_path / "fixed_mask.nrrd")
    again = prepare(tmp_path / "f.nrrd", tmp_path / "m.nrrd",
                    PrepOptions(spacing_moving=(0.5, 0.5, 0.5), mask_moving=str(tmp_path / "fixed_mask.nrrd")))  # fmt: skip
    assert dice(again.moving_mask, ball) == 1.0 and not [s for s in again.steps if s["image"] == "moving mask"]
    # Any other grid: which spacing its positions were measured with cannot be told.
    write_image(sitk.Cast(sitk.Shrink(mask, [2, 2, 2]), sitk.sitkUInt8), tmp_path / "coarse_mask.nrrd")
    with pytest.raises(InputError, match="is not the moving image file's .24x24x24 voxels of 1x1x1 mm.*give a mask "
                       "drawn on the moving image file"):  # fmt: skip
        prepare(tmp_path / "f.nrrd", tmp_path / "m.nrrd",
                PrepOptions(spacing_moving=(0.5, 0.5, 0.5), mask_moving=str(tmp_path / "coarse_mask.nrrd")))  # fmt: skip


# --------------------------------------------------------------------------- 3: the closing scales with the image
def c_shape(spacing: float) -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    """A C-shaped specimen 24 voxels across (its concavity open to one side) in a 30^3 image."""
    z, y, x = np.mgrid[0:30, 0:30, 0:30]
    slab = (z > 3) & (z < 27)
    specimen = (((x - 15) ** 2 + (y - 15) ** 2) < 12**2) & ~(((x - 22) ** 2 + (y - 15) ** 2) < 7**2) & slab
    concavity = ~specimen & slab & (((x - 22) ** 2 + (y - 15) ** 2) < 7**2)
    image = sitk.GetImageFromArray((specimen * 200.0 + 5).astype(np.float32))
    image.SetSpacing((spacing,) * 3)
    return image, specimen, concavity


def test_the_automatic_mask_of_a_fine_voxel_specimen_closes_at_its_scale(phantom):
    """At 0.05 mm voxels a 3 mm closing padded the 30^3 image to 152^3 and filled the concavity (at 0.01 mm:
    58 s and 2.7 GB for 27,000 voxels). The radius is now at most 5% of the widest extent: 0.075 mm here."""
    image, specimen, concavity = c_shape(0.05)
    mask, record = foreground_mask(image, "mr")
    kept = sitk.GetArrayViewFromImage(mask).astype(bool)
    assert record["closing_mm"] == pytest.approx(0.075)
    assert kept[specimen].all() and not kept[concavity].any()
    # A human-size image (60 mm or more across) keeps the 3 mm closing.
    assert foreground_mask(phantom.fixed, "ct")[1]["closing_mm"] == 3.0
    assert foreground_mask(c_shape(2.0)[0], "mr")[1]["closing_mm"] == 3.0
    # Stored at 1 mm with the spacing fixed to 0.05 mm, prep closes at the specimen's true scale.
    stored = c_shape(1.0)[0]
    pair = prepare(stored, stored, PrepOptions(spacing_fixed=(0.05,) * 3, spacing_moving=(0.05,) * 3,
                                               mask_fixed="auto", modality_fixed="mr"))  # fmt: skip
    assert step(pair, "mask", "fixed")["closing_mm"] == pytest.approx(0.075)


# --------------------------------------------------------------------------- 4: one mask per image
def test_a_registration_mask_and_a_prep_mask_for_one_image_are_refused(tmp_path):
    """Refused by the registration's preflight (every job: mmreg register, a batch row, a script), before any
    work; one mask each for the two images is fine."""
    from MultimodalRegistrationLib.process.preflight import preflight_registration

    for name in ("f.nrrd", "m.nrrd", "mask.nrrd"):
        write_image(sitk.Image(8, 8, 8, sitk.sitkUInt8) + 1, tmp_path / name)
    argv = ["register", "--fixed", str(tmp_path / "f.nrrd"), "--moving", str(tmp_path / "m.nrrd"), "--output-transform",
            str(tmp_path / "T.h5"), "--fixed-mask", str(tmp_path / "mask.nrrd"), "--mask-fixed", "auto"]  # fmt: skip
    with pytest.raises(InputError, match="two fixed masks are given.*give one fixed mask: --fixed-mask FILE, or "
                       "--mask-fixed auto.FILE"):  # fmt: skip
        preflight_registration(job_from_arguments(build_parser().parse_args(argv)), data=False)
    argv[-4:] = ["--moving-mask", str(tmp_path / "mask.nrrd"), "--mask-fixed", "auto"]  # one each: fine
    preflight_registration(job_from_arguments(build_parser().parse_args(argv)), data=False)


# --------------------------------------------------------------------------- 5 and lower: what the record says
def test_prep_json_names_the_users_file_records_directions_and_warns_about_the_spacing(tmp_path, phantom):
    """A MetaImage with ElementSpacing 0 0 0 is read through a patched copy, deleted afterwards: prep.json named
    that copy as the source of the downsampled image. The grids lacked their direction."""
    write_image(phantom.fixed, tmp_path / "ct.nrrd")
    write_image(phantom.moving, tmp_path / "mr.mha")
    text = re.sub(rb"ElementSpacing = [^\n]*\n", b"ElementSpacing = 0 0 0\n", (tmp_path / "mr.mha").read_bytes())
    (tmp_path / "mr.mha").write_bytes(text)
    argv = ["prep", "--fixed", str(tmp_path / "ct.nrrd"), "--moving", str(tmp_path / "mr.mha"), "--spacing-moving",
            "2.5,2.5,2.5", "--downsample-to", "3", "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((tmp_path / "out" / "prep.json").read_text())
    sources = {s["image"]: s["source"] for s in record["steps"] if s["step"] == "downsample"}
    assert sources == {"fixed": str(tmp_path / "ct.nrrd"), "moving": str(tmp_path / "mr.mha")}
    assert record["moving"]["direction"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert record["fixed"]["direction"] == list(phantom.fixed.GetDirection())
    assert record["modality"]["fixed"]["modality"] == "ct" and record["modality"]["moving"]["modality"] == "mr"
    (warning,) = [w for w in record["warnings"] if "spacing was set" in w]
    assert warning.startswith("the moving spacing was set to 2.5x2.5x2.5 mm (the input says 0x0x0 mm): a transform "
                              "found on the prepared images applies to the moving image with 2.5x2.5x2.5 mm voxels")  # fmt: skip


def test_an_roi_missing_the_overlap_of_overlapping_images_names_the_roi(phantom):
    fixed, moving = phantom.fixed, phantom.moving
    corner = np.array(fixed.TransformIndexToPhysicalPoint([0, 0, 0]))  # a fixed corner the moving image misses
    roi = (tuple(corner), tuple(corner + 20.0))
    with pytest.raises(InputError, match="the region of interest lies outside the region both images cover .the "
                       "images do overlap.: move or enlarge it"):  # fmt: skip
        prepare(fixed, moving, PrepOptions(crop_common=True, roi_lps=roi), initial_transform=phantom.truth)


def test_an_mr_with_a_negative_background_taken_for_ct_is_told_how_to_say_mr(phantom):
    """An MR stored with background -1000 follows the documented CT guess; the warning now names the fix."""
    array = sitk.GetArrayFromImage(phantom.moving) * 4 - 1000
    signed = sitk.GetImageFromArray(array.astype(np.float32))
    signed.CopyInformation(phantom.moving)
    pair = prepare(phantom.fixed, signed, PrepOptions(n4="moving"))
    assert "N4 corrects MR bias fields: skipped on the moving image, which looks like CT" in pair.warnings
    fix = "--modality-moving mr (in the RegistrationPrep panel: 'Moving image is: mr')"
    assert any(fix in warning for warning in pair.warnings)
    given = prepare(phantom.fixed, signed, PrepOptions(n4="moving", modality_moving="mr", n4_shrink=4))
    assert [s["image"] for s in given.steps if s["step"] == "bias correction"] == ["moving"]


def _zero_spacing_mha(image: sitk.Image, path) -> None:
    """``image`` as a MetaImage whose header says ElementSpacing 0 0 0 (a microscopy export that stores none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(image, path)
    path.write_bytes(re.sub(rb"ElementSpacing = [^\n]*\n", b"ElementSpacing = 0 0 0\n", path.read_bytes()))


def test_metaimages_without_spacing_keep_their_own_voxels_masks_and_colours(tmp_path, phantom):
    """A helper's prep sweep: two such files both named image.mha shared one patched copy, and the fixed image was
    prepared from the moving one's voxels (exit 0); a mask drawn on such a stack was refused, naming the option the
    user had given; an RGB one was called damaged."""
    _zero_spacing_mha(phantom.fixed, tmp_path / "a" / "image.mha")
    _zero_spacing_mha(phantom.moving, tmp_path / "b" / "image.mha")
    stored = {"fixed": phantom.fixed.GetSpacing(), "moving": phantom.moving.GetSpacing()}
    mask = sitk.Cast(phantom.moving > float(np.percentile(sitk.GetArrayViewFromImage(phantom.moving), 60)),
                     sitk.sitkUInt8)  # fmt: skip
    _zero_spacing_mha(mask, tmp_path / "b" / "mask.mha")
    options = PrepOptions(spacing_fixed=stored["fixed"], spacing_moving=stored["moving"],
                          mask_moving=str(tmp_path / "b" / "mask.mha"))  # fmt: skip
    pair = prepare(tmp_path / "a" / "image.mha", tmp_path / "b" / "image.mha", options)
    for role, image in (("fixed", phantom.fixed), ("moving", phantom.moving)):
        prepared = getattr(pair, role)
        assert prepared.GetSize() == image.GetSize(), role
        assert np.array_equal(sitk.GetArrayViewFromImage(prepared), sitk.GetArrayViewFromImage(image)), role
    assert np.array_equal(sitk.GetArrayViewFromImage(pair.moving_mask), sitk.GetArrayViewFromImage(mask))
    assert step(pair, "set spacing", "moving mask")["source"] == str(tmp_path / "b" / "mask.mha")
    # An RGB one, its spacing given, is read as its luminance.
    grey = sitk.Cast(sitk.RescaleIntensity(phantom.moving, 0, 255), sitk.sitkUInt8)
    _zero_spacing_mha(sitk.Compose(grey, grey, grey), tmp_path / "rgb.mha")
    pair = prepare(tmp_path / "a" / "image.mha", tmp_path / "rgb.mha",
                   PrepOptions(spacing_fixed=stored["fixed"], spacing_moving=stored["moving"], crop_common=True))
    assert pair.moving.GetSpacing() == pytest.approx(stored["moving"])
    assert any("RGB" in warning for warning in pair.warnings)
