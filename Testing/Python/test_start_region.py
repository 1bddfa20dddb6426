"""Where the guided start reads the intensities: inside the fixed segments, or their 10 mm ring when the inside is
too small for mutual information (issue 22). Hard TRUS-like pairs of Testing/Python/trus_data.py."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_data
from MultimodalRegistrationLib.core.views import fields_of_view
from MultimodalRegistrationLib.registration.guided import start_score
from MultimodalRegistrationLib.registration.guided.start import guided_start, segment_centroid_alignment
from MultimodalRegistrationLib.registration.guided.start_score import StartScorer
from trus_data import gland_guidance, trus_pair


def distance_to(mask: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Signed distance (mm, negative inside) from ``mask`` at the voxels nearest ``points`` (LPS mm)."""
    distance = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    array = sitk.GetArrayViewFromImage(distance)
    index = [mask.TransformPhysicalPointToIndex(tuple(map(float, point))) for point in points]
    return np.array([array[k, j, i] for i, j, k in index])


def test_a_turn_the_wider_region_cannot_confirm_stands_on_the_inside(monkeypatch):
    """A TRUS that echoes none of the MR's texture around the gland (analytic phantom texture, pair 111): 25 mm of
    that texture cannot confirm the start's 24 degree turn (-0.5 SD), and the referee kept the centroids (7.25 mm
    mean TRE). The intensities inside the gland confirm it (+1.2 SD) and the surfaces are for it (+3.7): the start
    turns and lands at 3.98 mm."""
    from MultimodalRegistrationLib.registration.guided import start as start_module

    pair = trus_pair(111, source=None, echo_mr_share=(0.0, 0.0))
    centroids = pair.mean_tre(segment_centroid_alignment(gland_guidance(pair)).matrix)
    start = guided_start(gland_guidance(pair), None, pair.fixed, pair.moving)
    assert "confirmed inside the segments" in start.reason
    assert pair.mean_tre(start.transform.matrix) < centroids - 2.5, start.reason  # measured 3.98 against 7.25 mm

    monkeypatch.setattr(start_module, "_inside_confirms", lambda *_: False)  # the referee alone, as before
    refereed = guided_start(gland_guidance(pair), None, pair.fixed, pair.moving)
    assert refereed.name == "segment centroids" and "do not confirm it" in refereed.reason, refereed.reason


def test_a_turn_chosen_on_the_ring_the_mr_does_not_show_is_not_taken(monkeypatch):
    """make bench's pair 109 (the MNI texture) whose TRUS echoes none of the MR's texture: on the 0-10 mm ring around
    the gland the intensities preferred a 20 degree wrong turn (mean TRE 11.6 against 7.6 mm at the centroids);
    inside it they do not. With the analytic phantom's texture neither region turns this pair."""
    shared_data("mni_icbm152", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    pair = trus_pair(109, echo_mr_share=(0.0, 0.0))
    prepared = gland_guidance(pair)
    centroids = pair.mean_tre(segment_centroid_alignment(prepared).matrix)
    start = guided_start(prepared, None, pair.fixed, pair.moving)
    assert pair.mean_tre(start.transform.matrix) < centroids + 1.0, start.reason  # measured 7.6 mm, the prior

    monkeypatch.setattr(start_score, "REGION_MM", start_score.SMALL_SEGMENTS_REGION_MM)
    ring = guided_start(gland_guidance(pair), None, pair.fixed, pair.moving)
    assert pair.mean_tre(ring.transform.matrix) > centroids + 2.0, ring.reason  # measured 11.6 mm


@pytest.fixture(scope="module")
def pair():
    return trus_pair(100)


def test_the_intensities_are_sampled_inside_the_gland(pair):
    prepared = gland_guidance(pair)
    scorer = StartScorer(prepared, pair.fixed, pair.moving, 1)
    inside = distance_to(prepared.fixed_masks[0], scorer.intensity.points)
    assert len(inside) > 5000 and inside.max() <= 0.0  # every sample in the gland (its boundary voxels included)
    assert scorer.intensity_region_mm == 0.0 and scorer.intensity_where == "inside the segments"


def cube_segment(prepared, corner: list[int], size: int = 5) -> sitk.Image:
    """A ``size``-voxel cube segment on the fixed gland's grid, from voxel index ``corner`` (i, j, k)."""
    gland = prepared.fixed_masks[0]
    cube = sitk.Image(gland.GetSize(), sitk.sitkUInt8)
    cube.CopyInformation(gland)
    cube[corner[0] : corner[0] + size, corner[1] : corner[1] + size, corner[2] : corner[2] + size] = 1
    return cube


def test_a_segment_too_small_inside_is_read_with_its_ring(pair):
    """A 125-voxel segment: enough for a 32-bin mutual information to be computed (> 32 samples) but not to be
    trusted (< 32 x 32): its 10 mm ring is sampled instead."""
    prepared = gland_guidance(pair)
    centre = [int(v) - 2 for v in np.argwhere(sitk.GetArrayViewFromImage(prepared.fixed_masks[0])).mean(axis=0)[::-1]]
    prepared.fixed_masks[0] = cube = cube_segment(prepared, centre)
    scorer = StartScorer(prepared, pair.fixed, pair.moving, 1)
    assert scorer.intensity_region_mm == start_score.SMALL_SEGMENTS_REGION_MM, scorer.intensity_where
    distance = distance_to(cube, scorer.intensity.points)
    assert distance.max() > 8.0 and distance.max() <= start_score.SMALL_SEGMENTS_REGION_MM + 1e-6


def test_a_segment_outside_the_field_of_view_leaves_the_intensities_out(pair):
    """A segment in a corner of the TRUS box, outside its fan: no sample inside it or its ring (an IndexError
    before the count was checked); the start is scored by the surfaces alone."""
    prepared = gland_guidance(pair)
    fan, _ = fields_of_view(pair.fixed, prepared.fixed_masks[0])  # where the TRUS has data, as the scorer sees it
    assert not sitk.GetArrayViewFromImage(fan)[:12, -12:, :12].any()  # this corner and 18 mm around it
    prepared.fixed_masks[0] = cube_segment(prepared, [0, fan.GetSize()[1] - 5, 0])
    scorer = StartScorer(prepared, pair.fixed, pair.moving, 1)
    assert scorer.intensity is None and scorer.intensity_region_mm is None and scorer.intensity_where == ""
