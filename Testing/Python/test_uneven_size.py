"""A result of one scale (similarity) for tissue that shrank more along one axis is warned: a helper's cleared-tissue
sweep had similarity end 6.8 and 13 mm off with exit 0 for shrinks of 0.7, 0.7, 0.55 and 0.75, 0.75, 0.5."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.rules.uneven_size import UNEVEN_WARNING, is_one_scale, uneven_size_warning


def _shrunk_along_z(image: sitk.Image, factor: float) -> sitk.Image:
    """The same voxels with the third spacing times ``factor``: the anatomy shrinks along z about the origin."""
    out = sitk.Image(image)
    spacing = list(image.GetSpacing())
    spacing[2] *= factor
    out.SetSpacing(spacing)
    return out


def _scaled_about_origin(image: sitk.Image, factors) -> np.ndarray:
    """4x4 (moving space, LPS mm): scale by ``factors`` along the image's axes about its origin."""
    matrix = np.diag([*factors, 1.0])
    matrix[:3, 3] = (1 - np.asarray(factors)) * np.asarray(image.GetOrigin())
    return matrix


def test_one_scale_for_a_shrink_along_z_is_warned_naming_the_axis(small_pair):
    moving = _shrunk_along_z(small_pair.moving, 0.75)
    # A single scale: the three scales' geometric mean, 0.91.
    one_scale = 0.75 ** (1 / 3)
    result = Transform.from_matrix(_scaled_about_origin(moving, [one_scale] * 3) @ small_pair.truth.matrix)
    assert is_one_scale(result)
    warning = uneven_size_warning(small_pair.fixed, moving, result)
    assert warning is not None and warning.startswith(
        f"{UNEVEN_WARNING} 0.80 times along its superior-inferior axis (image axis 2)"
    ), warning
    assert "use --preset affine" in warning


def test_the_right_one_scale_result_and_results_of_several_scales_are_not_warned(small_pair):
    shrunk = Transform.from_matrix(_scaled_about_origin(small_pair.moving, [0.7] * 3) @ small_pair.truth.matrix)
    moving = sitk.Image(small_pair.moving)
    moving.SetSpacing([s * 0.7 for s in small_pair.moving.GetSpacing()])
    assert uneven_size_warning(small_pair.fixed, moving, shrunk) is None
    assert uneven_size_warning(small_pair.fixed, small_pair.moving, small_pair.truth) is None
    uneven = Transform.from_matrix(_scaled_about_origin(small_pair.moving, [1, 1, 0.75]) @ small_pair.truth.matrix)
    assert not is_one_scale(uneven)  # an affine result: already free to fit it
    assert uneven_size_warning(small_pair.fixed, _shrunk_along_z(small_pair.moving, 0.75), uneven) is None


def test_qa_of_a_one_scale_transform_for_uneven_tissue_warns_too(small_pair):
    """QA's stability restarts agree on a wrong one-scale fit ("stable", 0.8 mm, on a result 6.8 mm off: a helper's
    sweep); its image checks now ask what the registration asks."""
    from MultimodalRegistrationLib.qa.assess import assess_registration

    moving = _shrunk_along_z(small_pair.moving, 0.75)
    result = Transform.from_matrix(_scaled_about_origin(moving, [0.75 ** (1 / 3)] * 3) @ small_pair.truth.matrix)
    report = assess_registration(small_pair.fixed, moving, result)
    assert any(w.startswith(f"{UNEVEN_WARNING} 0.80 times") for w in report.warnings), report.warnings
