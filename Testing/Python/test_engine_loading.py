"""Engine imports: a preload runs in the background and require() waits for it; unknown engines are refused."""

import threading

import pytest
from MultimodalRegistrationLib.engines import loading


def test_an_unknown_engine_is_not_preloaded_and_require_names_the_choices():
    before = {thread.name for thread in threading.enumerate()}
    loading.preload(["nonsense"])
    assert {thread.name for thread in threading.enumerate()} == before, "no import thread for an unknown engine"
    with pytest.raises(ValueError, match="unknown engine 'nonsense': choose elastix or ants"):
        loading.require("nonsense")
    assert "nonsense" not in loading.loaded()
