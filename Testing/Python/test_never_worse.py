"""Never worse than the start: register() keeps an engine's result only if its mutual information is
not lower than the start's (beyond a small tolerance) and, for a nonlinear result, it does not fold;
otherwise the latest earlier stage that passes, or the start."""

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.metric import mutual_information
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, rigid_transform
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.keep import KEEP_TOLERANCE_NATS, minimum_jacobian
from MultimodalRegistrationLib.registration.summary import Provenance, RegistrationSummary

PRESETS = Path(__file__).resolve().parents[2] / "Resources" / "Presets" / "elastix"


@pytest.fixture(scope="module")
def pair():
    return make_phantom_pair(ct_spacing=(4, 4, 4), mr_spacing=(4, 4, 4))


def _wild_preset(tmp_path: Path) -> Path:
    """The rigid preset with an absurd step (60 mm) on few samples: from the truth it wanders away."""
    text = (PRESETS / "rigid.txt").read_text()
    for key, value in (
        ("MaximumStepLength", "60.0"),
        ("NumberOfSpatialSamples", "64"),
        ("NumberOfResolutions", "1"),
        ("MaximumNumberOfIterations", "30"),
    ):
        text, count = re.subn(rf"\({key} [^)]*\)", f"({key} {value})", text)
        assert count == 1, key
    path = tmp_path / "wild.txt"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_a_normal_rigid_registration_keeps_its_result(pair):
    # 4 degrees and 5 mm off the truth: the rigid preset improves on that start, and the result is kept.
    start = rigid_transform(4.0, (1.0, 0.2, 0.1), (3.0, -3.0, 2.0)) @ pair.truth
    result = register(pair.fixed, pair.moving, initial_transform=start, init="none")
    assert result.provenance.kept == "result"
    assert result.provenance.kept_reason == ""
    assert not any("kept the start" in warning for warning in result.warnings)
    assert result.metric_after > result.metric_before
    assert not np.allclose(result.transform.matrix, start.matrix, atol=1e-3)
    assert result.summary().to_dict()["provenance"]["kept"] == "result"


@pytest.mark.slow
def test_a_result_worse_than_its_start_is_returned_as_the_start(pair, tmp_path):
    wild = str(_wild_preset(tmp_path))
    result = register(pair.fixed, pair.moving, preset=wild, initial_transform=pair.truth, init="none")
    assert np.abs(result.transform.matrix - pair.truth.matrix).max() < 1e-6
    assert np.abs(result.inverse.matrix - np.linalg.inv(pair.truth.matrix)).max() < 1e-6
    at_start = mutual_information(pair.fixed, pair.moving, pair.truth)
    assert result.metric_after == pytest.approx(at_start)
    engine_metric = result.provenance.starts_tried[0].metric_after
    assert engine_metric < at_start - KEEP_TOLERANCE_NATS
    assert result.provenance.kept == "start"
    warning = next(w for w in result.warnings if "kept the start" in w)
    assert warning == result.provenance.kept_reason
    numbers = re.search(r"mutual information ([\d.]+) < ([\d.]+) nats", warning)
    assert numbers, warning
    assert float(numbers.group(1)) == pytest.approx(engine_metric, abs=1e-3)
    assert float(numbers.group(2)) == pytest.approx(at_start, abs=1e-3)
    assert "the elastix wild result agrees less than its start" in warning
    # The decision survives the summary's JSON form.
    summary = RegistrationSummary.from_dict(result.summary().to_dict())
    assert summary.provenance.kept == "start"
    assert summary.provenance.kept_reason == warning


def test_c_a_folding_field_is_found():
    reference = sitk.Image([12, 12, 12], sitk.sitkUInt8)
    reference.SetSpacing((4.0, 4.0, 4.0))
    reference.SetOrigin((-22.0, -22.0, -22.0))
    x = np.arange(12) * 4.0 - 22.0
    displacement = np.zeros((12, 12, 12, 3))
    # u_x = -2 x under a Gaussian bump: d(x + u)/dx = 1 - 2 < 0 there, so space folds over itself.
    bump = np.exp(-(x / 12.0) ** 2)
    displacement[..., 0] = (-2.0 * x * bump)[None, None, :]
    field = sitk.GetImageFromArray(displacement, isVector=True)
    field.CopyInformation(reference)
    folding = Transform.from_displacement_field(field)
    assert minimum_jacobian(folding, reference) <= 0
    # Half of it is a smooth squeeze that never folds; the identity's determinant is 1 everywhere.
    gentle = sitk.GetImageFromArray(displacement * 0.25, isVector=True)
    gentle.CopyInformation(reference)
    assert minimum_jacobian(Transform.from_displacement_field(gentle), reference) > 0
    assert minimum_jacobian(Transform.identity(), reference) == pytest.approx(1.0)


def test_old_summaries_without_the_decision_still_load():
    record = {f: None for f in Provenance.__dataclass_fields__ if f not in ("kept", "kept_reason", "timings_s")}
    provenance = Provenance.from_dict(record)
    assert provenance.kept == "result"
    assert provenance.kept_reason == ""


def _folding_field(reference: sitk.Image) -> Transform:
    """A displacement field that folds space at the reference's centre (LPS mm)."""
    size = reference.GetSize()
    centre = np.asarray(reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in size]))
    x = np.arange(size[0]) * reference.GetSpacing()[0] + reference.GetOrigin()[0] - centre[0]
    displacement = np.zeros(tuple(reversed(size)) + (3,))
    displacement[..., 0] = (-2.0 * x * np.exp(-((x / 12.0) ** 2)))[None, None, :]
    field = sitk.GetImageFromArray(displacement, isVector=True)
    field.CopyInformation(reference)
    return Transform.from_displacement_field(field)


def test_a_folding_deformable_result_falls_back_to_the_linear_stage_before_it(pair, monkeypatch):
    from MultimodalRegistrationLib.engines.output import EngineOutput
    from MultimodalRegistrationLib.registration import runs as module

    def engine(request):
        # What a B-spline preset returns when its last stage folds: the affine stage was right.
        folded = pair.truth @ _folding_field(request.fixed)
        stages = [("rigid", pair.truth), ("affine", pair.truth), ("bspline", folded)]
        return EngineOutput(folded, None, "log", "fake 1", 1, stages=stages)

    monkeypatch.setattr(module, "run_engine", engine)
    start = rigid_transform(4.0, (1.0, 0.2, 0.1), (3.0, -3.0, 2.0)) @ pair.truth
    result = register(pair.fixed, pair.moving, preset="deformable", initial_transform=start, init="none")
    assert result.provenance.kept == "affine stage"
    assert "folds space" in result.provenance.kept_reason
    assert "kept its affine stage instead" in result.provenance.kept_reason
    assert result.transform.is_linear and np.allclose(result.transform.matrix, pair.truth.matrix)
    assert result.inverse is not None
    assert result.metric_after > result.metric_before
