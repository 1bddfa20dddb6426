"""A guided deformable run in two phases (issue 22, item 3; registration/rigid_first.py): the preset's rigid
stages from the guided start, judged as a rigid run, then its deformable stages from the pose kept; its affine
stage is left out. On hard seeds 400-423 ANTs's affine stage had ended further from the truth than its start
on 16 of 24 pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.output import EngineOutput
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.registration import rigid_first as rigid_first_module
from MultimodalRegistrationLib.registration.describe import describe_start
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.outcome import Kept
from MultimodalRegistrationLib.registration.pose.initialize import StartingPoses
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rigid_first import rigid_first
from MultimodalRegistrationLib.registration.rules.keep import minimum_jacobian
from MultimodalRegistrationLib.registration.runs import EngineRuns, RegistrationRun, RunPlan
from MultimodalRegistrationLib.registration.settings import RegistrationSettings
from trus_data import trus_pair


def test_a_guided_deformable_preset_splits_into_rigid_and_deformable_stages():
    # Resources/Presets/presets.json: the intensity presets run guided in two phases; the distance-map preset
    # keeps its rigid and affine stages on the maps.
    for engine in ("elastix", "ants"):
        assert load_preset(engine, "deformable").guided_from_start
    assert not load_preset("elastix", "distance-map").guided_from_start
    rigid, deformable = load_preset("elastix", "deformable").guided_parts()
    assert [m["Transform"] for m in rigid.recipe] == [["EulerTransform"]] and rigid.is_linear and not rigid.scales
    assert [m["Transform"] for m in deformable.recipe] == [["RecursiveBSplineTransform"]] and not deformable.is_linear
    assert [f.rsplit("/", 1)[-1] for f in deformable.files] == ["bspline.txt"]
    assert deformable.skipped == ("AffineTransform",)
    rigid, deformable = load_preset("ants", "deformable").guided_parts()
    assert [stage["transform"] for stage in rigid.recipe["stages"]] == ["Rigid"]
    assert [stage["transform"] for stage in deformable.recipe["stages"]] == ["SyN"]
    assert deformable.skipped == ("Affine",)
    preset = load_preset("elastix", "rigid")
    assert preset.guided_parts() == (None, preset)


@pytest.mark.slow
def test_a_guided_deformable_run_gets_closer_than_its_rigid_start():
    # Hard pair 104 (21-degree pose, probe push, warp, independent segmentations); its rigid stage is not kept.
    # Measured, mean TRE: start 3.89 mm -> 2.57 mm with the MNI texture of ../shared/data, 4.02 -> 2.63 mm with the
    # phantom texture; smallest Jacobian determinant 0.74 and 0.71 (then on a 4 mm grid; now QA's check, core/folding.py).
    pair = trus_pair(104)
    fractions = []
    result = register(pair.fixed, pair.moving, engine="ants", preset="deformable", threads=1,
                      guidance=Guidance(pair.fixed_labels, pair.moving_labels),
                      progress=lambda fraction, stage, **details: fractions.append(fraction))  # fmt: skip
    assert fractions == sorted(fractions) and fractions[-1] == 1.0, "the progress bar never moves backwards"
    provenance = result.provenance
    assert provenance.stages_skipped == ["Affine"]
    assert provenance.rigid_stage, "the rigid stage ran and was judged"
    assert provenance.kept == "result", result.warnings
    assert not result.transform.is_linear
    start = Transform.from_matrix(np.asarray(provenance.start_matrix_lps))
    start_error, error = float(np.mean(pair.tre(start))), float(np.mean(pair.tre(result.transform)))
    assert error < start_error - 0.8, (start_error, error)
    assert minimum_jacobian(result.transform, pair.fixed) > 0.3
    assert "skipped Affine" in describe_start(result.summary())


def _plan_and_run():
    start = Transform.from_matrix(np.eye(4))
    image = sitk.Image(8, 8, 8, sitk.sitkFloat32)
    run = RegistrationRun(image, image, RegistrationSettings(engine="ants", preset="deformable"),
                          load_preset("ants", "deformable"), None, lambda *args, **details: None)  # fmt: skip
    plan = RunPlan(StartingPoses([("guided (headers)", start)], start), {}, [("guided (headers)", start)], {})
    return run, plan


@pytest.mark.parametrize("kept", ["result", "start", "segment centroids"])
def test_the_deformable_stages_start_from_the_pose_the_rigid_stage_kept(monkeypatch, kept):
    moved = Transform.from_matrix(np.array([[1, 0, 0, 2.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
    centroids = Transform.from_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, -4.0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
    seen = {}

    def engines(phase, plan):
        seen["stages"] = [stage["transform"] for stage in phase.recipe.recipe["stages"]]
        seen["span"] = plan.span
        output = EngineOutput(moved, moved.inverse(), "", "test", 1, stages=[("rigid", moved)])
        return EngineRuns(finished=[((1.0,), 0.1, "guided (headers)", plan.runs[0][1], output)])

    def judged(phase, plan, best):
        transform = {"result": moved, "start": plan.runs[0][1], "segment centroids": centroids}[kept]
        return Kept(transform, transform.inverse(), 0.1, kept, "" if kept == "result" else "not better"), None

    monkeypatch.setattr(rigid_first_module, "run_engines", engines)
    monkeypatch.setattr(rigid_first_module, "keep_no_worse", judged)
    run, plan = _plan_and_run()
    after = rigid_first(run, plan)
    assert seen["stages"] == ["Rigid"]
    # The progress bar: the rigid phase fills the first fifth of the engines' span, the deformable stages the rest.
    np.testing.assert_allclose(seen["span"], [0.05, 0.23])
    np.testing.assert_allclose(after.span, [0.23, 0.95])
    assert [stage["transform"] for stage in run.recipe.recipe["stages"]] == ["SyN"]
    ((name, pose),) = after.runs
    if kept == "result":
        assert name == "guided (headers), then its rigid stage" and after.rigid_stage == "kept"
        assert not after.from_guided_start
        np.testing.assert_allclose(pose.matrix[:3, 3], [2.5, 0, 0])
        assert after.starts.poses[0][0] == name
    elif kept == "start":
        assert name == "guided (headers)" and after.rigid_stage == "not better" and after.from_guided_start
        np.testing.assert_allclose(pose.matrix, np.eye(4))
    else:  # the rigid stage fell back to the centroid alignment: the deformable stages run from it, not the start
        assert name == "guided (headers), then the segment centroids" and not after.from_guided_start
        np.testing.assert_allclose(pose.matrix[:3, 3], [0, -4.0, 0])


def test_a_guided_elastix_run_records_its_rigid_stage_file_and_every_file_digest(monkeypatch):
    """The rigid stage ran from its own file, rigid.txt, and only bspline.txt had been recorded (a helper's sweep)."""
    from MultimodalRegistrationLib.core.digest import file_sha256
    from MultimodalRegistrationLib.registration.outcome import provenance

    def engines(phase, plan):
        output = EngineOutput(Transform.identity(), Transform.identity(), "", "test", 1)
        return EngineRuns(finished=[((1.0,), 0.1, "guided (headers)", plan.runs[0][1], output)])

    monkeypatch.setattr(rigid_first_module, "run_engines", engines)
    monkeypatch.setattr(rigid_first_module, "keep_no_worse", lambda phase, plan, best: (Kept(
        Transform.identity(), Transform.identity(), 0.1, "start", "not better"), None))  # fmt: skip
    image = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    start = Transform.identity()
    run = RegistrationRun(image, image, RegistrationSettings(engine="elastix", preset="deformable"),
                          load_preset("elastix", "deformable"), None, lambda *args, **details: None)  # fmt: skip
    plan = rigid_first(run, RunPlan(StartingPoses([("guided (headers)", start)], start), {},
                                    [("guided (headers)", start)], {}))  # fmt: skip
    assert [Path(f).name for f in plan.rigid_files] == ["rigid.txt"]
    output = EngineOutput(Transform.identity(), Transform.identity(), "", "test", 1)
    best = ((1.0,), 0.1, "guided (headers)", start, output)
    kept = Kept(Transform.identity(), Transform.identity(), 0.1, "result", "")
    made = provenance(run, plan, EngineRuns(finished=[best]), best, kept, None)
    assert [Path(f).name for f in made.preset_files] == ["rigid.txt", "bspline.txt"]
    assert made.preset_sha256 == [file_sha256(f) for f in made.preset_files] and len(made.preset_sha256[0]) == 64
