"""The guided start says how sure it is of its rotation: the spread of its bootstrap winners (degrees, and mm
at the fixed segments' RMS radius). A result that keeps that rotation warns beyond UNCERTAIN_MM and names the
fix (landmarks). Hard TRUS-like pairs of trus_data.py on the analytic phantom's texture (``source=None``, so the
numbers do not depend on ../shared/data): seed 103 (a start 8 degrees from the truth's rotation) and seed 100
(20 degrees)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.registration.guided.guidance import Guidance, prepare_guidance
from MultimodalRegistrationLib.registration.guided.run import start_uncertainty
from MultimodalRegistrationLib.registration.guided.start import UNCERTAIN_MM, guided_start, segment_centroid_alignment
from MultimodalRegistrationLib.registration.register import register
from trus_data import gland_guidance, trus_pair


@pytest.fixture(scope="module")
def uncertain_pair():
    return trus_pair(100, source=None)


def _record(pair) -> dict:
    prepared = gland_guidance(pair)
    return guided_start(prepared, None, pair.fixed, pair.moving).record()


def test_a_start_the_scores_agree_on_does_not_warn():
    # pair 115: 3.2 mm on pair 103 before the centroids came from the parts both images see (4.1 mm since)
    record = _record(trus_pair(115, source=None))
    noise = record["noise"]
    assert 6.0 < noise["rotation_spread_deg"] < 15.0  # measured 11.1 degrees
    assert 2.0 < noise["rotation_spread_mm"] <= UNCERTAIN_MM  # measured 3.0 mm
    assert start_uncertainty(record, "start", False) is None


def test_an_uncertain_start_warns_only_when_the_result_keeps_its_rotation(uncertain_pair):
    record = _record(uncertain_pair)
    noise = record["noise"]
    assert noise["rotation_spread_deg"] > 15.0  # measured 20.8 degrees; this start is 20 degrees off
    assert noise["rotation_spread_mm"] > UNCERTAIN_MM + 1.0  # measured 6.0 mm
    warning = start_uncertainty(record, "start", False)
    assert f"uncertain by about {noise['rotation_spread_deg']:.0f} degrees" in warning
    assert f"{noise['rotation_spread_mm']:.1f} mm" in warning and "landmarks" in warning
    # A deformable stage that ran from the start (its rigid stage refused or failed) keeps the start's rotation too.
    assert start_uncertainty(record, "result", True) == warning
    # An engine result that was kept, rigid or as a deformable's rigid stage, has a rotation of its own; so does a
    # deformable stage that ran from the centroid alignment its rigid stage fell back to.
    assert start_uncertainty(record, "result", False) is None
    assert start_uncertainty(record, "segment centroids", False) is None
    # The prior was the user's initial transform (a landmark prealignment, say) and the start kept it: the warning
    # says whose rotation the result keeps, not to add landmarks; a turn away from it warns as from the headers.
    kept_initial = start_uncertainty(record | {"chosen": "segment centroids"}, "start", False, initial_given=True)
    assert "keeps the initial transform's rotation" in kept_initial and "add three" not in kept_initial.lower()
    assert f"{noise['rotation_spread_mm']:.1f} mm" in kept_initial
    turned = record | {"chosen": "segment surfaces, rotated 20 deg"}
    assert start_uncertainty(turned, "start", False, initial_given=True) == start_uncertainty(turned, "start", False)
    # Landmarks guided too and their fit lost: not "add three or more landmarks" to a user who gave five.
    lost = record | {"candidates": record["candidates"] + [{"name": "landmarks", "reason": "not chosen"}]}
    said = start_uncertainty(lost, "start", False)
    assert "landmarks' own fit lost to it" in said and "add three" not in said.lower()
    # Landmarks or a principal-axes turn chose: the lattice's spread does not apply.
    for name in ("landmarks", "segment axes +1-1"):
        assert start_uncertainty(record | {"chosen": name}, "start", False) is None


def test_a_rigid_run_that_keeps_an_uncertain_start_says_so(uncertain_pair):
    pair = uncertain_pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(pair.fixed, pair.moving, engine="elastix", preset="rigid",
                          guidance=Guidance(pair.fixed_labels, pair.moving_labels), threads=1)  # fmt: skip
    assert result.provenance.kept == "start"
    assert sum("the guided start's rotation is uncertain" in w for w in result.warnings) == 1


def test_an_ultrasound_that_shows_no_anatomy_cannot_turn_the_start():
    """Only the intensities may turn the start away from the headers' rotation (the drawn glands' shapes cannot
    tell): with the fan's content replaced by speckle that shows nothing, the same pair keeps the centroid
    alignment and warns that its rotation is uncertain."""
    pair = trus_pair(104, source=None)
    guidance = Guidance(pair.fixed_labels, pair.moving_labels)
    imaged = guided_start(prepare_guidance(pair.fixed, pair.moving, guidance, "elastix"), None, pair.fixed, pair.moving)
    assert imaged.name.startswith("segment surfaces, rotated")  # measured 16 degrees, 3.6 mm (centroids 5.4 mm)
    assert np.mean(pair.tre(imaged.transform)) < 4.5

    fan = sitk.GetArrayFromImage(pair.fixed_fov) > 0
    speckle = np.clip(np.random.default_rng(7).rayleigh(40.0, fan.shape), 1, 255) * fan
    blind = sitk.GetImageFromArray(speckle.astype(np.uint8))
    blind.CopyInformation(pair.fixed)
    prepared = prepare_guidance(blind, pair.moving, guidance, "elastix")
    start = guided_start(prepared, None, blind, pair.moving)
    assert start.name == "segment centroids", start.reason  # measured: the proposal better by only 0.8 SD
    np.testing.assert_allclose(start.transform.matrix, segment_centroid_alignment(prepared).matrix, atol=1e-9)
    assert start.noise["intensities"] and start.noise["intensity_region_mm"] == 0.0  # read inside the gland
    assert start.noise["rotation_spread_mm"] > UNCERTAIN_MM  # measured 6.1 mm
    assert "uncertain" in start_uncertainty(start.record(), "start", False)
