"""An unguided deformable run whose affine stage changed the anatomy's shape runs again without it, and keeps that
only when the images hold it nearly as well: a squashed spinal cord is recovered, a slice spacing stored 2.5 times too
large (a true stretch) keeps its stretched result. Transforms map fixed to moving points (LPS mm)."""

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SMALL, near_truth
from MultimodalRegistrationLib.core.phantom import make_phantom_pair
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.shape_change import SHAPE_CHANGE
from MultimodalRegistrationLib.registration.rules.weak_result import linear_part
from MultimodalRegistrationLib.registration.without_affine import WITHOUT_AFFINE


@pytest.mark.parametrize(
    "engine, stages, skipped",
    [("elastix", ["rigid.txt", "bspline.txt"], ("AffineTransform",)), ("ants", None, ("Affine",))],
)
def test_a_deformable_preset_without_its_scaling_stages_keeps_rigid_then_deformable(engine, stages, skipped):
    deformable = load_preset(engine, "deformable")
    reduced = deformable.without_scaling()
    assert reduced.skipped == skipped and not reduced.linear and not reduced.scales
    if engine == "elastix":
        assert [path.rsplit("/", 1)[-1] for path in reduced.files] == stages and len(reduced.recipe) == 2
    else:
        assert [stage["transform"] for stage in reduced.recipe["stages"]] == ["Rigid", "SyN"]
    rigid = load_preset(engine, "rigid")
    assert rigid.without_scaling() is rigid


def _dice(fixed_segment: sitk.Image, moving_segment: sitk.Image, transform: Transform) -> float:
    moved = sitk.Resample(moving_segment, fixed_segment, transform.sitk, sitk.sitkNearestNeighbor, 0)
    a, b = sitk.GetArrayFromImage(fixed_segment) > 0, sitk.GetArrayFromImage(moved) > 0
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_the_real_cord_pair_squashed_by_the_affine_stage_is_registered_again_without_it():
    """SCT T2 (fixed) and T1w of one subject: the deformable preset's affine part had squashed the cord
    (1.12 : 0.39 : 0.30, cord Dice 0.31); without the affine stage the cord lies where the rigid result puts it."""
    from conftest import shared_data

    def read(name, kind=sitk.sitkFloat32):
        return sitk.ReadImage(str(shared_data("sct", name)), kind)

    t2, t1 = read("t2.nii.gz"), read("t1w.nii.gz")
    result = register(t2, t1, engine="elastix", preset="deformable")
    notes = [warning for warning in result.warnings if warning.startswith(WITHOUT_AFFINE)]
    assert len(notes) == 1 and "(scales 1.12, 0.39, 0.30)" in notes[0], result.warnings
    assert not any(warning.startswith(SHAPE_CHANGE) for warning in result.warnings)
    scales = np.linalg.svd(linear_part(result.transform, t2).matrix[:3, :3], compute_uv=False)
    assert scales.max() / scales.min() < 1.1, scales
    dice = _dice(read("t2_seg-manual.nii.gz", sitk.sitkUInt8), read("t1w_seg-manual.nii.gz", sitk.sitkUInt8),
                 result.transform)  # fmt: skip
    assert dice > 0.8, dice
    made = result.provenance
    assert made.stages_skipped == ["AffineTransform"]
    assert [path.rsplit("/", 1)[-1] for path in made.preset_files] == ["rigid.txt", "bspline.txt"]
    again = [tried for tried in made.starts_tried if tried.stages_skipped]
    assert [tried.start for tried in again] == ["any-pose", "header"] and made.start == "header"


def test_a_true_stretch_keeps_its_stretched_result():
    """The phantom MR with its slice spacing stored 2.5 times too large, started 8 degrees and 6 mm off without the
    stretch: the deformable result stretches that axis 2.25 times (11 mm off); without the affine stage it ended
    37 mm off at 0.53 times the information, so the stretched result is kept and warned, and the run without the
    affine stage is recorded."""
    pair = make_phantom_pair(**SMALL)
    moving = sitk.Image(pair.moving)
    spacing = list(moving.GetSpacing())
    spacing[2] *= 2.5
    moving.SetSpacing(spacing)
    origin, direction = np.array(moving.GetOrigin()), np.array(moving.GetDirection()).reshape(3, 3)
    stretch = np.eye(4)
    stretch[:3, :3] = direction @ np.diag([1.0, 1.0, 2.5]) @ direction.T
    stretch[:3, 3] = origin - stretch[:3, :3] @ origin
    result = register(pair.fixed, moving, engine="elastix", preset="deformable", init="none",
                      initial_transform=near_truth(pair))  # fmt: skip
    assert not any(warning.startswith(WITHOUT_AFFINE) for warning in result.warnings)
    shape = [warning for warning in result.warnings if warning.startswith(SHAPE_CHANGE)]
    assert len(shape) == 1 and "(2.25, 1.00, 0.99)" in shape[0], result.warnings
    truth = Transform.from_matrix(stretch) @ pair.truth
    center = np.array(pair.fixed.TransformContinuousIndexToPhysicalPoint([n / 2 for n in pair.fixed.GetSize()]))
    points = np.random.default_rng(0).uniform(-50, 50, (300, 3)) + center
    error = np.linalg.norm(result.transform.transform_points(points) - truth.transform_points(points), axis=1)
    assert error.mean() < 15.0, error.mean()
    made = result.provenance
    first, again = made.starts_tried
    assert made.stages_skipped == [] and (first.stages_skipped, again.stages_skipped) == (None, ["AffineTransform"])
    assert again.metric_after < 0.6 * first.metric_after, (again, first)


def test_a_deformable_run_whose_affine_stage_collapsed_runs_again_without_it():
    """The SCT T1w (fixed) and T2 from the right rigid result: the affine part's scales fell to 0.75, 0.23, 0.02 and
    the run had stopped (exit 1); without the affine stage the cords overlap as after the rigid result (Dice 0.77)."""
    from conftest import shared_data
    from MultimodalRegistrationLib.registration.without_affine import AFTER_COLLAPSE

    def read(name, kind=sitk.sitkFloat32):
        return sitk.ReadImage(str(shared_data("sct", name)), kind)

    t1, t2 = read("t1w.nii.gz"), read("t2.nii.gz")
    rigid = Transform.from_matrix(np.array([[1.0, 0.007, -0.006, -1.489], [-0.007, 1.0, 0.002, 0.459],
                                            [0.006, -0.002, 1.0, 0.259], [0.0, 0.0, 0.0, 1.0]]))  # fmt: skip
    result = register(t1, t2, engine="elastix", preset="deformable", initial_transform=rigid, init="none")
    assert any(warning.startswith(AFTER_COLLAPSE) for warning in result.warnings), result.warnings
    failed, again = result.provenance.starts_tried
    assert "collapsed" in failed.error and again.stages_skipped == ["AffineTransform"] and again.error is None
    dice = _dice(read("t1w_seg-manual.nii.gz", sitk.sitkUInt8), read("t2_seg-manual.nii.gz", sitk.sitkUInt8),
                 result.transform)  # fmt: skip
    assert dice > 0.65, dice


def test_a_run_that_left_its_affine_stage_out_is_not_run_again_for_it():
    """After a collapse the run goes on without its affine stage: a result that then still changes the shape does
    not send the same preset round again (a reviewer: it had, from every start)."""
    from MultimodalRegistrationLib.registration.runs import RegistrationRun
    from MultimodalRegistrationLib.registration.settings import RegistrationSettings
    from MultimodalRegistrationLib.registration.without_affine import _reduced

    image = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    deformable = load_preset("elastix", "deformable")
    run = RegistrationRun(image, image, RegistrationSettings(), deformable, None, lambda *a, **k: None)
    assert _reduced(run).skipped == ("AffineTransform",)
    run.recipe = deformable.without_scaling()
    assert _reduced(run) is None
    run.recipe = load_preset("elastix", "similarity")
    assert _reduced(run) is None
