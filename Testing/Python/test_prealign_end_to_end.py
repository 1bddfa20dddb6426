"""Why landmark prealignment exists: a pose that intensity registration alone cannot recover (a 90 degree
turn plus ~100 mm) is recovered once four roughly placed landmarks give the engine its start."""

import numpy as np
import pytest
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm, rigid_transform
from MultimodalRegistrationLib.core.transforms import lps_ras_points
from MultimodalRegistrationLib.landmarks.fit import fit_landmarks
from MultimodalRegistrationLib.registration.register import register

TRUTH = rigid_transform(90.0, (1.0, 0.0, 0.0), (60.0, -50.0, 60.0))  # fixed -> moving, LPS mm; 98 mm shift
# Anatomical landmarks in the fixed (CT) image, from phantom.tissue_fractions' geometry (LPS mm): the
# centres of both eyes, of the lesion and of the spinal canal. Spread in 3D and not symmetric.
LANDMARKS = {
    "right eye": (-31.0, -72.0, -22.0),
    "left eye": (31.0, -72.0, -22.0),
    "lesion": (28.0, -30.0, 22.0),
    "spinal canal": (0.0, 30.0, -90.0),
}
PLACEMENT_NOISE_MM = 2.0


@pytest.fixture(scope="module")
def turned_pair():
    return make_phantom_pair(truth=TRUTH, ct_spacing=(2.0, 2.0, 3.0), mr_spacing=(2.5, 2.5, 2.5))


def placed_landmarks():
    """(fixed RAS, moving RAS, labels): the moving ones where the truth sends them, placed with 2 mm noise."""
    fixed_lps = np.array(list(LANDMARKS.values()))
    noise = np.random.default_rng(7).normal(0.0, PLACEMENT_NOISE_MM, fixed_lps.shape)
    moving_lps = TRUTH.transform_points(fixed_lps) + noise
    return lps_ras_points(fixed_lps), lps_ras_points(moving_lps), list(LANDMARKS)


def test_intensity_registration_alone_fails_at_ninety_degrees(turned_pair):
    result = register(turned_pair.fixed, turned_pair.moving, engine="elastix", preset="rigid", init="geometry")
    assert mean_error_mm(result.transform, TRUTH, turned_pair.head_points) > 5.0


def test_four_landmarks_then_registration_recover_the_pose(turned_pair):
    fixed_ras, moving_ras, labels = placed_landmarks()
    fit = fit_landmarks(fixed_ras, moving_ras, "rigid", labels, labels)
    assert fit.warnings == []  # well spread, no near-symmetry, nothing swapped
    landmark_error = mean_error_mm(fit.transform, TRUTH, turned_pair.head_points)
    assert 0.5 < landmark_error < 5.0  # close enough to start from, not yet accurate
    assert fit.loo_rms_mm > fit.fre_rms_mm  # FRE flatters; leave-one-out is the honest estimate
    result = register(turned_pair.fixed, turned_pair.moving, engine="elastix", preset="rigid",
                      initial_transform=fit.transform)  # fmt: skip
    assert mean_error_mm(result.transform, TRUTH, turned_pair.head_points) < 1.0
