"""Intensities beyond what elastix computes with are divided by a power of ten for the registration.

A helper's sweep: the SCT T1w multiplied by 1e10 (or a NIfTI with scl_slope 1e30) stopped elastix while it estimated
its steps ("Index: [-9223372036854775808, 8]", exit 1, "try the rigid preset first"); ANTs ran it. Transforms map
fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SMALL
from MultimodalRegistrationLib.core.intensity_scale import MAX_MAGNITUDE, scaled_for_engines
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm
from MultimodalRegistrationLib.registration.register import register


@pytest.fixture(scope="module")
def pair():
    return make_phantom_pair(**SMALL)


def test_only_images_beyond_the_limit_are_scaled_and_by_a_power_of_ten(pair):
    for image in (pair.fixed, pair.moving):
        assert scaled_for_engines(image, "image") == (image, None)
    huge = sitk.Cast(pair.moving, sitk.sitkFloat64) * 1e10
    scaled, note = scaled_for_engines(huge, "moving image")
    top = float(sitk.GetArrayViewFromImage(pair.moving).max())
    ratio = float(sitk.GetArrayViewFromImage(scaled).max()) / top
    power = np.log10(1e10 / ratio)  # the divisor's
    assert 1e3 < ratio * top <= MAX_MAGNITUDE and abs(power - round(power)) < 1e-6
    assert note.startswith("the moving image's values reach") and "divided by 1e+" in note


def test_an_mr_stored_ten_billion_times_too_bright_registers_with_elastix(pair):
    huge = sitk.Cast(sitk.Cast(pair.moving, sitk.sitkFloat64) * 1e10, sitk.sitkFloat32)
    result = register(pair.fixed, huge, engine="elastix", preset="rigid", threads=1)
    assert mean_error_mm(result.transform, pair.truth, pair.head_points) < 1.0
    assert any("beyond what elastix computes with" in warning for warning in result.warnings)
