"""Small anatomy (a mouse brain, about 10 mm) is registered with its geometry scaled to the size the start search
and presets are built for, and the result brought back (registration/working_scale.py). Here: the CT/MR phantom
made 15 times smaller (a 17 mm head), misaligned by 25 degrees and 31 mm at full size."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import scaled_image
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.working_scale import scaled_matrix, working_scale

SHRINK = 1.0 / 15.0


@pytest.fixture(scope="module")
def tiny(small_pair):
    """The phantom pair, its truth and head points, every length 15 times smaller."""
    truth = Transform.from_matrix(scaled_matrix(small_pair.truth.matrix, SHRINK))
    return (scaled_image(small_pair.fixed, SHRINK), scaled_image(small_pair.moving, SHRINK), truth,
            small_pair.head_points * SHRINK)  # fmt: skip


def test_only_small_anatomy_is_scaled(small_pair, tiny):
    fixed, moving, _, _ = tiny
    assert working_scale(small_pair.fixed, small_pair.moving) == 1.0  # a human head: as it is
    widest = max(float(np.max(np.array(i.GetSize()) * np.array(i.GetSpacing()))) for i in (fixed, moving))
    assert widest < 40.0 and working_scale(fixed, moving) == pytest.approx(200.0 / widest, rel=0.05)


def test_a_nonlinear_result_comes_back_to_the_images_own_mm():
    """x -> T(x) at the working scale is x -> k T(x / k): a displacement field brought back maps as it should."""
    from MultimodalRegistrationLib.registration.working_scale import scaled_transform

    rng = np.random.default_rng(1)
    field = sitk.GetImageFromArray(rng.normal(0.0, 0.3, (6, 7, 8, 3)), isVector=True)
    field.SetSpacing((5.0, 5.0, 5.0))
    at_working_size = Transform.from_displacement_field(field)  # over a 40 x 35 x 30 mm box
    k = 12.0
    own = scaled_transform(at_working_size, 1.0 / k)
    points = rng.uniform(2.0, 25.0, (50, 3)) / k
    assert np.allclose(own.transform_points(points), at_working_size.transform_points(points * k) / k, atol=1e-9)
    back = scaled_transform(own, k)
    assert np.allclose(back.transform_points(points * k), at_working_size.transform_points(points * k), atol=1e-9)


def test_what_runs_at_its_own_size(tiny, tmp_path):
    """Only a named preset, guided or not, from no or a linear start; not images whose spacing is not mm."""
    from MultimodalRegistrationLib.registration.settings import RegistrationSettings
    from MultimodalRegistrationLib.registration.working_scale import scale_for

    fixed, moving, truth, _ = tiny
    k = working_scale(fixed, moving)
    assert k > 5 and scale_for(fixed, moving, RegistrationSettings(preset="similarity")) == k
    assert scale_for(fixed, moving, RegistrationSettings(preset="deformable")) == k
    assert scale_for(fixed, moving, RegistrationSettings(preset="rigid", initial_transform=truth)) == k
    field = Transform.from_displacement_field(sitk.Image([4, 4, 4], sitk.sitkVectorFloat64, 3))
    assert scale_for(fixed, moving, RegistrationSettings(preset="rigid", initial_transform=field)) == 1.0
    custom = tmp_path / "mine.txt"
    custom.write_text("(Transform \"EulerTransform\")\n")
    assert scale_for(fixed, moving, RegistrationSettings(preset=str(custom))) == 1.0
    wrong = scaled_image(fixed, 1e-4)  # voxels of 0.03 um: a spacing in the wrong units, left for the checks to refuse
    assert working_scale(wrong, scaled_image(moving, 1e-4)) == 1.0


@pytest.mark.slow
def test_a_head_15_times_smaller_registers_as_the_full_size_one(tiny):
    fixed, moving, truth, points = tiny
    mask = sitk.Cast(fixed > float(np.percentile(sitk.GetArrayViewFromImage(fixed), 40)), sitk.sitkUInt8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(fixed, moving, preset="rigid", fixed_mask=mask)
    # mm, in the small images' own units (full size: 0.3-0.5 mm on these 4 mm voxels)
    assert mean_error_mm(result.transform, truth, points) < 0.05
    assert np.allclose(result.inverse.matrix @ result.transform.matrix, np.eye(4), atol=1e-9)
    provenance = result.provenance
    assert provenance.working_scale == working_scale(fixed, moving)
    assert provenance.fixed.spacing_mm == [round(s, 6) for s in fixed.GetSpacing()]  # the images as given
    start = Transform.from_matrix(np.asarray(provenance.start_matrix_lps))
    assert mean_error_mm(start, truth, points) < 2.0  # the search's start, in the same units (31 mm -> 2.1 mm)
    assert any(w.startswith("registered at") for w in result.warnings)


@pytest.mark.slow
def test_the_far_from_start_rule_measures_in_the_images_own_mm(tiny):
    """A start 2.5 mm from the truth is 30 mm at the working scale (12 times): the result moves about 2.5 mm from
    it, not the 20 mm the warning needs (measured at the working scale, it warned)."""
    fixed, moving, truth, points = tiny
    nudge = np.eye(4)
    nudge[:3, 3] = [2.5, 0.0, 0.0]
    start = Transform.from_matrix(truth.matrix @ nudge)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(fixed, moving, preset="rigid", initial_transform=start)
    assert result.provenance.working_scale * 2.5 > 20 and mean_error_mm(result.transform, truth, points) < 0.05
    assert not any(w.startswith("the result lies") for w in result.warnings), result.warnings


@pytest.mark.slow
def test_a_cleared_mouse_brain_against_its_mri_registers(tmp_path):
    """The cleared-tissue tutorial at mouse size (audit): the MNI-based head MRI and a 65%-covered light-sheet stack
    shrunk 0.65 and turned 30 degrees, every length 15 times smaller (MRI at 0.13 mm, a 10 mm brain). elastix
    similarity failed on it ("Too many samples map outside moving image buffer"; without the working scale, still);
    at the working scale it ends 0.02 mm off (0.55 mm at full size, 1/15 of it 0.037)."""
    import micro_data as md

    if not md.available():
        pytest.skip("MNI ICBM152 maps not in ../shared/data")
    head = md.head_mri(spacing_mm=2.0, seed=0)
    case = md.light_sheet(0.65, 30.0, 0.65, seed=5, spacing_mm=1.0, brain_points=head.brain_points)
    fixed, moving = scaled_image(head.image, SHRINK), scaled_image(case.moving, SHRINK)
    truth, points = Transform.from_matrix(scaled_matrix(case.truth, SHRINK)), case.covered_points * SHRINK
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(fixed, moving, preset="similarity")
    error = mean_error_mm(result.transform, truth, points)
    print(f"cleared brain at 1/15: {error:.3f} mm")
    assert error < 0.05
    assert abs(np.linalg.det(result.transform.matrix[:3, :3])) ** (1 / 3) == pytest.approx(0.65, abs=0.01)


@pytest.mark.slow
def test_a_guided_run_is_scaled_too_and_its_record_is_in_the_images_own_mm(tiny):
    """Segments and landmarks scale with the images (they were left at their own size, and so the run with
    them): the guided result is as close as the unguided one, and the record's landmark distances are the
    images' own mm."""
    from MultimodalRegistrationLib.registration.guided.guidance import Guidance

    fixed, moving, truth, points = tiny
    labels = sitk.Cast(fixed > float(np.percentile(sitk.GetArrayViewFromImage(fixed), 60)), sitk.sitkUInt8)
    moved = sitk.Resample(labels, moving, truth.inverse().sitk, sitk.sitkNearestNeighbor)
    clicked = points[np.random.default_rng(3).choice(len(points), 5, replace=False)]
    guidance = Guidance(labels, moved, fixed_points_lps=clicked, moving_points_lps=truth.transform_points(clicked))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(fixed, moving, preset="rigid", guidance=guidance)
    assert result.provenance.working_scale == working_scale(fixed, moving)
    assert mean_error_mm(result.transform, truth, points) < 0.05
    moved_points = result.transform.transform_points(clicked)
    rms = float(np.sqrt(np.mean(np.sum((moved_points - truth.transform_points(clicked)) ** 2, axis=1))))
    record = result.provenance.guidance.score_result
    assert rms < 0.05 and record.points_rms_mm == pytest.approx(rms, abs=2e-4)
    start_rms = result.provenance.guidance.score_start.points_rms_mm
    assert start_rms is not None and start_rms < 1.0  # the guided start, in the same units (not 11 times larger)


def test_qa_measures_small_anatomy_as_its_registration_does(tiny):
    """mmreg qa sampled a 17 mm head on 2 mm grids: MI none (too few voxels), a handful of foreground points, and
    mmreg batch failed correct cases for "hardly overlapping". Its grids now shrink with the working scale."""
    from MultimodalRegistrationLib.qa.assess import assess_registration
    from MultimodalRegistrationLib.qa.stability import foreground_points
    from MultimodalRegistrationLib.qa.triage import triage_case

    fixed, moving, truth, _ = tiny
    k = working_scale(fixed, moving)
    report = assess_registration(fixed, moving, truth)
    as_registered = assess_registration(scaled_image(fixed, k), scaled_image(moving, k),
                                        Transform.from_matrix(scaled_matrix(truth.matrix, k)))  # fmt: skip
    after = report.images_after
    assert after.spacing_mm == pytest.approx(2.0 / k) and after.voxels == as_registered.images_after.voxels
    assert after.mutual_information == pytest.approx(as_registered.images_after.mutual_information, abs=1e-6)
    assert after.mutual_information > report.images_before.mutual_information + 0.1
    assert len(foreground_points(fixed)) == len(foreground_points(scaled_image(fixed, k))) > 500
    assert triage_case(None, report).verdict == "ok"
