"""Masks and the engine's samples: a fixed mask too small for the sampler is refused before the
engine, small organ masks on a large field of view get a start where they meet, and a small moving
field of view without masks is sampled where it lies."""

import re
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, rigid_transform
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.engines.sampling import needed_valid_fraction
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.masks import (
    START_MARGIN,
    check_fixed_mask_size,
    mask_centroid,
    valid_fraction,
)
from MultimodalRegistrationLib.registration.rules.sampling_region import moving_footprint, sampling_regions
from ultrasound_like import ultrasound_like_pair

# An organ in the phantom's head (fixed LPS mm): the lesion's edge and the white-matter border,
# a 27 cm³ ellipsoid, a prostate's size. The moving image is a 90 mm box of the MR around it,
# off-centre like an ultrasound sweep, 12 degrees and 78 mm away from the fixed image (the truth).
ORGAN_CENTRE, ORGAN_RADII = np.array([15.0, -10.0, 15.0]), np.array([18.0, 22.0, 16.0])
ORGAN_TRUTH = rigid_transform(12.0, (0.4, 0.8, 0.45), (60.0, -40.0, 30.0))


def image_like(shape_xyz, spacing_mm) -> sitk.Image:
    image = sitk.Image([int(n) for n in shape_xyz], sitk.sitkFloat32)
    image.SetSpacing([float(s) for s in spacing_mm])
    return image


def voxel_points(image: sitk.Image) -> np.ndarray:
    index = np.indices(image.GetSize()[::-1]).reshape(3, -1)[::-1].T.astype(float)
    to_physical = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    return index @ to_physical.T + np.asarray(image.GetOrigin())


def ellipsoid_mask(image: sitk.Image, to_head: Transform, centre, radii) -> sitk.Image:
    """The voxels of ``image`` whose head-space point (through ``to_head``) lies in the ellipsoid."""
    head = to_head.transform_points(voxel_points(image))
    inside = (((head - np.asarray(centre)) / np.asarray(radii)) ** 2).sum(axis=1) <= 1.0
    mask = sitk.GetImageFromArray(inside.reshape(image.GetSize()[::-1]).astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def few_voxels(image: sitk.Image, count: int) -> sitk.Image:
    """``count`` voxels in a row at the image's centre."""
    array = np.zeros(image.GetSize()[::-1], np.uint8)
    z, y, x = np.array(array.shape) // 2
    array[z, y, x : x + count] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    return mask


@pytest.mark.parametrize("engine", ["elastix", "ants"])
def test_a_five_voxel_fixed_mask_is_refused_before_the_engine(small_pair, engine):
    # elastix used to run 18 s and then stop with "Could not find enough image samples" (exit 1);
    # ANTs stopped on "VirtualSampledPointSet must have 1 or more points" and returned its start.
    mask = few_voxels(small_pair.fixed, 5)
    started = time.perf_counter()
    with pytest.raises(InputError) as refused:
        register(small_pair.fixed, small_pair.moving, engine=engine, preset="rigid", fixed_mask=mask)
    assert time.perf_counter() - started < 1.0  # before the pose search and the engine
    message = str(refused.value)
    assert "the fixed mask holds 5 voxels" in message
    assert "coarsest level, 8 x 8 x 12 mm voxels" in message  # 2 x 2 x 3 mm shrunk 4 times
    assert "enlarge the mask to at least" in message and "crop the images to the region" in message


def test_a_whole_head_mask_on_an_oblique_image_is_not_refused(small_pair):
    """The head mask of a CT whose axes are turned 20 degrees: its world-axis box, seen back on the image's axes,
    reached 310 mm on a 252 mm image, and the mask (19% of the image) was refused as filling 7.5% of its box, with
    the advice to enlarge it (a helper's sweep). elastix cuts that box to the image, as the rule now does."""
    fixed = sitk.Image(small_pair.fixed)  # a copy: the fixture is shared
    head = sitk.Cast(fixed > 20, sitk.sitkUInt8)
    turned = rigid_transform(20.0, (0.3, 0.2, 1.0), (0, 0, 0)).matrix[:3, :3]
    for image in (fixed, head):
        image.SetDirection(tuple((turned @ np.asarray(image.GetDirection()).reshape(3, 3)).ravel()))
    check_fixed_mask_size(load_preset("elastix", "rigid"), fixed, head)


def test_the_mask_size_rule_has_a_margin_over_the_measured_failures():
    # Measured on a 96³ phantom at 2 mm (coarsest level 8 mm): elastix rigid failed for balls of up
    # to 180 voxels (1.4 cm³), never from 220; ANTs rigid returned its start for balls of up to
    # 9.2 cm³, never from 11.4 cm³. The rule refuses those sizes and accepts masks twice as large.
    image = image_like((96, 96, 96), (2.0, 2.0, 2.0))
    centre = np.array([96.0, 96.0, 96.0])

    def ball(volume_cm3: float) -> sitk.Image:
        radius = (volume_cm3 * 1000 * 3 / (4 * np.pi)) ** (1 / 3)
        return ellipsoid_mask(image, Transform.identity(), centre, [radius] * 3)

    for engine, failed_cm3, accepted_cm3 in (("elastix", 1.4, 12.0), ("ants", 9.2, 48.0)):
        recipe = load_preset(engine, "rigid")
        with pytest.raises(InputError, match="too few for"):
            check_fixed_mask_size(recipe, image, ball(failed_cm3))
        check_fixed_mask_size(recipe, image, ball(accepted_cm3))


def test_the_mask_size_rule_is_read_from_the_preset(tmp_path):
    # One resolution instead of three: the coarsest level is the image itself, and a 1.4 cm³ ball
    # that the rigid preset refuses is enough; fewer samples per iteration ask for nothing more.
    image = image_like((96, 96, 96), (2.0, 2.0, 2.0))
    mask = ellipsoid_mask(image, Transform.identity(), [96.0, 96.0, 96.0], [7.0, 7.0, 7.0])
    with pytest.raises(InputError, match="8 x 8 x 8 mm voxels"):
        check_fixed_mask_size(load_preset("elastix", "rigid"), image, mask)
    text = Path(load_preset("elastix", "rigid").files[0]).read_text()
    single = tmp_path / "single-level.txt"
    single.write_text(text.replace("(NumberOfResolutions 3)", "(NumberOfResolutions 1)").replace(
        "(MaximumStepLength 4.0 2.0 0.25)", "(MaximumStepLength 0.25)"))  # one step per level, as presets are checked
    check_fixed_mask_size(load_preset("elastix", str(single)), image, mask)


def test_valid_fraction_counts_the_fixed_mask_inside_the_moving_buffer_and_mask():
    fixed = image_like((40, 40, 40), (2.0, 2.0, 2.0))
    moving = image_like((40, 40, 40), (2.0, 2.0, 2.0))
    fixed_mask = ellipsoid_mask(fixed, Transform.identity(), [40.0, 40.0, 40.0], [10.0, 10.0, 10.0])
    moving_mask = ellipsoid_mask(moving, Transform.identity(), [40.0, 40.0, 40.0], [10.0, 10.0, 10.0])
    shifted = Transform.from_matrix(np.array([[1, 0, 0, 10.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert valid_fraction(fixed, moving, Transform.identity(), fixed_mask, moving_mask) == 1.0
    # Two 20 mm balls 10 mm apart share 31% of their volume.
    assert valid_fraction(fixed, moving, shifted, fixed_mask, moving_mask) == pytest.approx(0.31, abs=0.04)
    # Without a moving mask only the buffer counts; 50 mm off, the ball leaves the 80 mm image.
    assert valid_fraction(fixed, moving, shifted, fixed_mask) == 1.0
    far = Transform.from_matrix(np.array([[1, 0, 0, 50.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert valid_fraction(fixed, moving, far, fixed_mask) == 0.0
    assert needed_valid_fraction(load_preset("elastix", "rigid"), fixed, fixed_mask) == 0.25


@pytest.fixture(scope="module")
def organ_case():
    """A large head CT (fixed) and a 90 mm box of the MR (moving), with the organ masked on both."""
    pair = make_phantom_pair(truth=ORGAN_TRUTH, ct_spacing=(2.0, 2.0, 3.0), mr_spacing=(1.5, 1.5, 1.5))
    centre = ORGAN_TRUTH.transform_points([ORGAN_CENTRE])[0] + np.array([6.0, -4.0, 5.0])
    low = np.array(pair.moving.TransformPhysicalPointToIndex(tuple(centre - 45.0)))
    high = np.array(pair.moving.TransformPhysicalPointToIndex(tuple(centre + 45.0)))
    moving = sitk.RegionOfInterest(pair.moving, (high - low).tolist(), low.tolist())
    fixed_mask = ellipsoid_mask(pair.fixed, Transform.identity(), ORGAN_CENTRE, ORGAN_RADII)
    moving_mask = ellipsoid_mask(moving, ORGAN_TRUTH.inverse(), ORGAN_CENTRE, ORGAN_RADII)
    return pair.fixed, moving, fixed_mask, moving_mask


@pytest.mark.slow
def test_small_organ_masks_on_a_large_field_of_view_register_from_the_mask_centroids(organ_case):
    # Before: the any-pose start left 9% of the fixed mask in the moving mask, the centre start none,
    # and elastix stopped on "Too many samples map outside moving image buffer: 365 / 4096" (exit 1).
    fixed, moving, fixed_mask, moving_mask = organ_case
    result = register(fixed, moving, engine="elastix", preset="rigid", fixed_mask=fixed_mask, moving_mask=moving_mask)
    moved = [w for w in result.warnings if "so that the fixed and moving mask centroids meet" in w]
    assert moved, result.warnings
    before = [int(m) for w in moved for m in re.findall(r"only (\d+)% of the fixed mask", w)]
    # each start, as found, was below the margin that moves it (twice the 25% elastix needs): the any-pose start left
    # 9%, and 41% once its search left out the fixed samples beyond the box's faces (anypose._search_scorer)
    assert max(before) < START_MARGIN * 25
    mapped = result.transform.transform_points([mask_centroid(fixed_mask)])[0]
    assert np.linalg.norm(mapped - mask_centroid(moving_mask)) < 2.0
    targets = ORGAN_CENTRE + np.random.default_rng(3).uniform(-0.6, 0.6, (200, 3)) * ORGAN_RADII
    errors = np.linalg.norm(result.transform.transform_points(targets) - ORGAN_TRUTH.transform_points(targets), axis=1)
    assert errors.mean() < 1.5 and errors.max() < 2.5, (
        f"organ errors: mean {errors.mean():.2f}, max {errors.max():.2f} mm"
    )


def test_masks_of_different_anatomy_are_refused_before_the_engine(organ_case):
    # A moving mask a tenth the organ's size: centred on each other, 10% of the fixed mask falls in it.
    fixed, moving, fixed_mask, _ = organ_case
    small = ellipsoid_mask(moving, ORGAN_TRUTH.inverse(), ORGAN_CENTRE, ORGAN_RADII * 0.46)
    started = time.perf_counter()
    with pytest.raises(InputError) as refused:
        register(
            fixed, moving, engine="elastix", preset="rigid", fixed_mask=fixed_mask, moving_mask=small, init="geometry"
        )
    assert time.perf_counter() - started < 3.0
    message = str(refused.value)
    assert re.search(
        r"the fixed mask and the moving mask overlap only \d+% at the start \(elastix needs 25%\)", message
    )
    assert "prealign with landmarks" in message and "masks that cover the same anatomy" in message


def test_ants_refuses_the_organ_mask_as_too_small_for_its_coarsest_level(organ_case):
    # ANTs rigid samples 10% of 8 x 8 x 12 mm voxels: a 27 cm³ mask yields 3.5 samples, 4.6 needed.
    fixed, moving, fixed_mask, moving_mask = organ_case
    with pytest.raises(InputError, match=r"holds \d+ voxels \(27 cm³\), too few for ANTs rigid.*or use elastix"):
        register(fixed, moving, engine="ants", preset="rigid", fixed_mask=fixed_mask, moving_mask=moving_mask)


def test_a_small_moving_box_gets_a_fixed_sampling_region_where_it_lies_for_elastix_only():
    # A 120 mm fixed cube and a 60 mm moving box: 12.5% of the fixed image lies in the box, below the
    # 50% elastix wants at its start (25% needed, times 2); ANTs needs a handful of samples.
    fixed = image_like((60, 60, 60), (2.0, 2.0, 2.0))
    moving = image_like((30, 30, 30), (2.0, 2.0, 2.0))
    moving.SetOrigin((30.0, 30.0, 30.0))
    runs = [("centre", Transform.identity())]
    regions = sampling_regions(runs, fixed, moving, load_preset("elastix", "rigid"))
    assert list(regions) == ["centre"]
    assert regions["centre"].share_of_fixed == pytest.approx(0.125, abs=0.01)
    assert valid_fraction(fixed, moving, Transform.identity(), regions["centre"].mask) == 1.0
    assert f"({regions['centre'].share_of_fixed:.0%} of the fixed image)" in regions["centre"].describe()
    assert sampling_regions(runs, fixed, moving, load_preset("ants", "rigid")) == {}
    # A box as large as the fixed image needs no region; a moving mask narrows the region to itself.
    same_size = image_like((60, 60, 60), (2.0, 2.0, 2.0))
    assert sampling_regions(runs, fixed, same_size, load_preset("elastix", "rigid")) == {}
    ball = ellipsoid_mask(moving, Transform.identity(), [60.0, 60.0, 60.0], [20.0, 20.0, 20.0])
    footprint = moving_footprint(fixed, moving, Transform.identity(), ball)
    volume_cm3 = np.count_nonzero(sitk.GetArrayViewFromImage(footprint)) * 8.0 / 1000
    assert volume_cm3 == pytest.approx(4 / 3 * np.pi * 20.0**3 / 1000, rel=0.1)


@pytest.mark.slow
def test_a_small_ultrasound_box_against_a_large_mr_registers_instead_of_failing():
    # 120 mm MR at 2 mm against a 64 x 60 x 60 mm ultrasound-like box: 13% of the MR lies in the box at
    # the start. Before, elastix stopped every run with "Too many samples map outside moving image
    # buffer"; sampling the MR where the box lies, unguided rigid beat the start (10.7 -> 5.4 mm) and
    # gland-guided rigid reached 0.96 mm (median over 20 targets).
    pair = ultrasound_like_pair(seed=0, size_mm=120.0, spacing_mm=2.0)
    start = centre_alignment(pair.fixed, pair.moving, None, "geometry")
    assert valid_fraction(pair.fixed, pair.moving, start) < 0.25  # what elastix needs of whole-image samples

    def median_error(transform: Transform) -> float:
        mapped = transform.transform_points(pair.targets_fixed)
        true = pair.truth.transform_points(pair.targets_fixed)
        return float(np.median(np.linalg.norm(mapped - true, axis=1)))

    unguided = register(pair.fixed, pair.moving, engine="elastix", preset="rigid", init="geometry")
    assert "13% of the fixed image" in unguided.provenance.fixed_sampling
    assert unguided.provenance.kept == "result"
    before, after = median_error(start), median_error(unguided.transform)
    assert after < before - 3.0, (before, after)
    guidance = Guidance(fixed_segmentation=pair.fixed_labels, moving_segmentation=pair.moving_labels)
    guided = register(pair.fixed, pair.moving, engine="elastix", preset="rigid", guidance=guidance)
    assert guided.provenance.fixed_sampling is not None
    assert median_error(guided.transform) < 1.5, median_error(guided.transform)


def test_a_thin_slab_inside_a_large_image_is_seen_to_overlap_it():
    """A CT slab 8 mm thick lying wholly inside a 165 mm MR (Visible Human, MR fixed): the overlap grid's 10 planes,
    16.5 mm apart, all missed it, and --init geometry was refused as "images do not overlap" (a helper's sweep)."""
    from MultimodalRegistrationLib.core.metric import overlap_fraction
    from MultimodalRegistrationLib.registration.runs import MIN_OVERLAP

    fixed = sitk.Image([165, 165, 165], sitk.sitkUInt8)  # 1 mm, origin 0
    slab = sitk.Image([160, 160, 8], sitk.sitkUInt8)
    slab.SetOrigin([2.0, 2.0, 74.0])  # z 74-81 mm: between 10 planes (72.9, 91.1 mm); 40 planes, 4.2 mm apart, meet it
    fraction = overlap_fraction(fixed, slab, Transform.identity())
    assert MIN_OVERLAP < fraction < 0.1, fraction


def test_a_thin_moving_slab_that_loses_the_overlap_is_advised_to_be_the_fixed_image():
    """Visible Human, MR fixed and the 8-slice CT slab moving: every start failed with "Too many samples map outside
    moving image buffer" and the hint spoke of masks and landmarks; CT -> MR registers in 1.3 s (a helper's sweep)."""
    from MultimodalRegistrationLib.registration.rules.thin_moving import thin_moving_hint

    mr = sitk.Image([165, 165, 165], sitk.sitkUInt8)
    ct = sitk.Image([160, 160, 8], sitk.sitkUInt8)
    said = thin_moving_hint(mr, ct)
    assert said.startswith("the moving image is a slab 8 mm thin inside a fixed image 165 mm across")
    assert "register the other way round (it as --fixed" in said and "--output-inverse" in said
    assert thin_moving_hint(ct, mr) is None and thin_moving_hint(mr, mr) is None
