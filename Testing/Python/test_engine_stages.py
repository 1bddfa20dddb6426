"""Engines report the cumulative transform after each stage of a multi-stage preset (EngineOutput.stages)."""

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import near_truth
from MultimodalRegistrationLib.core.metric import shrink_to_spacing
from MultimodalRegistrationLib.core.phantom import mean_error_mm, rigid_transform
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.ants import cumulative_stages
from MultimodalRegistrationLib.engines.elastix import stage_name
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.engines.request import EngineRequest
from MultimodalRegistrationLib.engines.run import run_engine

SEED = 1


def _quiet(*args, **details):
    pass


def _run(engine, preset, fixed, moving, initial, workdir):
    assert preset.engine == engine
    return run_engine(EngineRequest(fixed, moving, preset, initial, workdir, seed=SEED, progress=_quiet))


def _quick_deformable(engine):
    """The deformable preset with a short deformable stage (one level, few iterations; elastix without the
    bending-energy penalty, which costs seconds per level): the linear stages stay as they are."""
    preset = load_preset(engine, "deformable")
    if engine == "elastix":
        maps = [dict(m) for m in preset.recipe]
        bspline = {k: v for k, v in maps[-1].items() if k not in ("Metric0Weight", "Metric1Weight")}
        bspline.update(
            Metric=["AdvancedMattesMutualInformation"], NumberOfResolutions=["1"], GridSpacingSchedule=["1.0"],
            MaximumNumberOfIterations=["30"],
        )  # fmt: skip
        return dataclasses.replace(preset, recipe=maps[:-1] + [bspline])
    stages = [dict(stage) for stage in preset.recipe["stages"]]
    stages[-1].update(iterations=[10], level_spacing_mm=[8], smoothing_sigmas=[4])
    return dataclasses.replace(preset, recipe={**preset.recipe, "stages": stages})


@pytest.fixture(scope="module")
def initial(small_pair):
    # 8 degrees and 6 mm off the truth: only a cumulative transform that includes it lands on the truth.
    return near_truth(small_pair)


@pytest.fixture(scope="module")
def points(small_pair):
    step = max(1, len(small_pair.head_points) // 400)
    return small_pair.head_points[::step]


@pytest.fixture(scope="module")
def elastix_outputs(small_pair, initial, tmp_path_factory):
    return {
        name: _run("elastix", preset, small_pair.fixed, small_pair.moving, initial, tmp_path_factory.mktemp(name))
        for name, preset in (("affine", load_preset("elastix", "affine")), ("deformable", _quick_deformable("elastix")))
    }


def _gap_mm(a: Transform, b: Transform, points) -> float:
    return float(np.abs(a.transform_points(points) - b.transform_points(points)).max())


def _check(output, names, small_pair, points, label):
    assert [name for name, _ in output.stages] == names
    errors = {name: mean_error_mm(t, small_pair.truth, small_pair.head_points) for name, t in output.stages}
    print(f"{label}: mean error vs truth (mm) " + ", ".join(f"{name} {error:.3f}" for name, error in errors.items()))
    last_gap = _gap_mm(output.stages[-1][1], output.transform, points)
    print(f"{label}: last stage vs final transform {last_gap:.2e} mm")
    assert last_gap < 1e-6
    return errors


@pytest.mark.slow
def test_elastix_affine_reports_rigid_then_affine(small_pair, elastix_outputs, points):
    output = elastix_outputs["affine"]
    errors = _check(output, ["rigid", "affine"], small_pair, points, "elastix affine")
    rigid, affine = output.stages[0][1], output.stages[1][1]
    assert rigid.is_linear and affine.is_linear
    rotation = rigid.matrix[:3, :3]  # the initial transform and the Euler stage together: still rigid
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) and np.isclose(np.linalg.det(rotation), 1)
    assert errors["rigid"] < 1.0 and errors["affine"] < 1.0


@pytest.mark.slow
def test_elastix_deformable_reports_each_stage(small_pair, elastix_outputs, points):
    output = elastix_outputs["deformable"]
    errors = _check(output, ["rigid", "affine", "bspline"], small_pair, points, "elastix deformable")
    assert output.stages[0][1].is_linear and output.stages[1][1].is_linear
    assert not output.stages[2][1].is_linear
    assert errors["affine"] < 1.0
    # Same seed, same first two stages: the linear stages match the affine preset's.
    for (name, stage), (_, same) in zip(output.stages[:2], elastix_outputs["affine"].stages):
        gap = _gap_mm(stage, same, points)
        print(f"elastix deformable {name} stage vs the affine preset's: {gap:.2e} mm")
        assert gap < 1e-6


@pytest.mark.slow
def test_ants_deformable_reports_the_collapsed_linear_part_then_syn(small_pair, initial, points, tmp_path):
    # At 4 mm voxels with a short SyN, so that single-threaded ANTs stays quick.
    fixed, moving = shrink_to_spacing(small_pair.fixed, 4), shrink_to_spacing(small_pair.moving, 4)
    output = _run("ants", _quick_deformable("ants"), fixed, moving, initial, tmp_path)
    errors = _check(output, ["affine", "syn"], small_pair, points, "ants deformable")
    linear, final = output.stages[0][1], output.stages[1][1]
    assert linear.is_linear and not final.is_linear
    assert errors["affine"] < 1.0
    # The composite applies the SyN field first, then the linear part: linear @ field, not field @ linear.
    field = output.transform.components()[-1]
    order_gap = _gap_mm(linear @ field, output.transform, points)
    wrong_gap = _gap_mm(field @ linear, output.transform, points)
    print(f"ants: linear @ field vs final {order_gap:.2e} mm; field @ linear vs final {wrong_gap:.2f} mm")
    assert order_gap < 1e-6 and wrong_gap > 1e-3


def test_stage_names():
    assert [stage_name(m) for m in load_preset("elastix", "deformable").recipe] == ["rigid", "affine", "bspline"]
    assert stage_name({"Transform": ["SimilarityTransform"]}) == "similarity"


def test_ants_stages_from_a_collapsed_composite():
    # A linear part and a displacement field, as antsRegistration --collapse-output-transforms 1 writes them.
    linear = rigid_transform(10, (0, 0, 1), (5, -2, 1))
    shift = sitk.Image([8, 8, 8], sitk.sitkVectorFloat64, 3)
    shift.SetOrigin((-20.0, -20.0, -20.0))
    shift.SetSpacing((6.0, 6.0, 6.0))
    array = sitk.GetArrayFromImage(shift)
    array[..., 0] = 2.0
    field = sitk.GetImageFromArray(array, isVector=True)
    field.CopyInformation(shift)
    composite = linear @ Transform.from_displacement_field(field)
    assert np.allclose(composite.transform_points([[0, 0, 0]]), linear.transform_points([[2, 0, 0]]))
    stages = cumulative_stages(load_preset("ants", "deformable"), composite)
    assert [name for name, _ in stages] == ["affine", "syn"]
    assert np.allclose(stages[0][1].matrix, linear.matrix) and stages[1][1] is composite
    for preset, name in (("rigid", "rigid"), ("affine", "affine")):
        only = cumulative_stages(load_preset("ants", preset), linear)
        assert [n for n, _ in only] == [name] and only[0][1] is linear
