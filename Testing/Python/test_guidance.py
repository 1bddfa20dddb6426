"""Guidance without an engine: pairing segments, distance channels, the guided start and the scores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform
from MultimodalRegistrationLib.engines.presets import guidance_defaults, presets_dir
from MultimodalRegistrationLib.registration.guided.guidance import (
    Guidance,
    SegmentPair,
    distance_channel,
    pair_segments,
    prepare_guidance,
)
from MultimodalRegistrationLib.registration.guided.score import guidance_score, worse_than
from MultimodalRegistrationLib.registration.guided.start import guided_start


def _grid(size=48, spacing=2.0, origin=-47.0) -> sitk.Image:
    image = sitk.Image([size] * 3, sitk.sitkFloat32)
    image.SetSpacing([spacing] * 3)
    image.SetOrigin([origin] * 3)
    return image


def _points(image: sitk.Image) -> np.ndarray:
    """LPS mm of every voxel, (z, y, x, 3)."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in image.GetSize()[::-1]], indexing="ij")
    index = np.stack([x, y, z], -1).astype(float)
    return index * image.GetSpacing()[0] + np.asarray(image.GetOrigin())


def _labels(image: sitk.Image, transform: Transform, names: dict[int, str] | None = None) -> sitk.Image:
    """Two ellipsoids (labels 1 and 2) placed through ``transform`` (fixed -> moving): drawn where the
    inverse maps a voxel into the fixed-space ellipsoids."""
    points = _points(image).reshape(-1, 3)
    body = transform.inverse().transform_points(points)
    values = np.zeros(len(points), np.uint8)
    values[(((body - [0, 0, 0]) / [30, 18, 12]) ** 2).sum(1) < 1] = 1
    values[(((body - [16, 6, 0]) / [6, 6, 6]) ** 2).sum(1) < 1] = 2
    labels = sitk.GetImageFromArray(values.reshape(image.GetSize()[::-1]))
    labels.CopyInformation(image)
    for index, (value, name) in enumerate(sorted((names or {}).items())):
        labels.SetMetaData(f"Segment{index}_Name", name)
        labels.SetMetaData(f"Segment{index}_LabelValue", str(value))
    return labels


TRUTH = rigid_transform(35.0, [0.3, 1.0, 0.2], [6.0, -4.0, 3.0])


def _guidance(**extra) -> tuple[sitk.Image, sitk.Image, Guidance]:
    fixed, moving = _grid(), _grid()
    guidance = Guidance(_labels(fixed, Transform.identity()), _labels(moving, TRUTH), **extra)
    return fixed, moving, guidance


def test_segments_pair_by_name_when_both_sides_name_them_else_by_value():
    fixed = _labels(_grid(), Transform.identity(), {1: "gland", 2: "nodule"})
    moving = _labels(_grid(), Transform.identity(), {1: "nodule", 2: "gland"})  # same shapes, swapped names
    by_name = pair_segments(fixed, moving)
    assert [(p.name, p.fixed_value, p.moving_value) for p in by_name] == [("gland", 1, 2), ("nodule", 2, 1)]
    by_value = pair_segments(_labels(_grid(), Transform.identity()), moving)
    assert [(p.name, p.fixed_value, p.moving_value) for p in by_value] == [("1", 1, 1), ("2", 2, 2)]
    assert [p.name for p in pair_segments(fixed, moving, ["nodule"])] == ["nodule"]
    with pytest.raises(InputError, match=r"segments \['prostate'\] are not in both segmentations: choose from"):
        pair_segments(fixed, moving, ["prostate"])


def test_segments_paired_by_value_that_mark_other_structures_are_warned_about():
    """A named .seg.nrrd against a plain labelmap with 1 and 2 swapped: the names went unused, the gland guided to
    the nodule, and the run said nothing (Dice 0.01 on a helper's ultrasound-like pair)."""
    grid = _grid()
    fixed = _labels(grid, Transform.identity(), {1: "gland", 2: "nodule"})
    plain = _labels(grid, Transform.identity())
    swapped = sitk.Cast((plain == 1) * 2 + (plain == 2) * 1, sitk.sitkUInt8)
    prepared = prepare_guidance(grid, grid, Guidance(fixed, swapped), "elastix")
    assert prepared.warnings[0].startswith("only the fixed segmentation names its segments, so they were paired by "
                                           "label value, not by name")  # fmt: skip
    # The ellipsoids: 30 x 18 x 12 mm and 6 mm semi-axes (the nodule drawn over the gland), 25 times apart.
    assert prepared.warnings[1].startswith("segment 'gland' is 25 times larger in the fixed segmentation (")
    assert prepared.warnings[2].startswith("segment 'nodule' is 25 times larger in the moving segmentation (")
    assert len(prepared.warnings) == 3
    assert prepare_guidance(grid, grid, Guidance(fixed, plain), "elastix").warnings[1:] == []  # names unused, sizes match


def test_names_pair_whatever_their_case_and_lone_segments_pair_whatever_their_names_with_a_warning():
    grid = _grid()
    fixed = _labels(grid, Transform.identity(), {1: "Prostate gland", 2: "nodule"})
    moving = _labels(grid, Transform.identity(), {1: "nodule", 2: "prostate_gland "})
    assert [(p.name, p.moving_value) for p in pair_segments(fixed, moving)] == [("Prostate gland", 2), ("nodule", 1)]

    def lone(names: dict[int, str] | None, value: int) -> sitk.Image:
        """The first ellipsoid alone, at label ``value``, its name from ``names``."""
        labels = sitk.Cast(sitk.BinaryThreshold(_labels(grid, Transform.identity()), 1, 1, value, 0), sitk.sitkUInt8)
        for name in (names or {}).values():
            labels.SetMetaData("Segment0_Name", name)
            labels.SetMetaData("Segment0_LabelValue", str(value))
        return labels

    # Two annotators: "Segment_1" on the ultrasound, "prostate" on the MR (Slicer's names, label 1 each).
    (pair,) = pair_segments(lone({1: "Segment_1"}, 1), lone({1: "prostate"}, 1), ["prostate"])
    assert (pair.name, pair.moving_name, pair.paired_by) == ("Segment_1", "prostate", "only segment")
    prepared = prepare_guidance(grid, grid, Guidance(lone({1: "Segment_1"}, 1), lone({1: "prostate"}, 1)), "elastix")
    assert prepared.warnings == [(
        "paired the only segment of each segmentation, 'Segment_1' (fixed) with 'prostate' (moving): they are taken "
        "to be the same structure. If they are not, segment that structure on both images"
    )]  # fmt: skip
    assert prepared.describe()["segments"][0]["paired_by"] == "only segment"
    # Unnamed labelmaps, the gland 1 on one and 255 on the other.
    prepared = prepare_guidance(grid, grid, Guidance(lone(None, 1), lone(None, 255)), "elastix")
    assert [(p.fixed_value, p.moving_value) for p in prepared.pairs] == [(1, 255)]
    assert "label 1 (fixed) with label 255 (moving)" in prepared.warnings[0]
    assert np.sum(sitk.GetArrayViewFromImage(prepared.moving_masks[0])) > 1000  # the 255 voxels, not an empty mask
    # --segments names a pair by either side's name (any case) or value; each pair is taken once.
    (pair,) = pair_segments(lone({1: "Segment_1"}, 1), lone({1: "prostate"}, 2), ["PROSTATE", "segment 1", "2"])
    assert (pair.fixed_value, pair.moving_value) == (1, 2)
    # A name in neither: the message names both sides' segments (it said "choose from ['Segment_1']", though
    # 'prostate' is taken too; a helper's docs sweep).
    with pytest.raises(InputError, match=r"choose from \['Segment_1 \(moving: prostate\)'\]"):
        pair_segments(lone({1: "Segment_1"}, 1), lone({1: "prostate"}, 2), ["urethra"])
    # Two segments on one side whose names differ only in case cannot be told apart.
    twins = _labels(grid, Transform.identity(), {1: "Gland", 2: "gland"})
    with pytest.raises(InputError, match="segments 'Gland' and 'gland' of the moving segmentation differ only in case"):
        pair_segments(fixed, twins)
    # Names or values that pair need no warning; two segments a side that share none are refused.
    assert prepare_guidance(grid, grid, Guidance(lone(None, 1), lone(None, 1)), "elastix").warnings == []
    with pytest.raises(InputError, match="no segment is in both segmentations .*give the same structure the same name"):
        pair_segments(fixed, _labels(grid, Transform.identity(), {1: "gland", 2: "lesion"}))


def test_a_segment_drawn_inside_another_on_one_image_leaves_no_hole_in_its_guidance():
    """The nodule (2) lies inside the gland (1) and is drawn on the fixed image only: the labelmap's gland has a
    nodule-shaped hole there, which would guide as a second surface. The gland's mask is filled."""
    fixed = _labels(_grid(), Transform.identity(), {1: "gland", 2: "nodule"})
    moving = _labels(_grid(), Transform.identity(), {1: "gland", 2: "nodule"})
    moving = sitk.ChangeLabel(moving, changeMap={2: 1})  # no nodule drawn on the moving image
    moving.SetMetaData("Segment0_Name", "gland")
    moving.SetMetaData("Segment0_LabelValue", "1")
    prepared = prepare_guidance(_grid(), _grid(), Guidance(fixed, moving, segments=["gland"]), "elastix")
    filled = int(np.count_nonzero(sitk.GetArrayViewFromImage(prepared.fixed_masks[0])))
    assert filled == int(np.count_nonzero(sitk.GetArrayViewFromImage(fixed)))  # gland and nodule voxels
    score = guidance_score(prepared, Transform.identity())
    assert score.dice["gland"] == pytest.approx(1.0)  # with the hole 0.979
    assert score.surface_mm["gland"] < 0.1  # the same shape; with the hole 0.197 mm, its wall counted as surface


def test_a_hollow_segment_stays_hollow_where_no_other_segment_fills_it():
    """A shell (a cyst wall) around an unlabelled lumen guides as a shell; only a hole another segment fills is
    taken in."""
    shell = _labels(_grid(), Transform.identity(), {1: "wall", 2: "lumen"})
    hollow = sitk.ChangeLabel(shell, changeMap={2: 0})
    hollow.SetMetaData("Segment0_Name", "wall")
    hollow.SetMetaData("Segment0_LabelValue", "1")
    prepared = prepare_guidance(_grid(), _grid(), Guidance(hollow, hollow), "elastix")
    wall = int(np.count_nonzero(sitk.GetArrayViewFromImage(hollow)))
    assert int(np.count_nonzero(sitk.GetArrayViewFromImage(prepared.fixed_masks[0]))) == wall
    filled = prepare_guidance(_grid(), _grid(), Guidance(shell, shell, segments=["wall"]), "elastix")
    assert int(np.count_nonzero(sitk.GetArrayViewFromImage(filled.fixed_masks[0]))) > wall


def test_a_segment_on_one_image_only_is_named_in_a_warning_unless_the_user_chose_the_segments():
    fixed = _labels(_grid(), Transform.identity(), {1: "gland", 2: "nodule"})
    moving = sitk.ChangeLabel(_labels(_grid(), Transform.identity()), changeMap={2: 1})
    moving.SetMetaData("Segment0_Name", "Gland")
    moving.SetMetaData("Segment0_LabelValue", "1")
    prepared = prepare_guidance(_grid(), _grid(), Guidance(fixed, moving), "elastix")
    assert [p.name for p in prepared.pairs] == ["gland"]
    assert prepared.warnings == [("segments 'nodule' only in the fixed segmentation: they do not guide (give them "
                                  "the same name on both to pair them)")]  # fmt: skip
    chosen = prepare_guidance(_grid(), _grid(), Guidance(fixed, moving, segments=["gland"]), "elastix")
    assert chosen.warnings == []
    unnamed = prepare_guidance(_grid(), _grid(), Guidance(_labels(_grid(), Transform.identity()), moving), "elastix")
    assert unnamed.warnings == [("segments '2' only in the fixed segmentation: they do not guide (give them the "
                                 "same label value on both to pair them)"),
                                ("only the moving segmentation names its segments, so they were paired by label value, "
                                 "not by name: check that each value marks the same structure in the fixed file, or "
                                 "give both as .seg.nrrd with the same segment names (or pair them with --segments "
                                 "FIXED=MOVING)")]  # fmt: skip


def test_one_sided_or_empty_guidance_is_refused_with_the_fix():
    fixed, moving, guidance = _guidance()
    with pytest.raises(InputError, match="needs both the fixed segmentation and the moving segmentation: give the moving segmentation too"):
        prepare_guidance(fixed, moving, Guidance(fixed_segmentation=guidance.fixed_segmentation), "elastix")
    with pytest.raises(InputError, match="--metric segments needs segmentations or landmarks"):
        prepare_guidance(fixed, moving, Guidance(metric="segments"), "elastix")
    empty = sitk.Image(guidance.moving_segmentation.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(guidance.moving_segmentation)
    with pytest.raises(InputError, match="the moving segmentation is empty"):
        prepare_guidance(fixed, moving, Guidance(guidance.fixed_segmentation, empty), "elastix")
    elsewhere = _grid(origin=400.0)
    with pytest.raises(InputError, match="lies outside the moving image"):
        prepare_guidance(fixed, elsewhere, guidance, "elastix")


def test_distance_channel_is_the_clamped_signed_distance_in_mm():
    fixed, _, guidance = _guidance()
    mask = sitk.Cast(guidance.fixed_segmentation == 1, sitk.sitkUInt8)
    channel = sitk.GetArrayFromImage(distance_channel(mask, 20.0))
    inside = sitk.GetArrayViewFromImage(mask) != 0
    # The deepest voxel lies about 10 mm inside: between the nodule (label 2) carved out of the gland and its z edge.
    assert channel.min() == pytest.approx(-10.0 / 20.0, abs=0.06)
    assert channel.max() == pytest.approx(1.0)
    assert np.all(channel[inside] <= 0) and np.all(channel[~inside] > 0)


def test_guided_start_recovers_a_35_degree_pose_from_the_segments_alone():
    fixed, moving, guidance = _guidance()
    prepared = prepare_guidance(fixed, moving, guidance, "elastix")
    start = guided_start(prepared)
    probe = np.array([[x, y, z] for x in (-20, 0, 20) for y in (-10, 10) for z in (-8, 8)], float)
    error = np.linalg.norm(start.transform.transform_points(probe) - TRUTH.transform_points(probe), axis=1)
    assert start.name.startswith("segment axes")
    assert error.max() < 2.5, error  # the 2 mm voxels limit the moments
    assert {c.name for c in start.candidates} >= {"segment centroids", "segment axes +1+1"}


def test_landmarks_alone_give_their_rigid_fit_as_the_start():
    fixed, moving = _grid(), _grid()
    fixed_points = np.array([[20, 0, 0], [-20, 5, 0], [0, 15, -10], [5, -12, 12]], float)
    guidance = Guidance(fixed_points_lps=fixed_points, moving_points_lps=TRUTH.transform_points(fixed_points))
    start = guided_start(prepare_guidance(fixed, moving, guidance, "ants"))
    assert start.name == "landmarks"
    np.testing.assert_allclose(start.transform.matrix, TRUTH.matrix, atol=1e-6)


def test_landmarks_give_a_scaled_fit_when_the_preset_scales():
    """Shrunken tissue (0.65, as in clearing) guided by landmarks under the similarity preset: the start takes the
    scale (a rigid start left the cleared-brain case 19 mm off, and ANTs never recovered from it)."""
    fixed, moving = _grid(), _grid()
    shrunk = Transform.from_matrix(TRUTH.matrix @ np.diag([0.65, 0.65, 0.65, 1.0]))
    fixed_points = np.array([[20, 0, 0], [-20, 5, 0], [0, 15, -10], [5, -12, 12]], float)
    guidance = Guidance(fixed_points_lps=fixed_points, moving_points_lps=shrunk.transform_points(fixed_points))
    prepared = prepare_guidance(fixed, moving, guidance, "ants")
    rigid, scaled = guided_start(prepared), guided_start(prepared, scale=True)
    assert np.linalg.det(rigid.transform.matrix[:3, :3]) == pytest.approx(1.0)
    np.testing.assert_allclose(scaled.transform.matrix, shrunk.matrix, atol=1e-6)
    assert scaled.candidates[0].rotation_from_prior_deg == pytest.approx(35.0, abs=0.1)  # the scale is not a turn


def test_scores_measure_dice_surface_and_landmark_distance_and_judge_a_worse_result():
    fixed_points = np.array([[20, 0, 0], [-20, 5, 0], [0, 15, -10], [5, -10, 8]], float)
    fixed, moving, guidance = _guidance(
        fixed_points_lps=fixed_points, moving_points_lps=TRUTH.transform_points(fixed_points)
    )
    prepared = prepare_guidance(fixed, moving, guidance, "elastix")
    right, wrong = guidance_score(prepared, TRUTH), guidance_score(prepared, Transform.identity())
    assert right.mean_dice > 0.9 and wrong.mean_dice < 0.6
    assert right.mean_surface_mm < 1.5 < 3.0 < wrong.mean_surface_mm
    assert right.points_rms_mm < 1e-6 and wrong.points_rms_mm > 10.0
    assert worse_than(right, wrong) == ""
    reason = worse_than(wrong, right)
    assert "segment Dice" in reason and "surface distance" in reason and "landmark distance" in reason
    # Beside segments, fewer than four landmarks do not veto (one landmark 0.6 mm farther, within its click noise,
    # returned the centroid alignment over a better result: a helper's sweep).
    few = guidance_score(prepare_guidance(fixed, moving, Guidance(
        guidance.fixed_segmentation, guidance.moving_segmentation, fixed_points_lps=fixed_points[:3],
        moving_points_lps=TRUTH.transform_points(fixed_points[:3])), "elastix"), Transform.identity())  # fmt: skip
    assert len(few.points_mm) == 3 and "landmark distance" not in worse_than(few, right)


def test_a_preset_weighs_the_segments_its_own_way_unless_the_user_gives_a_weight():
    """guidance.json's ``by_preset``: a guided elastix deformable run weighs the segments 3 and the landmarks 3
    against the image term's 1 (measured on the hard TRUS-like pairs), elastix rigid 1 and 0.3; ANTs 3 and 1, its
    deformable 3 and 3; a given weight replaces them all."""
    fixed, moving, guidance = _guidance()

    def segment_weight(engine: str, preset: str | None, weight: float | None = None) -> float:
        given = Guidance(guidance.fixed_segmentation, guidance.moving_segmentation, weight=weight)
        return sum(c.weight for c in prepare_guidance(fixed, moving, given, engine, preset).engine_terms.channels)

    assert segment_weight("elastix", "rigid") == pytest.approx(1.0)
    assert segment_weight("elastix", None) == pytest.approx(1.0)
    assert segment_weight("elastix", "deformable") == pytest.approx(3.0)
    assert segment_weight("ants", "deformable") == pytest.approx(3.0) == segment_weight("ants", "rigid")
    assert segment_weight("elastix", "deformable", weight=0.5) == pytest.approx(0.5)
    assert guidance_defaults("elastix", "deformable")["points"] == pytest.approx(3.0)  # the landmarks too
    assert guidance_defaults("elastix", "rigid")["points"] == pytest.approx(0.3)
    assert guidance_defaults("ants", "deformable")["points"] == pytest.approx(3.0)
    assert guidance_defaults("ants", "rigid")["points"] == pytest.approx(1.0)


def test_a_damaged_by_preset_entry_names_the_fix(tmp_path, monkeypatch):
    copy = tmp_path / "Presets"
    shutil.copytree(presets_dir(), copy)
    record = json.loads((copy / "guidance.json").read_text())
    record["elastix"]["by_preset"] = ["deformable", 3.0]  # a list where a mapping belongs
    (copy / "guidance.json").write_text(json.dumps(record))
    monkeypatch.setenv("MMREG_PRESETS_DIR", str(copy))
    with pytest.raises(InputError, match="guidance.json is missing or damaged .*reinstall the extension"):
        guidance_defaults("elastix", "deformable")


def test_segmentations_on_the_other_images_grid_are_refused_or_named():
    fixed, moving = _grid(), _grid(size=40, spacing=2.5, origin=-50.0)
    on_fixed, on_moving = _labels(fixed, Transform.identity()), _labels(moving, TRUTH)
    assert not any("voxel grid" in w for w in prepare_guidance(fixed, moving, Guidance(on_fixed, on_moving), "elastix").warnings)
    # The images overlap: a swap, or each saved with the other image's geometry (right as given); the grids cannot
    # tell, so both causes and fixes are named (a helper's sweep had been told to swap a right pair).
    with pytest.raises(InputError, match="either they were given the wrong way round .give the segmentation made on the "
                                         "fixed image.*or each was saved with the other image as its reference geometry"):
        prepare_guidance(fixed, moving, Guidance(on_moving, on_fixed), "elastix")
    # The images 500 mm apart: each segmentation outside its own image, which only a swap explains.
    apart = sitk.Image(moving)
    apart.SetOrigin(tuple(np.add(moving.GetOrigin(), (500.0, 0.0, 0.0))))
    on_apart = sitk.Image(on_moving)
    on_apart.SetOrigin(apart.GetOrigin())
    with pytest.raises(InputError, match="outside their own images: they were given the wrong way round; give the"):
        prepare_guidance(fixed, apart, Guidance(on_apart, on_fixed), "elastix")
    # One on the other image's grid: perhaps resampled there on purpose, so a warning only.
    resampled = sitk.Resample(on_fixed, moving, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    warnings = prepare_guidance(fixed, moving, Guidance(resampled, on_moving), "elastix").warnings
    assert ("the fixed segmentation lies on the moving image's voxel grid, not the fixed image's: check that it was "
            "made on the fixed image") in warnings
    # Images on one grid: nothing to tell apart.
    same = _grid()
    assert not any("voxel grid" in w for w in prepare_guidance(fixed, same, Guidance(on_fixed, on_fixed), "elastix").warnings)


def test_segments_named_apart_pair_as_fixed_equals_moving():
    fixed, moving = _grid(), _grid()
    on_fixed = _labels(fixed, Transform.identity(), {1: "gland", 2: "nodule"})
    on_moving = _labels(moving, TRUTH, {1: "Prostate", 2: "lesion"})
    with pytest.raises(InputError, match="or pair two segments with --segments FIXED=MOVING"):
        pair_segments(on_fixed, on_moving)
    pairs = pair_segments(on_fixed, on_moving, ["gland=prostate", "nodule = 2"])
    assert [(p.name, p.fixed_value, p.moving_value, p.paired_by, p.moving_name) for p in pairs] == [
        ("gland", 1, 1, "given", "Prostate"), ("nodule", 2, 2, "given", "lesion")]
    with pytest.raises(InputError, match="segment 'capsule' of 'gland=capsule' is not in the moving segmentation: "
                                         r"choose from \['Prostate', 'lesion'\]"):  # fmt: skip
        pair_segments(on_fixed, on_moving, ["gland=capsule"])
    prepared = prepare_guidance(fixed, moving, Guidance(on_fixed, on_moving, segments=["gland=prostate"]), "elastix")
    assert [p.name for p in prepared.pairs] == ["gland"] and prepared.warnings == []


def test_an_unknown_segment_beside_a_given_pair_names_what_each_side_holds():
    fixed, moving = _grid(), _grid()
    on_fixed = _labels(fixed, Transform.identity(), {1: "gland", 2: "nodule"})
    on_moving = _labels(moving, TRUTH, {1: "prostate", 2: "lesion"})
    with pytest.raises(InputError, match=r"\['urethra'\] are not in both segmentations: choose from none is in both "
                                         r"\(fixed \['gland', 'nodule'\], moving \['lesion', 'prostate'\]\)"):  # fmt: skip
        pair_segments(on_fixed, on_moving, ["gland=prostate", "urethra"])


def test_a_segment_paired_twice_is_refused_and_a_pair_named_twice_counts_once():
    fixed, moving = _grid(), _grid()
    on_fixed = _labels(fixed, Transform.identity(), {1: "gland", 2: "lesion"})
    on_moving = _labels(moving, TRUTH, {1: "prostate", 2: "lesion"})
    with pytest.raises(InputError, match=r"pairs the fixed segment \['gland'\] with two segments"):
        pair_segments(on_fixed, on_moving, ["gland=prostate", "gland=lesion"])
    pairs = pair_segments(on_fixed, on_moving, ["lesion", "lesion=lesion", "gland=prostate"])
    assert [(p.fixed_value, p.moving_value) for p in pairs] == [(2, 2), (1, 1)]


def test_landmarks_that_say_the_anatomy_shrank_are_pointed_at_under_a_preset_that_keeps_the_size():
    fixed, moving = _grid(), _grid()
    shrunk = Transform.from_matrix(TRUTH.matrix @ np.diag([0.65, 0.65, 0.65, 1.0]))
    fixed_points = np.array([[20, 0, 0], [-20, 5, 0], [0, 15, -10], [5, -12, 12], [-8, -6, -14]], float)
    moving_points = shrunk.transform_points(fixed_points) + np.random.default_rng(1).normal(0.0, 0.6, (5, 3))
    guidance = Guidance(fixed_points_lps=fixed_points, moving_points_lps=moving_points)
    rigid = prepare_guidance(fixed, moving, guidance, "elastix", "rigid").warnings
    assert any("0.6" in w and "times the size" in w and "--preset similarity" in w for w in rigid), rigid
    assert any("times the size" in w for w in prepare_guidance(fixed, moving, guidance, "ants", "deformable").warnings)
    assert not any("times the size" in w for w in prepare_guidance(fixed, moving, guidance, "elastix", "similarity").warnings)
    same_size = Guidance(fixed_points_lps=fixed_points, moving_points_lps=TRUTH.transform_points(fixed_points))
    assert not any("times the size" in w for w in prepare_guidance(fixed, moving, same_size, "elastix", "rigid").warnings)


def test_a_nonlinear_initial_transform_is_refused_for_a_guided_run_before_any_engine():
    """The guided start would replace it silently (audit: a piecewise run from a deformable result ended linear,
    'started from guided', its mutual information lower than the initial transform's)."""
    from MultimodalRegistrationLib.registration.register import register

    fixed, moving, guidance = _guidance()
    images = [sitk.Cast(labels, sitk.sitkFloat32) for labels in (guidance.fixed_segmentation, guidance.moving_segmentation)]
    displacement = sitk.Image([8, 8, 8], sitk.sitkVectorFloat64, 3)
    displacement.SetSpacing([12.0] * 3)
    displacement.SetOrigin([-47.0] * 3)
    field = Transform.from_displacement_field(displacement)
    with pytest.raises(InputError, match="nonlinear initial transform cannot start a guided registration"):
        register(images[0], images[1], guidance=guidance, initial_transform=field)


def test_a_segment_empty_on_one_side_or_named_apart_gets_true_advice():
    """'urethra' named in both files but drawn in the fixed one only was told to be given the same name on both,
    which it had; a lone 'gland' against a lone 'prostate' (besides a pair) got no hint of --segments (a helper's
    sweep)."""
    from MultimodalRegistrationLib.registration.guided.pair_checks import unpaired_warning

    pairs = [SegmentPair("nodule", 3, 3)]
    said = unpaired_warning({1: "gland", 2: "urethra", 3: "nodule"}, {1: "prostate", 3: "nodule"}, "name", pairs,
                            ({1: "gland", 2: "urethra", 3: "nodule"}, {1: "prostate", 2: "urethra", 3: "nodule"}))  # fmt: skip
    assert said == (
        "segments 'gland' only in the fixed segmentation; segments 'prostate' only in the moving segmentation: they "
        "do not guide (give them the same name on both to pair them, or pair them with --segments gland=prostate if "
        "they are one structure); 'urethra' is empty in the moving segmentation (named, no voxels): it does not "
        "guide; draw it there, or leave it out"
    )


def test_a_segment_asked_for_but_empty_on_one_side_is_said_to_be_empty():
    """--segments lesion, 'lesion' named in both files but drawn on the moving side only, was refused as "not in
    both segmentations" (a helper's sweep): the refusal now says where it has no voxels."""
    from synthetic_geometry import named_labels

    grid = sitk.Image([20, 20, 20], sitk.sitkUInt8)
    array = np.zeros((20, 20, 20), np.uint8)
    array[5:15, 5:15, 5:15] = 1
    fixed = named_labels(array, grid, {1: "gland", 2: "lesion"})
    array[8:10, 8:10, 8:10] = 2
    moving = named_labels(array, grid, {1: "gland", 2: "lesion"})
    with pytest.raises(InputError) as refused:
        pair_segments(fixed, moving, ["lesion"])
    assert str(refused.value).startswith(
        "segments ['lesion'] are not in both segmentations ('lesion' is empty in the fixed segmentation (named, no "
        "voxels)): choose from ['gland']"
    ), str(refused.value)


def test_landmark_lists_given_the_wrong_way_round_are_named_after_the_run():
    """The two lists swapped while the segments carried the result: "landmarks 25.8 -> 25.4 mm RMS" and no warning
    (a helper's sweep). The result read moving -> fixed fits them: said to look swapped."""
    from MultimodalRegistrationLib.registration.guided.landmark_doubt import landmarks_missed_warning

    points = np.array([[20, 0, 0], [-20, 5, 0], [0, 15, -10], [5, -10, 8], [-8, -6, 12]], float)
    moved = TRUTH.transform_points(points)
    right = prepare_guidance(*_guidance(fixed_points_lps=points, moving_points_lps=moved), "elastix")
    assert landmarks_missed_warning(right, TRUTH) is None
    swapped = prepare_guidance(*_guidance(fixed_points_lps=moved, moving_points_lps=points), "elastix")
    said = landmarks_missed_warning(swapped, TRUTH)
    assert said.startswith("the result misses the landmarks by ") and "it fits them within 0.0 mm" in said
    assert "lists look swapped" in said


def test_a_guiding_segment_left_out_of_piecewise_that_the_field_carries_off_is_named():
    """--piecewise sacrum,left_hip,right_hip with the left femur guiding: the blend pulled the femur along with
    its hip (target error 2.85 -> 4.50 mm, Dice 0.826 -> 0.723) and said nothing (a helper's sweep)."""
    from MultimodalRegistrationLib.registration.piecewise.left_out import left_out_warnings

    fixed, moving, guidance = _guidance()
    carried = TRUTH @ rigid_transform(0.0, [0, 0, 1.0], [0.0, 4.0, 0.0])  # 4 mm off for every segment
    said = left_out_warnings(fixed, moving, guidance, ["1"], TRUTH, carried, "elastix")
    assert len(said) == 1 and said[0].startswith("segment '2' guides but is not among the segments moved on their own")
    assert left_out_warnings(fixed, moving, guidance, ["1", "2"], TRUTH, carried, "elastix") == []
    assert left_out_warnings(fixed, moving, guidance, ["1"], TRUTH, TRUTH, "elastix") == []


def test_a_segment_resampled_between_its_slices_keeps_its_place():
    """1.5 mm segmentations on a 3 mm image whose slice centres fall halfway between theirs: nearest-neighbour
    rounded every tie one way, moving glands 0.76 mm along z on average (a helper's sweep of TRUS-like MRs). Each
    block's centre still moves by up to 0.75 mm (3 mm slices); on average over where its faces fall, not at all."""
    from MultimodalRegistrationLib.registration.guided.guidance import segment_mask
    from MultimodalRegistrationLib.registration.guided.views import mask_points

    image = sitk.Image([40, 40, 20], sitk.sitkFloat32)
    image.SetSpacing((1.0, 1.0, 3.0))
    image.SetOrigin((0.0, 0.0, 0.75))  # slice centres at 0.75, 3.75, ...: halfway between the labels' slices
    shifts = []
    for first in (8, 9, 10, 11):
        for count in (18, 19, 20, 21):
            labels = sitk.Image([40, 40, 40], sitk.sitkUInt8)
            labels.SetSpacing((1.0, 1.0, 1.5))
            labels[10:30, 10:30, first : first + count] = 1
            mask = segment_mask(labels, 1, image, "moving", "gland")
            shifts.append(mask_points(mask).mean(axis=0)[2] - mask_points(labels).mean(axis=0)[2])
    assert abs(np.mean(shifts)) < 0.1 and np.max(np.abs(shifts)) <= 0.76, shifts
