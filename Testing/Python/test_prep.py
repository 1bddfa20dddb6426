"""Registration preparation: crop geometry, masks, N4, spacing sanity, streamed downsampling, prep + register."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SMALL, shared_data
from MultimodalRegistrationLib.cli.prep import add_prep_parser, prep_options, wants_prep
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.images import index_to_physical_matrix, inside_fraction, write_image
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm, rigid_transform, tissue_fractions
from MultimodalRegistrationLib.core.transforms import Transform, resample
from MultimodalRegistrationLib.prep.bias import correct_bias
from MultimodalRegistrationLib.prep.crop import box_halfspaces, common_region, crop_common
from MultimodalRegistrationLib.prep.downsample import downsample, read_downsampled
from MultimodalRegistrationLib.prep.masks import (
    combine,
    coverage_warning,
    exclusion_mask,
    foreground_mask,
    mask_from_labelmap,
)
from MultimodalRegistrationLib.prep.pipeline import PrepOptions, prepare
from MultimodalRegistrationLib.prep.spacing import check_spacing, resolution_mismatch, set_spacing
from MultimodalRegistrationLib.prep.summary import step_line
from MultimodalRegistrationLib.process.worker import library_root
from MultimodalRegistrationLib.registration.register import register


def voxel_points(image: sitk.Image) -> np.ndarray:
    """LPS centres of every voxel, in numpy (z, y, x) order, as (N, 3)."""
    size = image.GetSize()
    index = np.stack(np.meshgrid(*[np.arange(s) for s in size[::-1]], indexing="ij"), -1)[..., ::-1].reshape(-1, 3)
    matrix = index_to_physical_matrix(image)
    return index @ matrix[:3, :3].T + matrix[:3, 3]


def phantom_truth(image: sitk.Image, head_from_image: Transform, tissue: str = "air") -> np.ndarray:
    """Fraction of ``tissue`` at every voxel centre (z, y, x)."""
    points = head_from_image.transform_points(voxel_points(image))
    return tissue_fractions(points)[tissue].reshape(image.GetSize()[::-1])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def box_image(size, spacing, origin, direction=np.eye(3)) -> sitk.Image:
    ramp = np.arange(int(np.prod(size)), dtype=np.float32).reshape(tuple(size)[::-1])
    image = sitk.GetImageFromArray(1.0 + ramp / ramp.size)  # positive and not constant
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection(np.asarray(direction, float).ravel().tolist())
    return image


# --------------------------------------------------------------------------- cropping
@pytest.mark.parametrize("angle", [0.0, 30.0, 65.0])
def test_common_crop_bounds_the_exact_intersection_under_rotations(angle):
    oblique = rigid_transform(20.0, (1, 1, 0), (0, 0, 0)).matrix[:3, :3]
    fixed = box_image((60, 50, 40), (2.0, 2.0, 3.0), (-60, -50, -60), oblique)
    moving = box_image((50, 70, 45), (1.5, 1.2, 2.0), (-20, -40, -30))
    truth = rigid_transform(angle, (0.3, 0.5, 0.8), (25.0, -10.0, 15.0), center=(0, 0, 0))
    fixed_crop, moving_crop = crop_common(fixed, moving, truth, margin_mm=0.0)

    # Independent truth: fixed voxels whose centres map into the moving box, and the reverse.
    def hits(image, reference, transform):
        return sitk.GetArrayFromImage(sitk.Resample(image, reference, transform.sitk, sitk.sitkNearestNeighbor, 0)) > 0

    inside_moving, inside_fixed = hits(moving, fixed, truth), hits(fixed, moving, truth.inverse())
    for crop, hits in ((fixed_crop, inside_moving), (moving_crop, inside_fixed)):
        assert hits.any()
        z, y, x = np.nonzero(hits)
        low, high = np.array([x.min(), y.min(), z.min()]), np.array([x.max(), y.max(), z.max()])
        crop_low, crop_high = np.array(crop.index), np.array(crop.index) + np.array(crop.size) - 1
        assert np.all(crop_low <= low) and np.all(crop_high >= high)  # nothing common is cut off
        assert np.all(low - crop_low <= 1) and np.all(crop_high - high <= 1)  # and at most one voxel more

    # The region's vertices lie on both boxes' surfaces or inside, and inside the physical bounds of both crops.
    region = common_region(fixed, moving, truth)
    G, h = box_halfspaces(fixed)
    Gm, hm = box_halfspaces(moving, truth)
    assert np.all(region @ G.T <= h + 1e-6) and np.all(region @ Gm.T <= hm + 1e-6)
    # (pulled a micrometre towards the centre: the vertices on the boxes' faces are exact up to rounding)
    region = region.mean(axis=0) + (region - region.mean(axis=0)) * (1 - 1e-6)
    assert inside_fraction(region, fixed_crop.image) == 1.0
    assert inside_fraction(truth.transform_points(region), moving_crop.image) == 1.0

    # A crop is a sub-grid: same voxels at the same physical points.
    corner = fixed.TransformIndexToPhysicalPoint([int(i) for i in fixed_crop.index])
    assert np.allclose(fixed_crop.image.GetOrigin(), corner)
    assert fixed_crop.image.GetDirection() == fixed.GetDirection()


def test_a_nonlinear_transform_crops_conservatively():
    fixed = box_image((60, 50, 40), (2.0, 2.0, 3.0), (-60, -50, -60))
    moving = box_image((50, 70, 45), (1.5, 1.2, 2.0), (-20, -40, -30))
    linear = rigid_transform(30.0, (0.3, 0.5, 0.8), (25.0, -10.0, 15.0))
    field = Transform.from_displacement_field(linear.displacement_field(fixed))  # the same mapping, sampled
    assert not field.is_linear
    exact, _ = crop_common(fixed, moving, linear, margin_mm=0.0)
    sampled, _ = crop_common(fixed, moving, field, margin_mm=0.0)
    low, high = np.array(sampled.index), np.array(sampled.index) + sampled.size
    assert np.all(low <= exact.index) and np.all(high >= np.array(exact.index) + exact.size)  # never smaller
    assert np.all(np.array(exact.index) - low <= 3) and np.all(high - np.array(exact.index) - exact.size <= 3)


def test_margin_widens_the_crop_by_the_margin_in_voxels():
    fixed = box_image((80, 80, 60), (1.0, 1.0, 2.0), (-40, -40, -60))
    moving = box_image((20, 20, 10), (1.0, 1.0, 1.0), (-10, -10, -5))
    tight, _ = crop_common(fixed, moving, None, margin_mm=0.0)
    wide, _ = crop_common(fixed, moving, None, margin_mm=6.0)
    assert tight.size == (20, 20, 6)  # z: -5.5 .. 4.5 mm meets 2 mm voxels 27 .. 32
    assert np.array_equal(np.array(wide.size) - np.array(tight.size), [12, 12, 6])  # 6 mm = 6, 6 and 3 voxels a side


def test_images_that_do_not_overlap_are_refused_with_the_fix():
    fixed = box_image((20, 20, 20), (1, 1, 1), (0, 0, 0))
    moving = box_image((20, 20, 20), (1, 1, 1), (0, 0, 450))
    with pytest.raises(InputError, match="initial transform"):
        crop_common(fixed, moving)


def test_a_transform_found_on_crops_applies_to_the_originals(small_pair):
    """Transforms are physical: resampling the cropped pair equals resampling the originals."""
    size = np.array(small_pair.moving.GetSize())
    moving = sitk.RegionOfInterest(small_pair.moving, [int(s) for s in size // 2], [int(i) for i in size // 4])
    prepared = prepare(small_pair.fixed, moving, PrepOptions(crop_common=True, margin_mm=5.0),
                       initial_transform=small_pair.truth)  # fmt: skip
    assert prepared.fixed.GetNumberOfPixels() < small_pair.fixed.GetNumberOfPixels()
    on_crop = resample(prepared.moving, prepared.fixed, small_pair.truth)
    on_original = resample(moving, prepared.fixed, small_pair.truth)  # original moving, cropped grid
    assert np.array_equal(sitk.GetArrayViewFromImage(on_crop), sitk.GetArrayViewFromImage(on_original))
    full = prepared.resample_moving(small_pair.truth)
    assert full.GetSize() == small_pair.fixed.GetSize()  # the output volume lands on the original fixed grid


def test_roi_crop_in_fixed_space():
    fixed = box_image((100, 100, 50), (1.0, 1.0, 2.0), (-50, -50, -50))
    prepared = prepare(fixed, fixed, PrepOptions(roi_lps=((-10, -20, -10), (10, 20, 10)), margin_mm=0.0))
    assert prepared.fixed.GetSize() == (21, 41, 11)
    assert prepared.moving.GetSize() == (21, 41, 11)
    assert np.allclose(prepared.fixed.GetOrigin(), (-10, -20, -10))


# --------------------------------------------------------------------------- masks
def test_automatic_masks_cover_the_phantom_anatomy(small_pair):
    cases = [
        (small_pair.fixed, Transform.identity(), "ct"),
        (small_pair.moving, small_pair.truth.inverse(), "mr"),
    ]
    for image, head_from_image, expected in cases:
        mask, record = foreground_mask(image)
        assert record["modality"] == expected
        truth = phantom_truth(image, head_from_image) < 0.5
        found = sitk.GetArrayFromImage(mask).astype(bool)
        assert dice(found, truth) >= 0.95, (expected, dice(found, truth))
        assert (truth & ~found).sum() / truth.sum() < 0.005  # never cuts off the anatomy


def _inside(mask: sitk.Image, region: np.ndarray) -> float:
    return float(sitk.GetArrayViewFromImage(mask)[region].astype(bool).mean())


@pytest.mark.slow
def test_automatic_masks_keep_the_anatomy_of_real_images():
    """On real CT and MR the mask holds every voxel with clear signal, and the manual cord segmentations."""
    t1 = sitk.ReadImage(str(shared_data("mni_icbm152", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")))
    mask, _ = foreground_mask(t1)
    assert _inside(mask, sitk.GetArrayViewFromImage(t1) > 0) > 0.999  # the skull-stripped brain

    for contrast, segmentation in (("t1w", "t1w_seg-manual"), ("t2", "t2_seg-manual")):
        image = sitk.ReadImage(str(shared_data("sct", f"{contrast}.nii.gz")))
        cord = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data("sct", f"{segmentation}.nii.gz")))) > 0
        mask, _ = foreground_mask(image)
        assert _inside(mask, cord) == 1.0, contrast

    mr = sitk.ReadImage(str(shared_data("visible_human_head", "vm_head_mri.mha")))
    mask, _ = foreground_mask(mr)
    assert _inside(mask, sitk.GetArrayViewFromImage(mr) > 100) > 0.999  # tissue; the air reads below 20

    ct = sitk.ReadImage(str(shared_data("visible_human_head", "vm_head_ct.mha")))  # stored as HU + 1024
    mask, record = foreground_mask(ct, "ct")
    assert record["threshold"] == 524.0
    tissue = sitk.GetArrayFromImage(ct) > 1024 - 200
    tissue[:, 400:] = False  # rows 430 and below hold the scanner table, rightly left out
    assert _inside(mask, tissue) > 0.995


def test_labelmap_exclusion_and_combined_masks(small_pair):
    ct = small_pair.fixed
    labels = sitk.Cast(ct > 500, sitk.sitkUInt8) * 2 + sitk.Cast(ct < -500, sitk.sitkUInt8) * 1
    bone = mask_from_labelmap(labels, ct, labels=[2])
    assert np.array_equal(sitk.GetArrayViewFromImage(bone).astype(bool), sitk.GetArrayViewFromImage(ct) > 500)

    metal = exclusion_mask(ct, above=1000.0, margin_mm=4.0)
    bright = sitk.GetArrayViewFromImage(ct) > 1000
    excluded = sitk.GetArrayViewFromImage(metal).astype(bool)
    assert excluded[bright].all()
    bright_image = sitk.Cast(ct > 1000, sitk.sitkUInt8)
    distance = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(bright_image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    )
    assert excluded[(distance > 0) & (distance <= 4.0)].all() and not excluded[distance > 4.0].any()

    body, _ = foreground_mask(ct)
    combined = sitk.GetArrayFromImage(combine([body], [metal])).astype(bool)
    assert np.array_equal(combined, sitk.GetArrayViewFromImage(body).astype(bool) & ~excluded)


def test_a_mask_file_is_recorded_with_its_coverage_and_its_resampling():
    """prep.json had recorded no coverage for a mask file, nor that a 1 mm mask was resampled onto the image's grid
    (a helper's prep sweep)."""
    image = box_image((40, 40, 40), (2, 2, 2), (0, 0, 0))
    fine = box_image((80, 80, 80), (1, 1, 1), (-0.5, -0.5, -0.5))  # the same box on a 1 mm grid
    mask = sitk.Cast(sitk.GetImageFromArray((np.indices((80, 80, 80)) < 40).all(axis=0).astype(np.uint8)), sitk.sitkUInt8)
    mask.CopyInformation(fine)  # the first octant: 1/8 of the image
    for labelmap, moved in ((mask, True), (sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor), False)):
        pair = prepare(image, image, PrepOptions(mask_fixed=labelmap))
        step = next(step for step in pair.steps if step["step"] == "mask")
        assert step["coverage"] == pytest.approx(0.125, abs=1e-3)
        assert ("resampled onto the image's grid (nearest neighbour)" in step["why"]) is moved


def test_small_masks_warn_to_crop_instead():
    image = box_image((50, 50, 50), (1, 1, 1), (0, 0, 0))
    sphere = ((np.indices((50, 50, 50)) - 25) ** 2).sum(0) < 10**2
    small = sitk.GetImageFromArray(sphere.astype(np.uint8))
    small.CopyInformation(image)
    warning = coverage_warning(small, "fixed mask")
    assert warning is not None and "3%" in warning and "--crop-common" in warning
    # Already cropped to the common region: crop around the mask (a helper's sweep had been told --crop-common again).
    cropped = coverage_warning(small, "fixed mask", cropped_to_common=True)
    assert "a region of interest around the mask (--roi)" in cropped and "--crop-common" not in cropped
    assert coverage_warning(sitk.Cast(image > 0, sitk.sitkUInt8), "fixed mask") is None


# --------------------------------------------------------------------------- bias
@pytest.mark.slow
def test_n4_removes_most_of_a_synthetic_bias_field():
    pair = make_phantom_pair(ct_spacing=(5.0, 5.0, 5.0), mr_spacing=(3.0, 3.0, 3.0), seed=3)
    mr = pair.moving
    white = phantom_truth(mr, pair.truth.inverse(), "white") > 0.95
    array = sitk.GetArrayFromImage(mr)
    shape = np.array(array.shape, float)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, int(n)) for n in shape], indexing="ij", sparse=True)
    field = np.exp(0.3 * x - 0.25 * y * z + 0.2 * z).astype(np.float32)  # on top of the phantom's own bias
    biased = sitk.GetImageFromArray(array * field)
    biased.CopyInformation(mr)

    def cv(image):
        values = sitk.GetArrayViewFromImage(image)[white]
        return float(values.std() / values.mean())

    result = correct_bias(biased)
    noise_floor = 6.0 / 430.0  # the phantom's noise over white matter's value
    assert cv(biased) > 0.07
    assert cv(result.corrected) < 0.4 * cv(biased)
    assert cv(result.corrected) < noise_floor + 0.015
    assert result.corrected.GetSize() == mr.GetSize() and result.log_bias_field.GetSize() == mr.GetSize()


# --------------------------------------------------------------------------- spacing
def test_spacing_check_fires_on_a_2160_voxel_1mm_axis_and_suggests_a_plausible_size():
    stack = sitk.Image([2160, 2560, 4], sitk.sitkUInt8)
    check = check_spacing(stack, role="moving image")
    assert not check.plausible
    assert "2.16 m" in check.message or "2.56 m" in check.message
    assert "set the true spacing" in check.message
    extent = np.asarray(check.suggested_spacing) * np.asarray(stack.GetSize())
    assert 1.0 <= extent.max() <= 10.0  # a microscopy specimen, not a 2.5 m one
    assert check.suggested_spacing == (0.00325, 0.00325, 0.00325)
    assert "along axis 2 (4 slices) give the microscope's slice step" in check.message
    assert "slice step" not in check_spacing([2160, 2560, 1000], [1.0, 1.0, 1.0]).message

    micrometres = check_spacing([2160, 2560, 400], [3.25, 3.25, 10.0])
    assert micrometres.suggested_spacing == (0.00325, 0.00325, 0.01)
    assert check_spacing([512, 512, 300], [0.5, 0.5, 1.0]).plausible

    fixed = box_image((40, 40, 40), (1, 1, 1), (0, 0, 0))
    with pytest.raises(InputError, match="--spacing-moving"):
        prepare(fixed, stack)
    fixed_spacing = set_spacing(stack, check.suggested_spacing)
    assert fixed_spacing.GetSpacing() == check.suggested_spacing and stack.GetSpacing() == (1.0, 1.0, 1.0)


def test_resolution_mismatch_names_the_finer_image():
    mismatch = resolution_mismatch((1.0, 1.0, 1.0), (0.01, 0.01, 0.02))
    assert mismatch.finer == "moving" and mismatch.target_mm == 1.0 and "--downsample-to 1" in mismatch.message
    assert resolution_mismatch((1.0, 1.0, 2.5), (1.5, 1.5, 1.5)) is None


def test_downsampling_is_anti_aliased():
    """Stripes finer than the new voxels average out instead of folding into a coarse false pattern."""
    x = np.arange(400) * 0.01  # 4 mm at 0.01 mm
    stripes = np.sin(2 * np.pi * x / 0.023)  # period 0.023 mm, far below the 0.1 mm target
    image = sitk.GetImageFromArray(np.broadcast_to(100 + 50 * stripes, (4, 8, 400)).astype(np.float32).copy())
    image.SetSpacing((0.01, 0.01, 0.01))
    small = downsample(image, 0.1)
    assert small.GetSpacing()[0] == pytest.approx(0.1) and small.GetSize()[0] == 40
    values = sitk.GetArrayViewFromImage(small)[:, :, 1:-1]
    stripes_std = 50 / np.sqrt(2)
    assert abs(values.mean() - 100) < 1.0 and values.std() < 0.1 * stripes_std  # 90% of the stripes gone
    naive = sitk.GetArrayViewFromImage(image)[:, :, ::10]
    assert naive.std() > 0.5 * stripes_std  # plain subsampling folds them into a false coarse pattern


def test_a_downsampling_size_finer_than_every_image_is_warned_about():
    """--downsample-to 1e-9 (a size typed in metres?) did nothing and said nothing (a helper's sweep)."""
    fixed = box_image((20, 20, 20), (1, 1, 1), (0, 0, 0))
    moving = box_image((20, 20, 20), (2, 2, 2), (0, 0, 0))
    prepared = prepare(fixed, moving, PrepOptions(downsample_to=0.0005))
    assert prepared.steps == []
    assert prepared.warnings == ["--downsample-to 0.0005 mm: no image has voxels finer than that (fixed 1 mm, moving "
                                 "2 mm), so nothing was downsampled: give the voxel size to reach in mm"]  # fmt: skip
    assert prepare(fixed, moving, PrepOptions(downsample_to=1.5)).warnings == []
    # auto with voxel sizes 2 times apart: nothing to do, and said as a step (it printed nothing).
    auto = prepare(fixed, moving, PrepOptions(downsample_to="auto"))
    assert auto.warnings == [] and auto.steps == [{
        "step": "downsample", "image": "neither",
        "why": "not needed: the voxel sizes (fixed 1 mm, moving 2 mm) differ less than 4 times"}]  # fmt: skip
    # as mmreg prep and the panel print it: the line had ended in a KeyError (a helper's docs sweep)
    assert step_line(auto.steps[0]) == ("downsample (neither): not needed: the voxel sizes (fixed 1 mm, moving 2 mm) "
                                        "differ less than 4 times")  # fmt: skip


def test_4d_and_vector_inputs_say_how_to_pick_one_volume():
    fixed = box_image((20, 20, 20), (1, 1, 1), (0, 0, 0))
    series = sitk.JoinSeries([fixed, fixed, fixed])
    with pytest.raises(InputError, match=r"4D \(3 volumes.*pick one volume"):
        prepare(fixed, series)
    vector = sitk.Compose([fixed, fixed])
    with pytest.raises(InputError, match="pick one component"):
        prepare(vector, fixed)


MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import SimpleITK as sitk
    from MultimodalRegistrationLib.prep.downsample import read_downsampled
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    image, record = read_downsampled(sys.argv[1], float(sys.argv[2]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"extra_mb": (peak - before) / 1024, "size": image.GetSize(), "read": record["read"]}))
    """
)


def _write_stack(path, size, spacing) -> None:
    """A uint16 stack written slab by slab (the test never holds it whole either)."""
    reference = sitk.Image([size[0], size[1], 1], sitk.sitkUInt16)
    reference.SetSpacing(spacing)
    x = np.arange(size[0], dtype=np.uint32)
    y = np.arange(size[1], dtype=np.uint32)[:, None]
    with open(path, "wb") as handle:
        handle.write(
            ("NRRD0004\ntype: uint16\ndimension: 3\nspace: left-posterior-superior\n"
             f"sizes: {size[0]} {size[1]} {size[2]}\n"
             f"space directions: ({spacing[0]},0,0) (0,{spacing[1]},0) (0,0,{spacing[2]})\n"
             "kinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n\n").encode()
        )  # fmt: skip
        handle.writelines(((x * 7 + y * 13 + z * 17) % 4096).astype("<u2").tobytes() for z in range(size[2]))


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_downsampling_a_large_stack_streams_it(tmp_path, suffix):
    """Scaled-down memory bound: a 240 MB stack to 0.1 mm needs well under the input's size in memory."""
    size, spacing = (1000, 800, 150), (0.00325, 0.00325, 0.005)
    source = tmp_path / "stack.nrrd"
    _write_stack(source, size, spacing)
    if suffix == ".mha":  # MetaImage streams through ITK
        converted = tmp_path / "stack.mha"
        sitk.WriteImage(sitk.ReadImage(str(source)), str(converted))
        source.unlink()
        source = converted
    input_mb = np.prod(size) * 2 / 1024**2
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    command = [sys.executable, "-c", MEMORY_PROBE, str(source), "0.1"]
    run = subprocess.run(command, capture_output=True, text=True, env=environment)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    assert measured["read"].startswith("streamed")
    assert measured["extra_mb"] < 0.5 * input_mb, measured  # the whole input never sat in memory
    assert np.allclose(measured["size"], np.array(size) * spacing / 0.1, atol=1.0)
    streamed, _ = read_downsampled(source, 0.1)
    whole = downsample(sitk.ReadImage(str(source)), 0.1)
    assert np.allclose(sitk.GetArrayViewFromImage(streamed), sitk.GetArrayViewFromImage(whole), atol=1e-3)


# --------------------------------------------------------------------------- prep + register
def _whole_body_ct() -> sitk.Image:
    """A CT from the top of the head down the trunk: 750 mm, three times the MR's field of view."""
    tall = make_phantom_pair(ct_spacing=SMALL["ct_spacing"], mr_spacing=(25, 25, 25), field_of_view_mm=(230, 250, 1230))
    ct = tall.fixed
    top = int(round((120.0 - ct.GetOrigin()[2]) / ct.GetSpacing()[2]))
    ct = sitk.RegionOfInterest(ct, [ct.GetSize()[0], ct.GetSize()[1], top + 1], [0, 0, 0])
    x, y, z = voxel_points(ct).T.reshape(3, *ct.GetSize()[::-1])
    array = sitk.GetArrayFromImage(ct)
    trunk = ((x / 110) ** 2 + ((y - 10) / 80) ** 2 < 1) & (z < -150)
    lungs = ((np.abs(x) - 50) / 35) ** 2 + ((y - 5) / 45) ** 2 + ((z + 330) / 120) ** 2 < 1
    spine = (x**2 + (y - 55) ** 2 < 12**2) & (z < -150)
    array = np.where(trunk, 40.0, array)
    array = np.where(lungs, -850.0, array)
    array = np.where(spine, 700.0, array).astype(np.float32)
    body = sitk.GetImageFromArray(array)
    body.CopyInformation(ct)
    return body


@pytest.mark.slow
def test_a_3x_field_of_view_difference_registers_after_prep(small_pair):
    """Cropped to the common region, a whole-body CT against a head MR registers under 1 mm. (Unprepared, it had ended
    over 20 mm off until the any-pose search's coarse grids were centred, 41st session: 1.7 mm then, not asserted.)"""
    ct = _whole_body_ct()
    assert ct.GetSize()[2] * ct.GetSpacing()[2] >= 3 * 250 - 3
    prepared = prepare(ct, small_pair.moving, PrepOptions(crop_common=True))
    assert prepared.steps[0]["step"] == "crop" and prepared.steps[0]["voxels_kept"] < 0.4
    result = register(prepared.fixed, prepared.moving)
    # The head points are physical: the error is measured on the originals' frames.
    assert mean_error_mm(result.transform, small_pair.truth, small_pair.head_points) < 1.0
    whole = prepared.resample_moving(result.transform)
    assert whole.GetSize() == ct.GetSize()


# --------------------------------------------------------------------------- CLI
def _parse(*arguments):
    parser = argparse.ArgumentParser(prog="mmreg")
    add_prep_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["prep", *map(str, arguments)])


def test_mmreg_prep_writes_images_masks_and_the_reasons(small_pair, tmp_path, capsys):
    write_image(small_pair.fixed, tmp_path / "ct.nrrd")
    write_image(small_pair.moving, tmp_path / "mr.nii.gz")
    arguments = _parse(
        "--fixed", tmp_path / "ct.nrrd", "--moving", tmp_path / "mr.nii.gz", "--crop-common", "--margin", 5,
        "--mask-fixed", "auto", "--mask-moving", "auto", "--exclude-above", 1000, "--output-dir", tmp_path / "out",
    )  # fmt: skip
    assert arguments.handler(arguments) == 0
    summary = json.loads((tmp_path / "out" / "prep.json").read_text())
    done = [(step["step"], step["image"]) for step in summary["steps"]]
    assert done == [("crop", "fixed"), ("crop", "moving"), ("mask", "fixed"), ("mask", "moving"), ("exclude", "fixed")]
    assert all(step["why"] for step in summary["steps"])
    for name in ("fixed", "moving", "fixed_mask", "moving_mask"):
        written = sitk.ReadImage(summary["outputs"][name])
        assert written.GetSize() == tuple(summary[name]["size"])
    assert sitk.ReadImage(str(tmp_path / "ct.nrrd")).GetSize() == small_pair.fixed.GetSize()  # originals untouched
    assert "wrote summary" in capsys.readouterr().out


def test_register_prep_options_make_a_worker_job_record():
    parser = argparse.ArgumentParser()
    from MultimodalRegistrationLib.cli.prep import add_prep_arguments

    add_prep_arguments(parser, for_register=True)
    alone = parser.parse_args(["--prep"])
    assert wants_prep(alone) and prep_options(alone).crop_common is True
    assert not wants_prep(parser.parse_args([]))
    arguments = parser.parse_args(["--n4", "moving", "--downsample-to", "auto", "--roi", "10,20,30,-10,-20,-30"])
    record = prep_options(arguments)
    options = PrepOptions.from_dict(json.loads(json.dumps(record.to_dict())))  # as a worker reads it
    assert options.n4 == "moving" and options.downsample_to == "auto" and not options.crop_common
    assert np.allclose(options.roi_lps, [[-10, -20, 30], [10, 20, -30]])  # RAS corners become LPS


def test_a_transform_that_places_the_images_apart_is_named_when_cropping():
    """The images overlap as placed, but the initial transform given moves them 900 mm apart: the refusal asked for
    an initial transform, which the user had given (a helper's sweep)."""
    fixed = box_image((20, 20, 20), (1, 1, 1), (0, 0, 0))
    moving = box_image((20, 20, 20), (1, 1, 1), (2, 0, 0))
    far = Transform.from_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 900.0], [0, 0, 0, 1]]))
    with pytest.raises(InputError, match="the initial transform given places the images apart"):
        crop_common(fixed, moving, far)
    apart = box_image((20, 20, 20), (1, 1, 1), (0, 0, 900))
    with pytest.raises(InputError, match="the images do not overlap in physical space: give an initial transform"):
        crop_common(fixed, apart)
    assert len(common_region(fixed, moving, Transform.identity()))  # as placed they overlap
