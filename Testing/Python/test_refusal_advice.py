"""What a guided run says when it returns something other than the engine's result: a rigid run that keeps the
guided start (the usual outcome on MR -> TRUS) reports it in its one-line description, not as a warning on every
run, and advice never asks for what the run was already given."""

from __future__ import annotations

import warnings

import pytest
from MultimodalRegistrationLib.registration.describe import describe_result
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.outcome import refusal_hint
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.runs import checked_run
from MultimodalRegistrationLib.registration.settings import RegistrationSettings
from trus_data import trus_pair


@pytest.fixture(scope="module")
def pair():
    return trus_pair(100)


def _hint(pair, preset: str, landmarks: bool) -> str:
    points = {"fixed_points_lps": pair.landmarks_fixed, "moving_points_lps": pair.landmarks_moving} if landmarks else {}
    guidance = Guidance(pair.fixed_labels, pair.moving_labels, **points)
    run = checked_run(pair.fixed, pair.moving, RegistrationSettings(preset=preset), guidance, lambda *a, **k: None, None)
    return refusal_hint(run)


def test_advice_fits_what_the_run_was_given(pair):
    assert _hint(pair, "rigid", landmarks=False) == "try another start, a mask or landmarks"
    assert _hint(pair, "rigid", landmarks=True) == "try another start or a mask"
    deformable = _hint(pair, "deformable", landmarks=True)
    assert "landmarks" not in deformable and "Registration QA" in deformable
    assert "landmarks on both images" in _hint(pair, "deformable", landmarks=False)


@pytest.mark.slow
def test_a_guided_rigid_run_that_keeps_its_start_says_so_without_a_warning(pair):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(pair.fixed, pair.moving, preset="rigid", guidance=Guidance(pair.fixed_labels, pair.moving_labels))
    provenance = result.provenance
    assert provenance.kept == "start"
    assert "kept the start" in provenance.kept_reason  # why is still recorded
    assert not any("kept the start" in warning for warning in result.warnings), result.warnings
    assert describe_result(result.summary()).endswith("; returned the start, not the engine's result")
    # The guidance's "result" scores are those of what was returned (the start); the engine's are kept beside.
    guidance = provenance.guidance
    assert guidance.score_result.mean_dice == pytest.approx(guidance.score_start.mean_dice, abs=1e-9)
    assert guidance.score_engine is not None and guidance.score_engine.mean_dice != guidance.score_result.mean_dice
    assert "score_engine" in result.summary().to_dict()["provenance"]["guidance"]


def test_engine_errors_lose_itks_class_name_and_address():
    from MultimodalRegistrationLib.registration.runs import error_reason

    linux = "Description: ITK ERROR: AdvancedMattesMutualInformationMetric(0x5623256f4620): Too many samples: 8 / 4096"
    windows = "Description: itk::ERROR: ElastixFilter(000001D2F3A4B5C0): Too many samples: 8 / 4096"
    assert error_reason(RuntimeError(f"elastix failed\n{linux}")) == "Too many samples: 8 / 4096"
    assert error_reason(RuntimeError(f"elastix failed\n{windows}")) == "Too many samples: 8 / 4096"
