"""A start the search added itself (the headers' pose) that the engine fails from, beside one that holds: the
provenance keeps the failure, the warnings do not ("the engine failed from the header start: Too many samples
..." among a good result's warnings read as a failure; a helper's sweep)."""

from __future__ import annotations

import numpy as np
from MultimodalRegistrationLib.core.errors import EngineError
from MultimodalRegistrationLib.core.images import sample_grid_points
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.registration import runs
from MultimodalRegistrationLib.registration.register import register

LOST = "elastix failed: Too many samples map outside moving image buffer: 613 / 4096"


def test_a_failed_header_start_is_recorded_not_warned(small_pair, monkeypatch):
    real = runs.run_engine

    def run_engine(request):
        if np.allclose(request.initial.matrix, np.eye(4)):  # the phantom's headers' pose: the identity
            raise EngineError(LOST, hint="", log="")
        return real(request)

    monkeypatch.setattr(runs, "run_engine", run_engine)
    result = register(small_pair.fixed, small_pair.moving, engine="elastix", preset="rigid")
    failed = {run.start: run.error for run in result.provenance.starts_tried if run.error}
    assert failed == {"header": LOST}
    assert not any("engine failed from" in warning for warning in result.warnings), result.warnings
    assert mean_error_mm(result.transform, small_pair.truth, sample_grid_points(small_pair.fixed, 6)) < 0.5
