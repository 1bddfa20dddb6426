"""Piecewise registration: the polyrigid blend alone (no engine), the per-segment rules (engine replaced),
and end to end on the pelvis-like pair with the elastix engine (slow).

Every transform maps fixed points to moving points (LPS mm).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.piecewise import polyrigid
from MultimodalRegistrationLib.registration.piecewise import segments as piecewise
from MultimodalRegistrationLib.registration.piecewise.polyrigid import RigidPiece, polyrigid_field
from MultimodalRegistrationLib.registration.piecewise.segments import register_piecewise
from MultimodalRegistrationLib.registration.rules.keep import minimum_jacobian
from MultimodalRegistrationLib.registration.rules.masks import check_fixed_mask_size
from MultimodalRegistrationLib.registration.summary import Provenance
from pelvis_like import pelvis_like_pair

GLOBAL = rigid_transform(8.0, [0.2, 1.0, 0.3], [5.0, -3.0, 2.0])


def _image(size=48, spacing=2.0) -> sitk.Image:
    image = sitk.Image([size] * 3, sitk.sitkFloat32)
    image.SetSpacing([spacing] * 3)
    image.SetOrigin([-(size - 1) * spacing / 2] * 3)
    return image


def _voxel_points(image: sitk.Image) -> np.ndarray:
    """LPS mm of every voxel centre, (z, y, x, 3)."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in image.GetSize()[::-1]], indexing="ij")
    return np.stack([x, y, z], -1) * image.GetSpacing()[0] + np.asarray(image.GetOrigin())


def _mask(image: sitk.Image, inside: np.ndarray) -> sitk.Image:
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def _errors(field: Transform, truth: Transform, points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(field.transform_points(points) - truth.transform_points(points), axis=1)


def _two_spheres():
    """Two balls (radius 12 mm, 16 mm apart) turning opposite ways on top of GLOBAL."""
    image = _image()
    points = _voxel_points(image)
    centres = {"left": np.array([20.0, 0.0, 0.0]), "right": np.array([-20.0, 0.0, 0.0])}
    motions = {
        "left": GLOBAL @ rigid_transform(6.0, [0.0, 0.3, 1.0], [2.0, -1.5, 1.0], centres["left"]),
        "right": GLOBAL @ rigid_transform(-6.0, [0.0, 0.3, 1.0], [-2.0, 1.0, -1.0], centres["right"]),
    }
    inside = {name: np.linalg.norm(points - centre, axis=-1) <= 12.0 for name, centre in centres.items()}
    pieces = [RigidPiece(name, _mask(image, inside[name]), motions[name]) for name in centres]
    return image, points, inside, motions, pieces


def test_blend_is_each_rigid_motion_inside_its_segment_smooth_between_and_global_far_away(tmp_path):
    image, points, inside, motions, pieces = _two_spheres()
    blend = polyrigid_field(image, GLOBAL, pieces, spacing_mm=2.0)
    field = blend.transform
    assert field.kind == "composite"  # the global transform after a residual field
    for name, motion in motions.items():
        error = _errors(field, motion, points[inside[name]]).max()
        print(f"{name}: largest error inside {error:.2e} mm over {inside[name].sum()} voxels")
        assert error < 0.1  # measured ~1e-12 mm: the nodes around the segment hold its exact motion
        assert blend.exact_error_mm[name] < 1e-6
    print(f"minimum Jacobian determinant {blend.minimum_jacobian:.3f}, {blend.squarings} squarings")
    # measured 0.46, in the 8 mm band beyond the image where the residual fades to 0 (0.80 between the balls)
    assert blend.minimum_jacobian > 0.4
    # register's own folding check (and QA's) finds the same cell: at the image's edge, x = -48 mm (LPS)
    assert minimum_jacobian(field, image) == pytest.approx(blend.minimum_jacobian, abs=1e-9)

    # Between the balls the displacement changes smoothly: no cell takes much more than its share of the change.
    line = np.stack([np.linspace(-8.0, 8.0, 33), np.zeros(33), np.zeros(33)], axis=1)
    steps = np.linalg.norm(np.diff(field.transform_points(line) - line, axis=0), axis=1)
    print(f"between the balls: {steps.sum():.2f} mm of change, at most {steps.max():.2f} mm per 0.5 mm step")
    assert steps.max() < 3 * steps.mean()  # measured 0.29 mm against a mean of 0.13 mm

    # Away from both (up to the grid's edge, 47 mm out) the field tends to the global transform.
    away = [_errors(field, GLOBAL, [[0.0, y, 0.0]])[0] for y in (10.0, 25.0, 46.0)]
    print(f"from the global transform at 10, 25 and 46 mm out: {np.round(away, 2).tolist()} mm")
    assert away[0] > away[1] > away[2]
    # Beyond the grid it is the global transform (a bare displacement field was the identity there: 12 mm off on the
    # pelvis beyond a cropped fixed image's box).
    beyond = np.array([[0.0, 120.0, 0.0], [-90.0, 0.0, 60.0], [0.0, 55.5, 0.0], [47.0 + 8.4, 0.0, 0.0]])
    assert _errors(field, GLOBAL, beyond).max() < 1e-9  # also just past the grid: no step (review: up to 2.4 mm)
    # On the grid the composite is the whole field as written to an image.
    whole = Transform.from_displacement_field(blend.field)
    assert np.abs(whole.transform_points(points[inside["left"]][:50]) - field.transform_points(points[inside["left"]][:50])).max() < 1e-6

    # It saves as an ITK transform and as a displacement image, and reads back the same.
    field.write(tmp_path / "field.h5")
    sitk.WriteImage(blend.field, str(tmp_path / "field.nii.gz"))
    probe = points[inside["left"]][:50]
    for name in ("field.h5", "field.nii.gz"):
        again = Transform.read(tmp_path / name).transform_points(probe)
        assert np.abs(again - field.transform_points(probe)).max() < 1e-4


def test_close_segments_turning_opposite_ways_do_not_fold(monkeypatch):
    """Two slabs 4 mm apart (6 mm between their outermost voxel centres), each turned 12 degrees the other way
    about an axis along the gap: one end of the gap closes by 5.4 mm, the other opens. Holding both exact
    motions up to the rim would fold; the field gives way at the rim instead."""
    image = _image(size=40)
    points = _voxel_points(image)
    x = points[..., 0]
    box = (np.abs(points[..., 1]) <= 14.0) & (np.abs(points[..., 2]) <= 14.0)
    slabs = {"upper": box & (x >= 2.0) & (x <= 22.0), "lower": box & (x <= -2.0) & (x >= -22.0)}
    motions = {
        "upper": GLOBAL @ rigid_transform(12.0, [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [12.0, 0.0, 0.0]),
        "lower": GLOBAL @ rigid_transform(-12.0, [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-12.0, 0.0, 0.0]),
    }
    pieces = [RigidPiece(name, _mask(image, slabs[name]), motions[name]) for name in slabs]
    with monkeypatch.context() as patch:
        patch.setattr(polyrigid, "FOLD_FLOOR", -np.inf)
        rigid_to_the_rim = polyrigid_field(image, GLOBAL, pieces, spacing_mm=2.0)
    blend = polyrigid_field(image, GLOBAL, pieces, spacing_mm=2.0)
    print(f"minimum Jacobian determinant {blend.minimum_jacobian:.3f} after {blend.relax_rounds} rounds of giving way")
    print(
        f"(exact to the rim {rigid_to_the_rim.minimum_jacobian:.3f}, the flow alone {blend.flow_minimum_jacobian:.3f})"
    )
    print(f"largest error inside: {blend.exact_error_mm} mm")
    assert rigid_to_the_rim.minimum_jacobian < 0  # measured -0.18
    assert blend.minimum_jacobian > 0.1  # measured 0.21
    assert minimum_jacobian(blend.transform, image, spacing_mm=2.0) > 0
    for name, motion in motions.items():
        assert blend.exact_error_mm[name] < 1.0  # measured 0.44 mm, at the closing end of the rim
        deep = slabs[name] & (np.abs(x) >= 6.0)  # 4 mm and more from the slab's face
        error = _errors(blend.transform, motion, points[deep]).max()
        print(f"{name}: largest error 4 mm or more inside {error:.2e} mm")
        assert error < 0.1


@pytest.mark.slow  # ~3 s: a 2 mm field over the whole pelvis
def test_blend_of_the_pelvis_truth_puts_every_target_on_its_bone():
    """The blend alone, fed the pelvis-like pair's true bone motions: every target lands within 0.1 mm and the
    field does not fold, although the femoral head sits 5.5 mm inside its cup."""
    pair = pelvis_like_pair()
    pieces = [
        RigidPiece(name, sitk.Cast(pair.fixed_labels == value, sitk.sitkUInt8), pair.bone_truths[name])
        for value, name in pair.names.items()
    ]
    blend = polyrigid_field(pair.fixed, pair.global_truth, pieces)
    print(f"minimum Jacobian determinant {blend.minimum_jacobian:.3f}; largest error inside {blend.exact_error_mm} mm")
    assert blend.minimum_jacobian > 0.05  # measured 0.14
    for name in pair.names.values():
        error = np.linalg.norm(
            blend.transform.transform_points(pair.targets_fixed[name]) - pair.targets_moving[name], axis=1
        )
        print(f"{name}: targets within {error.max():.3f} mm")
        # 0.16 mm at a femoral target by the cup, where the field gives way rather than fold (0.02 mm when the two-cell
        # Jacobian missed the cells that folded there)
        assert error.max() < 0.25


def test_blend_refuses_what_it_cannot_blend():
    image, _, _, _, pieces = _two_spheres()
    with pytest.raises(InputError, match="at least one segment"):
        polyrigid_field(image, GLOBAL, [])
    empty = RigidPiece("empty", _mask(image, np.zeros(image.GetSize()[::-1], bool)), GLOBAL)
    with pytest.raises(InputError, match="segment 'empty' is empty"):
        polyrigid_field(image, GLOBAL, [empty])
    with pytest.raises(InputError, match="positive spacing"):
        polyrigid_field(image, GLOBAL, pieces, spacing_mm=0.0)


# the per-segment rules, with the engine replaced --------------------------------------------------------
@pytest.fixture(scope="module")
def pelvis():
    return pelvis_like_pair()


def _fake_register(offsets: dict[str, Transform], calls: list):
    """A stand-in for register(): the start moved by the named segment's offset (applied in fixed space)."""

    def fake(fixed, moving, **options):
        calls.append(options)
        name = options["guidance"].segments[0] if options.get("guidance") and options.get("fixed_mask") else None
        start = options.get("initial_transform") or Transform.identity()
        transform = start @ offsets.get(name, Transform.identity())
        return _result(transform)

    return fake


def _result(transform: Transform) -> piecewise.RegistrationResult:
    provenance = Provenance.from_dict({"engine": "fake", "start": "none", "starts_tried": []})
    return piecewise.RegistrationResult(transform, None, 0.0, 0.0, 0.0, "", provenance=provenance, warnings=[])


def test_segments_run_from_the_global_result_in_their_own_grown_masks_and_far_results_are_refused(pelvis, monkeypatch):
    guidance = Guidance(pelvis.fixed_labels, pelvis.moving_labels)
    offsets = {
        "sacrum": rigid_transform(3.0, [1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 36.0, 8.0]),
        "left_hip": rigid_transform(0.0, [1.0, 0.0, 0.0], [25.0, 0.0, 0.0]),  # 25 mm: not plausible
    }
    calls: list[dict] = []
    monkeypatch.setattr(piecewise, "register", _fake_register(offsets, calls))
    result = register_piecewise(
        pelvis.fixed, pelvis.moving, guidance, ["sacrum", "left_hip"], global_result=_result(pelvis.global_truth)
    )
    assert [call["init"] for call in calls] == ["none", "none"]
    assert all(call["initial_transform"] is pelvis.global_truth for call in calls)
    assert [call["guidance"].segments for call in calls] == [["sacrum"], ["left_hip"]]
    sacrum, hip = result.segments["sacrum"], result.segments["left_hip"]
    # At 3.5 mm voxels the rigid preset's coarsest level is 14 mm: the margin grows to it.
    assert sacrum.margin_mm == pytest.approx(14.0)
    fixed_mask = calls[0]["fixed_mask"]
    grown = int(np.count_nonzero(sitk.GetArrayViewFromImage(fixed_mask)))
    bone = int(np.count_nonzero(sitk.GetArrayViewFromImage(pelvis.fixed_labels) == 1))
    assert grown > 3 * bone
    assert sacrum.kept and sacrum.rotation_deg == pytest.approx(3.0, abs=0.01)
    assert np.allclose(sacrum.transform.matrix, (pelvis.global_truth @ offsets["sacrum"]).matrix)
    assert not hip.kept and "25.0 mm from the global one" in hip.reason
    assert np.allclose(hip.transform.matrix, pelvis.global_truth.matrix)
    assert any("kept the global transform for 'left_hip'" in warning for warning in result.warnings)
    # QA before (global) and after (own) per segment; the refused one is unchanged.
    assert hip.score_after.dice == hip.score_before.dice
    record = json.loads(json.dumps(result.to_dict()))
    assert [segment["name"] for segment in record["segments"]] == ["sacrum", "left_hip"]
    assert record["segments"][1]["kept"] is False
    assert record["minimum_jacobian"] > 0


def test_a_warning_the_global_run_gave_is_not_repeated_per_segment(pelvis, monkeypatch):
    """A segment's run meets the same guidance (a lone pair's pairing warning): the summary says it once. A warning
    of the segment's own run that reads like one of the global run's is its own, and stays."""
    shared, engine, own = "paired the only segments 'a' and 'b'", "kept the start", "its own finding"
    prepare = piecewise.prepare_guidance

    def prepare_with_the_shared_warning(*args, **kwargs):
        prepared = prepare(*args, **kwargs)
        prepared.warnings.append(shared)
        return prepared

    def fake(fixed, moving, **options):
        return replace(_result(options["initial_transform"]), warnings=[shared, engine, own])

    monkeypatch.setattr(piecewise, "prepare_guidance", prepare_with_the_shared_warning)
    monkeypatch.setattr(piecewise, "register", fake)
    global_result = replace(_result(pelvis.global_truth), warnings=[shared, engine])
    result = register_piecewise(pelvis.fixed, pelvis.moving, Guidance(pelvis.fixed_labels, pelvis.moving_labels),
                                ["sacrum"], global_result=global_result)  # fmt: skip
    assert [w for w in result.warnings if shared in w] == [f"global: {shared}"]
    assert [w for w in result.warnings if engine in w] == [f"global: {engine}", f"sacrum: {engine}"]
    assert f"sacrum: {own}" in result.warnings
    assert result.segments["sacrum"].warnings == [shared, engine, own]  # the segment's own record keeps all


def test_piecewise_refuses_missing_or_unknown_segments(pelvis):
    with pytest.raises(InputError, match="needs segmentations"):
        register_piecewise(pelvis.fixed, pelvis.moving, Guidance(), ["sacrum"])
    with pytest.raises(InputError, match=r"segments \['spine'\] are not in both segmentations"):
        register_piecewise(pelvis.fixed, pelvis.moving, Guidance(pelvis.fixed_labels, pelvis.moving_labels), ["spine"])
    with pytest.raises(InputError, match="needs the segments"):
        register_piecewise(pelvis.fixed, pelvis.moving, Guidance(pelvis.fixed_labels, pelvis.moving_labels), [])


def test_a_segment_is_guided_by_itself_and_the_landmarks_inside_its_grown_mask(pelvis):
    sacrum = sitk.Cast(pelvis.fixed_labels == 1, sitk.sitkUInt8)
    top = np.argwhere(sitk.GetArrayViewFromImage(sacrum))[:, ::-1].tolist()[-1]  # highest voxel (x, y, z)
    highest = np.asarray(sacrum.TransformIndexToPhysicalPoint([int(i) for i in top]))
    fixed_points = np.array([[0.0, 36.0, 8.0], highest + [0.0, 0.0, 8.0], [90.0, -60.0, -50.0]])  # in, 8 mm out, far
    guidance = Guidance(
        pelvis.fixed_labels, pelvis.moving_labels, ["sacrum", "left_hip"], fixed_points, fixed_points + 1
    )
    own = piecewise.segment_guidance(guidance, "sacrum", piecewise.grow_mask(sacrum, 14.0))
    assert own.segments == ["sacrum"]
    assert np.array_equal(own.fixed_points_lps, fixed_points[:2])
    assert np.array_equal(own.moving_points_lps, fixed_points[:2] + 1)
    alone = piecewise.segment_guidance(guidance, "sacrum", sacrum)
    assert np.array_equal(alone.fixed_points_lps, fixed_points[:1])


def test_a_segment_too_small_for_the_sampler_gets_a_wider_margin_and_says_so(pelvis):
    dot = sitk.Image(pelvis.fixed.GetSize(), sitk.sitkUInt8)
    dot.CopyInformation(pelvis.fixed)
    dot[30, 20, 15] = 1  # one 3.5 mm voxel
    recipe = load_preset("elastix", "rigid")
    margin, mask, warnings = piecewise._grown_fixed_mask(recipe, pelvis.fixed, dot, 10.0, "dot")
    assert margin > piecewise.coarsest_voxel_mm(recipe, pelvis.fixed) == pytest.approx(14.0)
    assert warnings == [f"grew the margin around 'dot' to {margin:.0f} mm: the segment was too small for the sampler"]
    check_fixed_mask_size(recipe, pelvis.fixed, mask)  # accepted


# end to end: through the worker and onto MRML nodes, as the module runs it ----------------------------------
def _target_errors(pair, name: str, transform: Transform) -> np.ndarray:
    return np.linalg.norm(transform.transform_points(pair.targets_fixed[name]) - pair.targets_moving[name], axis=1)


@pytest.mark.slow
def test_every_bone_lands_under_a_millimetre_in_its_own_node_and_in_the_field(
    scene, pelvis, make_segmentation, warm_elastix
):
    pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")
    import slicer
    from MultimodalRegistrationLib.nodes import mrml
    from MultimodalRegistrationLib.nodes.registration import ATTRIBUTE_PREFIX, register_nodes, registration_parameters

    fixed = mrml.volume_node_from_image(scene, pelvis.fixed, "CT")
    moving = mrml.volume_node_from_image(scene, pelvis.moving, "MR")
    bones = list(pelvis.names.values())

    parameters = registration_parameters(
        fixedVolume=fixed, movingVolume=moving, piecewise=bones,
        fixedSegmentation=make_segmentation(pelvis.fixed_labels, pelvis.names, "CT bones"),
        movingSegmentation=make_segmentation(pelvis.moving_labels, pelvis.names, "MR bones"),
    )  # fmt: skip
    registration = register_nodes(parameters, warm=warm_elastix)

    field_node = registration.output_transform_node
    field = mrml.transform_from_node(field_node)
    record = registration.summary.piecewise
    global_transform = Transform.from_matrix(np.asarray(record.global_summary.matrix_lps))
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(registration.segment_transform_nodes[bones[0]]))
    assert hierarchy.GetItemName(folder) == f"{field_node.GetName()} segments"
    assert hierarchy.GetNumberOfItemChildren(folder) == len(bones)
    print(f"\n{'bone':11s} {'global':>13s} {'own':>13s} {'field':>13s}  (mean / max mm)")
    for name, segment in zip(bones, record.segments):
        node = registration.segment_transform_nodes[name]
        assert node.IsLinear() and node.GetAttribute(ATTRIBUTE_PREFIX + "segment") == name == segment.name
        rows = [_target_errors(pelvis, name, t) for t in (global_transform, mrml.transform_from_node(node), field)]
        print(f"{name:11s} " + " ".join(f"{e.mean():6.2f}/{e.max():5.2f}" for e in rows))
        global_error, own_error, field_error = rows
        assert segment.kept and segment.registration.start == "none"  # from the global result as it is
        assert own_error.max() < 1.0  # measured 0.43 to 0.72 mm at 3.5 mm voxels
        assert field_error.max() < 1.0  # the field holds each bone's own motion at its targets
        assert global_error.mean() > 1.5 and global_error.mean() > 3 * own_error.mean()  # measured 2.0 to 3.1 mm
        assert segment.qa.after.mean_dice > segment.qa.before.mean_dice
    minimum = float(field_node.GetAttribute(ATTRIBUTE_PREFIX + "piecewiseMinimumJacobian"))
    print(f"minimum Jacobian determinant {minimum:.3f}")
    assert minimum > 0.05  # measured 0.13
    assert minimum_jacobian(field, pelvis.fixed) > 0
    assert record.global_summary.provenance.guidance is not None and record.blend["grid_spacing_mm"] == 2.0
    # The summary's mutual information is the field's, the transform it names (it had been the global result's).
    from MultimodalRegistrationLib.core.metric import mutual_information

    after = registration.summary.metric_after
    print(f"mutual information: global {record.global_summary.metric_after:.4f}, field {after:.4f}")
    assert after == pytest.approx(mutual_information(pelvis.fixed, pelvis.moving, field), abs=1e-3)
    assert after > record.global_summary.metric_after + 0.01


def test_when_halving_is_not_enough_the_flow_takes_over_until_no_cell_folds(monkeypatch):
    """Two slabs touching, turned 25 degrees apart, with one round of halving allowed: the exact motions then give
    way to the flow cell by cell (review: the fallback ran once and left -0.48 where the flow alone is +0.07)."""
    image = _image(size=40)
    points = _voxel_points(image)
    x = points[..., 0]
    box = (np.abs(points[..., 1]) <= 14.0) & (np.abs(points[..., 2]) <= 14.0)
    slabs = {"upper": box & (x >= 1.0) & (x <= 22.0), "lower": box & (x <= -1.0) & (x >= -22.0)}
    motions = {"upper": GLOBAL @ rigid_transform(25.0, [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [12.0, 0.0, 0.0]),
               "lower": GLOBAL @ rigid_transform(-25.0, [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-12.0, 0.0, 0.0])}  # fmt: skip
    pieces = [RigidPiece(name, _mask(image, slabs[name]), motions[name]) for name in slabs]
    monkeypatch.setattr(polyrigid, "MAX_RELAX_ROUNDS", 1)
    blend = polyrigid_field(image, GLOBAL, pieces, spacing_mm=2.0)
    print(f"minimum {blend.minimum_jacobian:.3f} (flow {blend.flow_minimum_jacobian:.3f}) after {blend.relax_rounds} rounds")
    assert blend.minimum_jacobian > 0 and blend.relax_rounds > 1


def test_segments_whose_names_differ_only_in_symbols_get_a_file_each(tmp_path):
    """'hip(L)' and 'hip[L]' both became T_hip_L_.h5: the second segment's transform overwrote the first's and the
    summary named one file for both (a helper's sweep: 5.2 mm off on hip(L)). Each now has its own file."""
    from types import SimpleNamespace

    from MultimodalRegistrationLib.core.files import OutputSet
    from MultimodalRegistrationLib.process.registration_job import _write_segment_transforms

    shifts = {"hip(L)": 1.0, "hip[L]": 2.0, "Hip[L]": 3.0}
    segments = {}
    for name, shift in shifts.items():
        matrix = np.eye(4)
        matrix[0, 3] = shift
        segments[name] = SimpleNamespace(transform=Transform.from_matrix(matrix))
    with OutputSet() as staged:
        written = _write_segment_transforms(str(tmp_path / "T.h5"), SimpleNamespace(segments=segments), staged)
    assert len({path.lower() for path in written.values()}) == 3
    for name, shift in shifts.items():
        assert Transform.read(written[name]).matrix[0, 3] == pytest.approx(shift)


def test_a_piece_named_apart_on_the_two_images_runs_as_segments_pairs_it(pelvis, monkeypatch):
    """--segments sacrum="os sacrum" --piecewise sacrum (or the pair itself) was refused ('no segment is in both
    segmentations ... pair two segments with --segments FIXED=MOVING'), the advice already followed (a helper's walk
    through the README). Each piece now takes the --segments entry that pairs it, and its own run is guided by it."""
    from MultimodalRegistrationLib.core.labels import label_names, set_label_names

    names = {value: ("os sacrum" if name == "sacrum" else name)
             for value, name in label_names(pelvis.moving_labels).items()}  # fmt: skip
    moving_labels = set_label_names(sitk.Image(pelvis.moving_labels), names)
    guidance = Guidance(pelvis.fixed_labels, moving_labels, segments=["sacrum=os sacrum", "left_hip"])
    for pieces in (["sacrum"], ["sacrum=os sacrum"], ["os sacrum"]):
        calls: list[dict] = []
        monkeypatch.setattr(piecewise, "register", _fake_register({}, calls))
        result = register_piecewise(pelvis.fixed, pelvis.moving, guidance, pieces,
                                    global_result=_result(pelvis.global_truth))  # fmt: skip
        assert list(result.segments) == ["sacrum"]
        assert [call["guidance"].segments for call in calls] == [["sacrum=os sacrum"]]
