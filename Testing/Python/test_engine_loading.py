"""Engine imports: one place imports each engine, once; an unknown engine is refused with the choices."""

import pytest
from MultimodalRegistrationLib.engines import loading


def test_an_unknown_engine_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown engine 'nonsense': choose one of elastix, ants"):
        loading.load("nonsense")
    assert "nonsense" not in loading.loaded()
