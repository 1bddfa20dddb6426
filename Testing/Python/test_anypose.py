"""Any-pose initialisation: far poses, mirrored images, cropped fields of view, both engines from anywhere."""

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SMALL, Background
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.metric import mutual_information
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm, rigid_transform
from MultimodalRegistrationLib.core.rotations import quaternion_matrices, rotation_angle_deg, rotation_grid
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.describe import describe_start
from MultimodalRegistrationLib.registration.pose.anypose import search_any_pose
from MultimodalRegistrationLib.registration.pose.initialize import starting_poses
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.keep import KEEP_TOLERANCE_NATS
from MultimodalRegistrationLib.registration.settings import RegistrationSettings as Settings

HEAD_CENTER = (0.0, 0.0, -15.0)  # where the phantom's head and neck are centred (fixed space, mm)


def far_pair(angle_deg, axis, translation_mm):
    return make_phantom_pair(truth=rigid_transform(angle_deg, axis, translation_mm, center=HEAD_CENTER), **SMALL)


@pytest.fixture(scope="module")
def far_pairs():
    """Starts of 90 degrees / 100 mm and 180 degrees / 150 mm."""
    return {
        90: far_pair(90, (0.3, 1.0, -0.2), (60.0, -50.0, 62.9)),
        180: far_pair(180, (1.0, 0.4, 0.7), (-90.0, 80.0, 87.6)),
    }


def posed(image: sitk.Image, pose: Transform) -> sitk.Image:
    """The image moved by a rigid ``pose`` through its header alone: exact, no resampling."""
    rotation, translation = pose.matrix[:3, :3], pose.matrix[:3, 3]
    result = sitk.Image(image)
    result.SetDirection((rotation @ np.asarray(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    result.SetOrigin((rotation @ np.asarray(image.GetOrigin()) + translation).tolist())
    return result


def mirrored_left_right(image: sitk.Image) -> sitk.Image:
    """The voxels flipped along image axis 0 under an unchanged header: a wrong header's mirror image."""
    result = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[:, :, ::-1].copy())
    result.CopyInformation(image)
    return result


def test_rotation_grid_leaves_no_rotation_farther_than_28_degrees():
    grid = rotation_grid(400)
    assert np.allclose(grid @ grid.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(grid), 1.0)
    probes = quaternion_matrices(np.random.default_rng(5).normal(size=(1000, 4)))
    nearest = rotation_angle_deg(np.einsum("pji,gjk->pgik", probes, grid)).min(axis=1)
    assert nearest.max() < 28.0, f"farthest rotation is {nearest.max():.1f} degrees from the grid"


@pytest.mark.parametrize(
    "angle, axis, translation",
    [(60, (1, 0, 0), (40, 0, 0)), (120, (0.2, -0.5, 1), (0, 70, -70)), (175, (-1, 1, 1), (90, 90, 70))],
)
def test_search_alone_lands_within_3_mm_of_far_poses(angle, axis, translation):
    pair = far_pair(angle, axis, translation)
    start = mean_error_mm(Transform.identity(), pair.truth, pair.head_points)
    result = search_any_pose(pair.fixed, pair.moving)
    error = mean_error_mm(result.transform, pair.truth, pair.head_points)
    assert start > 60
    assert error < 3.0, f"search error {error:.2f} mm from {angle} degrees"
    assert result.candidates >= 800 and result.evaluations > result.candidates
    assert result.metric > result.mirrored_metric


@pytest.fixture(scope="module")
def ants_far_runs(request, far_pairs, tmp_path_factory):
    """ANTs from the far starts whose case is to run, each in a process of its own, started with the first case
    below: ANTs runs one thread, so its runs proceed beside each other and beside the elastix cases, run here."""
    folder = tmp_path_factory.mktemp("ants-far")
    angles = {
        item.callspec.params["angle"] for item in request.session.items
        if item.originalname == "test_both_engines_recover_far_starts_below_1_mm" and item.module is request.module
        and item.callspec.params["engine"] == "ants"
    }  # fmt: skip
    runs = {
        angle: Background(folder, register, fixed=pair.fixed, moving=pair.moving, engine="ants", preset="rigid")
        for angle, pair in far_pairs.items() if angle in angles
    }  # fmt: skip
    yield runs
    for run in runs.values():
        run.stop()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["elastix", "ants"])
@pytest.mark.parametrize("angle", [90, 180])
def test_both_engines_recover_far_starts_below_1_mm(far_pairs, ants_far_runs, engine, angle):
    pair = far_pairs[angle]
    if engine == "ants":
        result = ants_far_runs[angle].result()  # register(pair.fixed, pair.moving, engine="ants", preset="rigid")
    else:
        result = register(pair.fixed, pair.moving, engine=engine, preset="rigid")
    error = mean_error_mm(result.transform, pair.truth, pair.head_points)
    assert error < 1.0, f"{engine} mean error {error:.3f} mm from {angle} degrees"
    provenance = result.provenance
    # The image-centre start leads elsewhere, so the engine also ran from it, and lost.
    assert provenance.start == "any-pose"
    tried = {run.start: run.metric_after for run in provenance.starts_tried}
    assert tried["any-pose"] == pytest.approx(result.metric_after) and tried["centre"] < result.metric_after - 0.1
    # The headers' pose (24 mm and the angle off) is tried too, and loses.
    assert tried["header"] < result.metric_after - 0.1
    assert provenance.any_pose.candidates >= 800 and provenance.any_pose.seconds > 0
    assert np.allclose(provenance.start_matrix_lps, provenance.any_pose.matrix_lps, atol=1e-5)
    assert provenance.timings_s["init_s"] >= provenance.any_pose.seconds
    assert "started from the pose search" in describe_start(result.summary())
    assert describe_start(result.summary()).endswith(
        "also tried the image centres, the headers' pose (the scanner alignment))"
    )
    # How far the search moved the start: about the true rotation away from the image centres.
    offset = provenance.start_offset
    assert offset.from_ == "image centres" and abs(offset.rotation_deg - angle) < 5.0
    assert f"{offset.rotation_deg:.0f} deg and" in describe_start(result.summary())


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["elastix", "ants"])
def test_small_misalignment_is_as_accurate_as_without_the_initialiser(small_pair, rigid_results, engine):
    with_search = rigid_results[engine]  # init="auto", the default
    without = register(small_pair.fixed, small_pair.moving, engine=engine, preset="rigid", init="geometry")
    error = mean_error_mm(with_search.transform, small_pair.truth, small_pair.head_points)
    reference = mean_error_mm(without.transform, small_pair.truth, small_pair.head_points)
    assert error < reference + 0.05, f"{engine}: {error:.3f} mm with the search, {reference:.3f} mm without"
    # The centre start refines into the same pose; the headers' pose, 25 degrees and 31 mm off, is tried too.
    tried = {run.start: run.metric_after for run in with_search.provenance.starts_tried}
    # elastix reaches the same pose from both (within KEEP_TOLERANCE_NATS): the any-pose run is kept.
    assert list(tried) == ["any-pose", "header"] and tried["header"] <= tried["any-pose"] + KEEP_TOLERANCE_NATS
    assert with_search.provenance.start == "any-pose"


def test_left_right_mirrored_moving_image_is_refused_naming_the_axis(small_pair):
    with pytest.raises(InputError, match=r"mirrored .* left-right axis \(image axis 0\).*image orientation"):
        register(small_pair.fixed, mirrored_left_right(small_pair.moving), engine="elastix")


def stored_flipped(image: sitk.Image, axis: int) -> sitk.Image:
    """The same physical image stored with one index axis reversed (the header follows: no mirror)."""
    array = np.flip(sitk.GetArrayFromImage(image), axis=2 - axis)
    direction = np.asarray(image.GetDirection()).reshape(3, 3).copy()
    last = [image.GetSize()[a] - 1 if a == axis else 0 for a in range(3)]
    result = sitk.GetImageFromArray(np.ascontiguousarray(array))
    result.SetSpacing(image.GetSpacing())
    result.SetOrigin(image.TransformIndexToPhysicalPoint(last))
    direction[:, axis] *= -1
    result.SetDirection(direction.ravel().tolist())
    return result


def test_a_symmetric_head_stored_in_another_index_order_is_not_called_mirrored():
    """MNI's symmetric template as T1 and a grey/white contrast on the same 1 mm grid, 150 degrees apart:
    the T1 stored left-right reversed had been refused as mirrored (MI 0.03 better at the mirror pose,
    where the coarse grids lined up)."""
    from conftest import mni_t1_grey_white

    t1, grey, white = mni_t1_grey_white()
    truth = rigid_transform(150, (1.0, -1.0, 2.0), (30.0, -25.0, 20.0))
    moving = posed(grey * 100.0 + white * 40.0, truth)
    brain = np.argwhere(sitk.GetArrayViewFromImage(t1) > 50)[::97, ::-1]
    points = np.array([t1.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in brain])
    for fixed in (t1, stored_flipped(t1, 0)):
        result = search_any_pose(fixed, moving)
        assert result.mirror.summary()["verdict"] == "proper", result.mirror.summary()
        assert mean_error_mm(result.transform, truth, points) < 0.5


def _oblique(image: sitk.Image, center, extent_mm, spacing_mm, direction: np.ndarray) -> sitk.Image:
    """``image`` (smoothed 1 mm) resampled onto a grid of ``extent_mm`` at ``spacing_mm`` around ``center`` (LPS mm),
    its index axes the columns of ``direction``: the same anatomy, stored obliquely."""
    size = np.maximum(1, np.round(np.asarray(extent_mm) / np.asarray(spacing_mm))).astype(int)
    origin = np.asarray(center) - direction @ ((size - 1) * np.asarray(spacing_mm) / 2)
    return sitk.Resample(sitk.SmoothingRecursiveGaussian(image, 1.0), [int(n) for n in size], sitk.Transform(),
                         sitk.sitkLinear, origin.tolist(), [float(v) for v in spacing_mm], direction.ravel().tolist(),
                         0.0, sitk.sitkFloat32)  # fmt: skip


def test_a_symmetric_head_on_an_oblique_grid_is_not_called_mirrored():
    """MNI's symmetric T1 on a grid turned 30 and 20 degrees (3 mm), against a grey/white box of it stored
    left-handed (110 x 100 x 80 mm, 3 x 3 x 5 mm): refused as mirrored on seeds 1 and 3 of 0-3, its best proper pose
    scoring 0.09-0.10 against the mirrored 0.30. The mirror twins crossed the grid's planes, not the head's midline."""
    from conftest import mni_t1_grey_white

    t1, grey, white = mni_t1_grey_white()
    center = np.asarray(t1.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in t1.GetSize()]))
    turned = (
        rigid_transform(30, (0, 0, 1), (0, 0, 0)).matrix[:3, :3]
        @ rigid_transform(20, (1, 0, 0), (0, 0, 0)).matrix[:3, :3]
    )
    fixed = _oblique(t1, center, (200, 230, 190), (3, 3, 3), turned)
    left_handed = rigid_transform(-25, (0, 1, 0), (0, 0, 0)).matrix[:3, :3] @ np.diag([1.0, -1.0, 1.0])
    moving = _oblique(grey * 100.0 + white * 40.0, center + (10, -20, 15), (110, 100, 80), (3, 3, 5), left_handed)
    for seed in (1, 3):
        assert search_any_pose(fixed, moving, seed=seed).mirror.summary()["verdict"] == "proper"


def test_a_mirrored_moving_image_is_still_refused_against_an_oblique_fixed_grid(small_pair):
    """The twins across the patient's axes must not explain a real mirror image away."""
    center = np.asarray(small_pair.fixed.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2 for n in small_pair.fixed.GetSize()]))  # fmt: skip
    turned = (
        rigid_transform(30, (0, 0, 1), (0, 0, 0)).matrix[:3, :3]
        @ rigid_transform(20, (1, 0, 0), (0, 0, 0)).matrix[:3, :3]
    )
    fixed = _oblique(small_pair.fixed + 1000.0, center, (230, 250, 250), (2.5, 2.5, 2.5), turned)
    with pytest.raises(InputError, match=r"mirrored .* left-right axis"):
        search_any_pose(fixed, mirrored_left_right(small_pair.moving))


def test_mirrored_image_passes_when_the_check_is_off(small_pair):
    # Geometry initialisation does not search, so it does not judge either.
    result = starting_poses(small_pair.fixed, mirrored_left_right(small_pair.moving), Settings(init="geometry"))
    assert result.search is None and len(result.poses) == 1


@pytest.fixture(scope="module")
def head_aligned():
    """The phantom with CT and MR in the same frame (the MR grid centred on the head)."""
    return make_phantom_pair(truth=Transform.identity(), mr_offset_mm=(0, 0, 0), **SMALL)


def crop_z(image: sitk.Image, low_mm: float, high_mm: float) -> sitk.Image:
    first = int(round((low_mm - image.GetOrigin()[2]) / image.GetSpacing()[2]))
    last = int(round((high_mm - image.GetOrigin()[2]) / image.GetSpacing()[2]))
    return image[:, :, max(first, 0) : min(last, image.GetSize()[2])]


@pytest.mark.parametrize("case", ["CT cropped top and bottom", "head-only MR, neck-to-vertex CT"])
def test_search_copes_with_differing_fields_of_view(head_aligned, case):
    truth = rigid_transform(125, (0.5, -1, 0.3), (-60, 40, 100), center=HEAD_CENTER)
    fixed, moving = head_aligned.fixed, head_aligned.moving
    if case.startswith("CT cropped"):
        fixed = crop_z(fixed, -40, 40)  # 80 mm of a 250 mm field of view
    else:
        moving = crop_z(moving, -60, 200)  # the MR stops at the chin; the CT goes down the neck
    result = search_any_pose(fixed, posed(moving, truth))
    error = mean_error_mm(result.transform, truth, head_aligned.head_points)
    assert error < 5.0, f"{case}: search error {error:.2f} mm"


def test_search_keeps_to_the_masks():
    pair = far_pair(130, (0.3, 1, 0.2), (40, -60, 30))
    mask = sitk.Image(pair.fixed.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(pair.fixed)
    size = pair.fixed.GetSize()
    mask[10 : size[0] - 10, 10 : size[1] - 10, size[2] // 3 :] = 1  # the head, most of the neck left out
    moving_mask = sitk.Cast(pair.moving > 100, sitk.sitkUInt8)
    result = search_any_pose(pair.fixed, pair.moving, mask, moving_mask)
    assert mean_error_mm(result.transform, pair.truth, pair.head_points) < 3.0


def test_any_pose_searches_on_top_of_an_initial_transform(small_pair):
    # A prealignment that is 100 degrees off: the search starts from it and still finds the truth.
    initial = small_pair.truth @ rigid_transform(100, (0, 1, 0), (0, 0, 0), center=HEAD_CENTER)
    starts = starting_poses(
        small_pair.fixed, small_pair.moving, Settings(initial_transform=initial, init="any-pose", seed=0)
    )
    assert [name for name, _ in starts.poses] == ["any-pose"]
    assert mean_error_mm(starts.poses[0][1], small_pair.truth, small_pair.head_points) < 3.0
    # With auto, an initial transform is kept as it is.
    kept = starting_poses(small_pair.fixed, small_pair.moving, Settings(initial_transform=initial, init="auto"))
    assert kept.search is None and np.allclose(kept.poses[0][1].matrix, initial.matrix)


def test_max_rotation_scores_fewer_poses_and_stays_accurate(small_pair):
    full = search_any_pose(small_pair.fixed, small_pair.moving)
    near = search_any_pose(small_pair.fixed, small_pair.moving, max_rotation_deg=40)
    assert near.candidates < full.candidates / 4 and near.evaluations < full.evaluations
    assert mean_error_mm(near.transform, small_pair.truth, small_pair.head_points) < 3.0


def test_a_small_field_of_view_inside_a_larger_scan_also_starts_from_the_headers(small_pair):
    """A 70 x 70 x 60 mm box of the CT, off the head's centre, whose headers place it 7 mm from the truth in the
    MR: the MR's centre lies outside the box, and the headers' start had been left out (13.9 mm, no warning). An
    intraoperative ultrasound inside a head MR is such a pair (a helper's: 70-77 mm off without it)."""
    box = small_pair.fixed[20:55, 70:105, 50:70]
    near = rigid_transform(4, (1, 0, 1), (3.0, -2.0, 2.0))  # the truth, fixed -> moving
    moving = posed(small_pair.moving, near @ small_pair.truth.inverse())
    assert [name for name, _ in starting_poses(box, moving, Settings()).poses] == ["any-pose", "centre", "header"]
    index = np.argwhere(sitk.GetArrayViewFromImage(box) > -500)[::10, ::-1]
    points = np.array([box.TransformIndexToPhysicalPoint([int(i) for i in v]) for v in index])
    result = register(box, moving)
    assert result.provenance.start == "header"
    assert mean_error_mm(result.transform, near, points) < 0.75 * mean_error_mm(Transform.identity(), near, points)


def test_a_rotation_limit_holds_when_every_pose_turns_beyond_it(small_pair):
    """The pair is 25 degrees apart; limited to 5, the refined poses all turned to about 25 and one of them had won
    (a helper's intraoperative-ultrasound run limited to 15 started 75 degrees from the headers)."""
    result = search_any_pose(small_pair.fixed, small_pair.moving, max_rotation_deg=5)
    assert rotation_angle_deg(result.transform.matrix[None, :3, :3])[0] < 1.0
    unlimited = search_any_pose(small_pair.fixed, small_pair.moving)
    assert rotation_angle_deg(unlimited.transform.matrix[None, :3, :3])[0] > 24.0


def test_init_choices_are_checked(small_pair):
    with pytest.raises(InputError, match="any-pose"):
        starting_poses(small_pair.fixed, small_pair.moving, Settings(init="everywhere"))
    with pytest.raises(InputError, match="max_rotation_deg 0 is out of range"):
        starting_poses(small_pair.fixed, small_pair.moving, Settings(init="auto", max_rotation_deg=0))


def sphere_mask(image: sitk.Image, center_mm, radius_mm: float) -> sitk.Image:
    index = np.indices(image.GetSize()[::-1]).reshape(3, -1)[::-1].T.astype(float)  # x, y, z
    to_physical = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    points = index @ to_physical.T + np.asarray(image.GetOrigin())
    inside = np.linalg.norm(points - np.asarray(center_mm), axis=1) < radius_mm
    mask = sitk.GetImageFromArray(inside.reshape(image.GetSize()[::-1]).astype(np.uint8))
    mask.CopyInformation(image)
    return mask


@pytest.mark.parametrize("radius_mm", [8, 15])
def test_a_small_region_of_interest_on_the_fixed_image_alone_does_not_mislead_the_search(radius_mm):
    # A fixed mask without the head's outline once led the search 100 mm off, or to a false mirror verdict.
    pair = far_pair(130, (0.3, 1, 0.2), (40, -60, 30))
    result = search_any_pose(pair.fixed, pair.moving, sphere_mask(pair.fixed, (0, 0, 0), radius_mm))
    assert mean_error_mm(result.transform, pair.truth, pair.head_points) < 3.0


def test_a_slab_of_two_slices_still_gets_a_start(small_pair):
    slab = small_pair.fixed[:, :, 40:42]  # 6 mm thick: fewer voxels than the search's shrink factor
    starts = starting_poses(slab, small_pair.moving, Settings(seed=0))
    assert starts.search is not None and not starts.search.mirror_checked
    assert [name for name, _ in starts.poses][0] == "any-pose"
    # The metric before and after is measured on a slab too (ITK's gradient filters need 4 voxels per axis).
    assert mutual_information(slab, small_pair.moving, starts.poses[0][1]) > 0.1


def test_auto_falls_back_to_the_centres_when_the_search_fails(small_pair, monkeypatch):
    from MultimodalRegistrationLib.registration.pose import anypose

    def broken(*arguments, **options):
        raise RuntimeError("itk::ERROR: InputImage is too small")

    monkeypatch.setattr(anypose, "search_any_pose", broken)
    starts = starting_poses(small_pair.fixed, small_pair.moving)
    assert [name for name, _ in starts.poses] == ["centre"]
    assert "any-pose search failed (itk::ERROR: InputImage is too small)" in starts.warnings[0]
    with pytest.raises(InputError, match="use --init geometry, or prealign with landmarks"):
        starting_poses(small_pair.fixed, small_pair.moving, Settings(init="any-pose"))


def crop_fraction(image: sitk.Image, axis: int, keep: float) -> sitk.Image:
    """The first ``keep`` share of ``image`` along image ``axis``: a field of view that cuts the anatomy."""
    size = list(image.GetSize())
    size[axis] = int(round(size[axis] * keep))
    return sitk.RegionOfInterest(image, size, [0, 0, 0])


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("angle", [90, 180])
def test_a_moving_brain_cut_to_60_percent_starts_right_from_far_turns(axis, angle):
    """MNI's T1 against a grey/white brain cut to 60% left-right or front-back, turned 90 or 180 degrees: fixed samples
    beyond the cut had counted as moving background, so the truth scored below false poses, and the default rigid
    preset ended 53-88 mm off, unwarned (a helper's sweep). The phantom head, its skull bright on both, starts right
    either way."""
    from conftest import mni_t1_grey_white

    t1, grey, white = mni_t1_grey_white()
    truth = rigid_transform(angle, (0.4, -1.0, 0.6), (30.0, -40.0, 50.0))
    moving = posed(crop_fraction(grey * 100.0 + white * 40.0, axis, 0.6), truth)
    brain = np.argwhere(sitk.GetArrayViewFromImage(t1) > 50)[::97, ::-1]
    points = np.array([t1.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in brain])
    error = mean_error_mm(search_any_pose(t1, moving).transform, truth, points)
    assert error < 3.0, f"axis {axis}, {angle} degrees: search error {error:.2f} mm"


@pytest.mark.parametrize("angle", [15, 90, 180])
def test_a_slab_whose_true_turn_lies_beyond_its_search_is_warned(angle):
    """A 24 mm slab of MNI's brain (fixed) against the whole T1 turned 50-180 degrees: a slab's search keeps within
    30 degrees, and its start had ended 31-71 mm off without a word. Turned 15 degrees it starts right, unwarned."""
    from conftest import mni_t1_grey_white

    t1, grey, white = mni_t1_grey_white()
    slab = sitk.RegionOfInterest(grey * 100.0 + white * 40.0, [*t1.GetSize()[:2], 24], [0, 0, 100])
    truth = rigid_transform(angle, (0.3, 1.0, 0.2), (5.0, -8.0, 6.0))
    result = search_any_pose(slab, posed(t1, truth))
    brain = np.argwhere(sitk.GetArrayViewFromImage(slab) > 20)[::97, ::-1]
    points = np.array([slab.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in brain])
    error = mean_error_mm(result.transform, truth, points)
    warned = [warning for warning in result.warnings if warning.startswith("the start may lie beyond the search's")]
    if angle == 15:
        assert error < 1.0 and not warned, (error, result.warnings)
    else:  # a search that finds these turns some day needs no warning
        assert error < 1.0 or len(warned) == 1, (error, result.warnings)
        assert error < 1.0 or "the fixed image is a slab (thinner than 40 mm)" in warned[0], warned
