"""A thin slab as the moving image is registered both ways round, and the way its images agree better is kept."""

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SMALL, shared_data
from MultimodalRegistrationLib.core.metric import mutual_information
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm, rigid_transform
from MultimodalRegistrationLib.qa.triage import triage_case
from MultimodalRegistrationLib.registration.describe import describe_result
from MultimodalRegistrationLib.registration.other_way import _apart_mm, _doubted, other_way_reason, swapped
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.thin_moving import OTHER_WAY, WAYS_DISAGREE
from MultimodalRegistrationLib.registration.settings import RegistrationSettings


def slab_of(image: sitk.Image, low_mm: float, high_mm: float) -> sitk.Image:
    """The slices of ``image`` (axial, identity direction) between two heights (mm)."""
    heights = [image.TransformIndexToPhysicalPoint([0, 0, k])[2] for k in range(image.GetSize()[2])]
    kept = [k for k, z in enumerate(heights) if low_mm <= z <= high_mm]
    return image[:, :, kept[0] : kept[-1] + 1]


def posed(image: sitk.Image, matrix: np.ndarray) -> sitk.Image:
    """The image moved by a rigid pose through its header alone (exact)."""
    result = sitk.Image(image)
    result.SetDirection((matrix[:3, :3] @ np.asarray(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    result.SetOrigin((matrix[:3, :3] @ np.asarray(image.GetOrigin()) + matrix[:3, 3]).tolist())
    return result


@pytest.fixture(scope="module")
def skull_base():
    """A CT-like 40 mm skull-base slab (moving) and an MR-like whole head (fixed) from MNI at 2 mm, 30 degrees and
    27 mm apart, with brain points in the slab (fixed LPS mm) and the truth."""
    name = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
    t1, grey, white = (
        sitk.ConstantPad(sitk.BinShrink(sitk.ReadImage(str(shared_data("mni_icbm152", name.format(part))),
                                                       sitk.sitkFloat32), [2, 2, 2]), [8] * 3, [8] * 3, 0.0)
        for part in ("t1", "gm", "wm")
    )  # fmt: skip
    brain = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(t1 > 0, [2, 2, 2]))
    outside = sitk.SignedMaurerDistanceMap(brain, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    inside, skull, scalp = (sitk.Cast(region, sitk.sitkFloat32) for region in
                            (outside <= 0, (outside > 3) & (outside <= 9), (outside > 9) & (outside <= 13)))  # fmt: skip
    air = 1.0 - inside - skull - scalp
    ct = inside * (grey * 40.0 + white * 28.0 + 10.0) + skull * 900.0 + scalp * 30.0 - air * 1000.0
    mr = inside * t1 + skull * 8.0 + scalp * 90.0
    truth = rigid_transform(30, (1, 2, 3), (15.0, -20.0, 10.0))
    index = np.argwhere(sitk.GetArrayFromImage(outside) <= -2)[::20, ::-1]
    points = np.array([mr.TransformIndexToPhysicalPoint([int(i) for i in v]) for v in index])
    points = points[(points[:, 2] > -60) & (points[:, 2] < -30)]
    return mr, posed(slab_of(ct, -65, -25), truth.matrix), truth, points


def test_a_thin_moving_slab_is_registered_the_other_way_round_when_that_agrees_better(skull_base):
    """Slab as moving, elastix had ended 40.3 mm off with no warning; the other way round 0.12 mm."""
    fixed, moving, truth, points = skull_base
    result = register(fixed, moving)
    assert mean_error_mm(result.transform, truth, points) < 0.5
    assert result.warnings[-1].startswith(f"{OTHER_WAY}: the moving image is a slab 40 mm thin")
    assert "agree better that way" in result.provenance.other_way_round
    assert "registered the other way round (the moving image as the fixed one) and started from" in describe_result(
        result.summary())
    # In the caller's roles: the transform maps fixed to moving, its inverse back, the metric as every run's.
    assert result.provenance.fixed.size == list(fixed.GetSize())
    assert result.provenance.moving.size == list(moving.GetSize())
    assert np.allclose(result.inverse.matrix @ result.transform.matrix, np.eye(4), atol=1e-9)
    assert result.metric_after == pytest.approx(mutual_information(fixed, moving, result.transform), abs=1e-9)
    assert result.metric_after > result.metric_before + 0.3


def test_only_a_thin_moving_slab_under_a_linear_unguided_preset_is_registered_both_ways(small_pair):
    fixed, moving = small_pair.fixed, small_pair.moving
    slab = slab_of(fixed, 0, 30)
    assert other_way_reason(moving, slab, RegistrationSettings(), None).startswith("the moving image is a slab 30 mm")
    assert other_way_reason(moving, slab, RegistrationSettings(preset="affine"), None) is not None
    assert other_way_reason(fixed, moving, RegistrationSettings(), None) is None  # whole images
    assert other_way_reason(slab, moving, RegistrationSettings(), None) is None  # the slab already fixed
    assert other_way_reason(moving, slab, RegistrationSettings(preset="deformable"), None) is None  # no exact inverse


def test_swapped_settings_exchange_the_masks_and_invert_the_initial_transform():
    fixed_mask, moving_mask = sitk.Image([4, 4, 4], sitk.sitkUInt8) + 1, sitk.Image([5, 5, 5], sitk.sitkUInt8) + 1
    initial = rigid_transform(20, (0, 0, 1), (5.0, 0.0, 0.0))
    settings = RegistrationSettings(fixed_mask=fixed_mask, moving_mask=moving_mask, initial_transform=initial,
                                    sources={"fixed": "a.nrrd", "moving": "b.nrrd", "fixed_mask": "am.nrrd"})  # fmt: skip
    other = swapped(settings)
    assert other.fixed_mask.GetSize() == (5, 5, 5) and other.moving_mask.GetSize() == (4, 4, 4)
    assert np.allclose(other.initial_transform.matrix @ initial.matrix, np.eye(4), atol=1e-12)
    assert other.sources == {"fixed": "b.nrrd", "moving": "a.nrrd", "fixed_mask": None, "moving_mask": "am.nrrd"}


@pytest.fixture(scope="module")
def phantom_slab():
    """The phantom's CT (fixed) and the middle 40 mm of its MR (moving, 16 slices)."""
    pair = make_phantom_pair(**SMALL)
    middle = pair.moving.GetSize()[2] // 2
    return pair, pair.moving[:, :, middle - 8 : middle + 8]


def test_a_colour_slab_is_measured_both_ways_as_registered(phantom_slab):
    """The agreement is measured on the images as registered (grey): an RGB slab had crashed after both runs
    (a reviewer: 'casting vector ... to 32-bit float')."""
    pair, slab = phantom_slab
    grey = sitk.Cast(sitk.RescaleIntensity(slab, 0, 255), sitk.sitkUInt8)
    result = register(pair.fixed, sitk.Compose(grey, grey, grey))
    assert result.provenance.other_way_round is not None
    assert result.metric_after > result.metric_before + 0.2


def test_a_refusal_the_other_way_keeps_the_result_the_given_way(phantom_slab):
    """A small fixed mask becomes the moving mask the other way round, where it is refused: the result the given way
    stands (a reviewer: a good result had been thrown away with exit 2, after an engine had run)."""
    pair, slab = phantom_slab
    whole = sitk.Cast(slab * 0 + 1, sitk.sitkUInt8)
    footprint = sitk.GetArrayFromImage(sitk.Resample(whole, pair.fixed, pair.truth.sitk, sitk.sitkNearestNeighbor))
    low, high = np.argwhere(footprint).min(axis=0), np.argwhere(footprint).max(axis=0)
    centre, half = (low + high) // 2, (high - low) // 4
    box = np.zeros_like(footprint)
    box[tuple(slice(c - h, c + h) for c, h in zip(centre, half))] = 1
    fixed_mask = sitk.GetImageFromArray(box & footprint)
    fixed_mask.CopyInformation(pair.fixed)
    result = register(pair.fixed, slab, fixed_mask=fixed_mask, moving_mask=whole)
    assert result.provenance.other_way_round is None and result.metric_after > 0.2


def test_two_ways_that_disagree_are_warned_whichever_is_kept(phantom_slab):
    """A helper's ANTs runs kept a result 20 mm off the other way round, where the given way's (41 mm off) had been
    warned, and said nothing: two results this far apart cannot both be right."""
    pair, slab = phantom_slab
    shifted = pair.truth @ rigid_transform(0.0, (0, 0, 1), (10.0, 0.0, 0.0))
    assert _apart_mm(pair.fixed, slab, pair.truth, shifted) == pytest.approx(10.0, abs=0.01)
    assert _apart_mm(pair.fixed, slab, pair.truth, pair.truth) == 0.0
    result = register(pair.fixed, slab)
    doubted = _doubted(result, 12.0, "other", 0.91, 0.88)
    assert doubted.warnings[-1].startswith(f"{WAYS_DISAGREE}: the moving image registered as the fixed image and as "
                                           "given lands 12 mm apart")  # fmt: skip
    assert "kept the other way round" in doubted.warnings[-1]
    assert triage_case(doubted.summary(), None).verdict == "check"
    assert _doubted(result, 4.0, "given", 0.91, 0.88) is result  # within DISAGREE_MM: nothing to say
    assert _doubted(result, 12.0, "given", 0.91, 0.60) is result  # a clear winner: 1.5 times the other's agreement


@pytest.mark.slow
def test_a_small_moving_image_that_registers_as_given_is_not_turned_round():
    """A 100 mm MR cube (7% of the CT's box) overlaps at its starts: registered as given only. Turned round as well,
    the README tutorial's shrunken light sheet (7% too, 0.57 mm) had been doubted by "the two ways round disagree"."""
    pair = make_phantom_pair(**SMALL)
    cube = pair.moving[20:60, 20:60, 30:70]
    result = register(pair.fixed, cube)
    made = result.provenance
    assert made.other_way_round is None and "other_way_s" not in made.timings_s
    assert not any(w.startswith((OTHER_WAY, WAYS_DISAGREE)) for w in result.warnings)
