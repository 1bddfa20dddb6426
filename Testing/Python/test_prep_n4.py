"""N4 bias correction on thin, small and mouse-sized images: the shrink follows the image's size."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.phantom import make_phantom_pair
from MultimodalRegistrationLib.prep.bias import correct_bias, shrink_factors_for
from test_prep import phantom_truth


@pytest.fixture(scope="module")
def phantom_mr():
    """The phantom MR (77 x 84 x 84 at 3 mm, with its own bias field) and its white-matter voxels."""
    pair = make_phantom_pair(ct_spacing=(5.0, 5.0, 5.0), mr_spacing=(3.0, 3.0, 3.0), seed=3)
    return pair.moving, phantom_truth(pair.moving, pair.truth.inverse(), "white") > 0.95


def white_cv(image: sitk.Image, white: np.ndarray) -> float:
    values = sitk.GetArrayViewFromImage(image)[white]
    return float(values.std() / values.mean())


def scaled(image: sitk.Image, factor: float) -> sitk.Image:
    """The same voxels with spacing and origin times ``factor``."""
    result = sitk.Image(image)
    result.SetSpacing([s * factor for s in image.GetSpacing()])
    result.SetOrigin([o * factor for o in image.GetOrigin()])
    return result


def test_shrink_factors_follow_the_image_size():
    def image(size, spacing):
        result = sitk.Image(list(size), sitk.sitkUInt8)
        result.SetSpacing(spacing)
        return result

    assert shrink_factors_for(image((233, 197, 189), (1.0, 1.0, 1.0))) == [6, 6, 6]  # MNI: 6 mm voxels
    assert shrink_factors_for(image((512, 512, 8), (1.0, 1.0, 1.0))) == [6, 6, 1]  # a thin slab keeps its slices
    assert shrink_factors_for(image((233, 197, 189), (0.1, 0.1, 0.1))) == [6, 6, 6]  # mouse-sized: not [60, 60, 60]
    assert shrink_factors_for(image((100, 100, 100), (1.0, 1.0, 1.0)), requested=400) == [4, 4, 4]


def test_n4_runs_on_a_thin_slab_and_flattens_it(phantom_mr):
    mr, white = phantom_mr
    slab = sitk.RegionOfInterest(mr, [77, 84, 8], [0, 0, 38])
    slab.SetSpacing((1.0, 1.0, 1.0))  # shrunk to 6 mm it kept one slice, and ITK refused the spacing
    slab_white = white[38:46]
    result = correct_bias(slab)
    assert result.shrink_factors == [2, 2, 1]
    assert white_cv(result.corrected, slab_white) < 0.75 * white_cv(slab, slab_white)


def test_n4_refuses_an_image_too_thin_with_the_fix(phantom_mr):
    slab = sitk.RegionOfInterest(phantom_mr[0], [77, 84, 3], [0, 0, 38])
    with pytest.raises(InputError, match="3 voxels along axis 2.*leave N4 off"):
        correct_bias(slab, role="moving image")


def test_an_n4_failure_is_bad_input_with_the_fix(phantom_mr):
    with pytest.raises(InputError, match="N4 bias correction failed on the fixed image.*leave N4 off"):
        correct_bias(phantom_mr[0], iterations=0, role="fixed image")  # ITK: "Input Primary is required"


@pytest.mark.slow
def test_n4_on_a_mouse_sized_image_corrects_as_on_a_human_sized_one(phantom_mr):
    mr, white = phantom_mr
    human = correct_bias(mr)
    mouse = correct_bias(scaled(mr, 0.1))  # 25 mm wide: the 6 mm shrink left a 4 x 4 x 4 grid, CV 0.029 -> 0.043
    assert mouse.shrink_factors == human.shrink_factors == [2, 2, 2]
    assert white_cv(mr, white) > 0.028
    assert white_cv(human.corrected, white) < 0.016
    assert white_cv(mouse.corrected, white) < 0.016
