"""The guided start says how sure it is of its rotation: the spread of its bootstrap winners (degrees, and mm
at the fixed segments' RMS radius), and a warning beyond UNCERTAIN_MM that names the fix (landmarks).
Hard TRUS-like pairs of trus_data.py: seed 104 (a start 6 degrees from the truth's best rigid fit) and seed 102
(21 degrees)."""

from __future__ import annotations

import pytest
from MultimodalRegistrationLib.core.choices import DEFAULT_SEED
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.guided.guidance import Guidance, prepare_guidance
from MultimodalRegistrationLib.registration.guided.run import guided_starts
from MultimodalRegistrationLib.registration.guided.start import UNCERTAIN_MM, GuidedStart, uncertainty_warning
from trus_data import trus_pair


def _starts(seed: int):
    pair = trus_pair(seed)
    prepared = prepare_guidance(pair.fixed, pair.moving, Guidance(pair.fixed_labels, pair.moving_labels), "elastix")
    return guided_starts(pair.fixed, pair.moving, prepared, None, DEFAULT_SEED)


def test_a_start_the_scores_agree_on_does_not_warn():
    starts, record = _starts(104)
    noise = record["noise"]
    assert 6.0 < noise["rotation_spread_deg"] < 15.0  # measured 10.6 degrees
    assert 2.0 < noise["rotation_spread_mm"] <= UNCERTAIN_MM  # measured 3.6 mm at a 19 mm radius
    assert starts.warnings == []


def test_an_uncertain_start_warns_and_names_the_fix():
    starts, record = _starts(102)
    noise = record["noise"]
    assert noise["rotation_spread_deg"] > 13.0  # measured 16.3 degrees; this start is 21 degrees off
    assert noise["rotation_spread_mm"] > UNCERTAIN_MM  # measured 4.8 mm
    (warning,) = starts.warnings
    assert f"uncertain by about {noise['rotation_spread_deg']:.0f} degrees" in warning
    assert f"{noise['rotation_spread_mm']:.1f} mm" in warning and "landmarks" in warning


@pytest.mark.parametrize("name", ["landmarks", "segment axes +1-1"])
def test_landmarks_or_an_axes_turn_are_not_judged_by_the_lattice_spread(name):
    noise = {"rotation_spread_deg": 30.0, "rotation_spread_mm": 9.0}
    assert uncertainty_warning(GuidedStart(name, Transform.identity(), [], noise=noise)) is None
    lattice = GuidedStart("segment surfaces, rotated 20 deg", Transform.identity(), [], noise=noise)
    assert "30 degrees" in uncertainty_warning(lattice)
