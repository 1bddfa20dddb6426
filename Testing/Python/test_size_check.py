"""A rigid result between images whose sizes differ (a header's spacing a tenth off) is warned: it had ended 7-23
mm off without a word (a helper's sweep of wrong headers). A right result is not."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import sample_grid_points
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.size_check import SIZE_WARNING, preferred_size, size_warning


def _spacing_scaled(image: sitk.Image, factor: float) -> sitk.Image:
    """The same voxels with every spacing times ``factor`` (a header's wrong spacing): the anatomy shrinks about
    the origin."""
    out = sitk.Image(image)
    out.SetSpacing([s * factor for s in image.GetSpacing()])
    return out


@pytest.mark.parametrize("factor", [0.88, 1.15])
def test_the_truth_at_a_wrong_spacing_prefers_that_size(small_pair, factor):
    probe = preferred_size(small_pair.fixed, _spacing_scaled(small_pair.moving, factor), small_pair.truth)
    assert abs(probe.size - factor) < 0.02, probe
    assert probe.after > probe.before + 0.1
    warning = size_warning(small_pair.fixed, _spacing_scaled(small_pair.moving, factor), small_pair.truth, "rigid")
    assert warning.startswith(f"{SIZE_WARNING} {factor:.2f} times the size the rigid preset keeps"), warning


def test_the_truth_at_the_right_spacing_is_not_warned(small_pair):
    probe = preferred_size(small_pair.fixed, small_pair.moving, small_pair.truth)
    assert abs(probe.size - 1) < 0.02 and probe.after - probe.before < 0.05, probe
    assert size_warning(small_pair.fixed, small_pair.moving, small_pair.truth, "rigid") is None


def test_a_rigid_run_at_a_wrong_spacing_is_warned_and_similarity_is_not_checked(small_pair):
    moving = _spacing_scaled(small_pair.moving, 0.88)
    rigid = register(small_pair.fixed, moving, engine="elastix", preset="rigid")
    assert any(w.startswith(f"{SIZE_WARNING} 0.8") for w in rigid.warnings), rigid.warnings
    assert rigid.provenance.timings_s["size_check_s"] > 0
    right = register(small_pair.fixed, small_pair.moving, engine="elastix", preset="rigid")
    assert not any(w.startswith(SIZE_WARNING) for w in right.warnings), right.warnings
    similar = register(small_pair.fixed, moving, engine="elastix", preset="similarity")
    assert not any(w.startswith(SIZE_WARNING) for w in similar.warnings)
    shrink = np.diag([0.88, 0.88, 0.88, 1.0])  # about the moving image's origin, as its spacing shrank
    shrink[:3, 3] = 0.12 * np.asarray(small_pair.moving.GetOrigin())
    scaled = shrink @ small_pair.truth.matrix
    error = mean_error_mm(similar.transform, type(small_pair.truth).from_matrix(scaled),
                          sample_grid_points(small_pair.fixed, 6))  # fmt: skip
    assert error < 1.0, error


def test_qa_of_images_alone_says_when_they_do_not_confirm_the_transform(small_pair):
    """QA given only the images had reported the mutual information rising, for results 20-50 mm off too (a
    helper's sweep of wrong headers: no QA warning on any): it now runs the registration's two image checks."""
    from MultimodalRegistrationLib.core.transforms import Transform
    from MultimodalRegistrationLib.qa.assess import assess_registration
    from MultimodalRegistrationLib.registration.rules.weak_result import WEAK_RESULT

    right = assess_registration(small_pair.fixed, small_pair.moving, small_pair.truth)
    assert not any(w.startswith((WEAK_RESULT, SIZE_WARNING)) for w in right.warnings), right.warnings
    assert right.timings["image_doubts_s"] > 0
    scaled = assess_registration(small_pair.fixed, _spacing_scaled(small_pair.moving, 0.88), small_pair.truth)
    assert any(w.startswith(f"{SIZE_WARNING} 0.88 times this transform's size") for w in scaled.warnings)
    # The same images 600 mm apart before the transform (headers in two frames), the transform placing them: the
    # checks had been skipped for want of an MI before (a reviewer).
    apart = _spacing_scaled(small_pair.moving, 0.88)
    apart.SetOrigin(tuple(np.add(apart.GetOrigin(), (0.0, 0.0, 600.0))))
    move = np.eye(4)
    move[2, 3] = 600.0
    placed = assess_registration(small_pair.fixed, apart, Transform.from_matrix(move @ small_pair.truth.matrix))
    assert placed.images_before.mutual_information is None
    assert any(w.startswith(f"{SIZE_WARNING} 0.88 times this transform's size") for w in placed.warnings)
    shift = np.eye(4)
    shift[:3, 3] = (0.0, 35.0, 0.0)
    off = assess_registration(small_pair.fixed, small_pair.moving, Transform.from_matrix(small_pair.truth.matrix @ shift))
    assert any(w.startswith(WEAK_RESULT) for w in off.warnings), off.warnings


def test_images_a_hundred_times_apart_in_size_are_refused_in_their_own_mm(small_pair):
    """Refused before any engine, quoting the images' own sizes: under 40 mm they are registered at a working scale,
    and the refusal had quoted that scale's (202 mm for a 12.6 mm image: a reviewer)."""
    from MultimodalRegistrationLib.core.errors import InputError

    fixed = _spacing_scaled(small_pair.fixed, 0.05)  # about 12 mm across: small anatomy
    tiny = _spacing_scaled(small_pair.moving, 0.0001)
    tiny.SetOrigin(fixed.TransformContinuousIndexToPhysicalPoint([n / 2 for n in fixed.GetSize()]))
    side = float(max(n * s for n, s in zip(fixed.GetSize(), fixed.GetSpacing())))
    with pytest.raises(InputError, match=f"the fixed image {side:.3g} mm: .* times larger"):
        register(fixed, tiny, engine="elastix", preset="rigid")
