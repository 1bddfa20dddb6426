"""A rigid result between images one of which states a wrong spacing along one axis is warned with the spacing that
fits (registration/rules/axis_spacing.py): the MNI T1 against a T2-like copy whose header gave twice its slice
spacing had ended 22.6 mm off, exit 0, no warning, and a batch called it 'ok' (a reviewer's walkthrough). A right
result is not warned, and its tissue shapes agreeing spares it the search. Transforms map fixed to moving (LPS mm)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_data
from MultimodalRegistrationLib.core.phantom import rigid_transform
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.qa.image_doubts import image_doubts
from MultimodalRegistrationLib.qa.triage import RESULT_DOUBTS
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.axis_spacing import (
    AXIS_SPACING_WARNING,
    axis_spacing_warning,
    shapes_differ,
)


def _stated(image: sitk.Image, axis: int, factor: float) -> sitk.Image:
    """The same voxels with the spacing along ``axis`` times ``factor`` (a header's wrong slice spacing), about the
    image's centre (which stays where it was)."""
    out = sitk.Image(image)
    spacing = list(image.GetSpacing())
    spacing[axis] *= factor
    out.SetSpacing(spacing)
    middle = [(n - 1) / 2 for n in image.GetSize()]
    shift = np.subtract(image.TransformContinuousIndexToPhysicalPoint(middle),
                        out.TransformContinuousIndexToPhysicalPoint(middle))  # fmt: skip
    out.SetOrigin((np.asarray(image.GetOrigin()) + shift).tolist())
    return out


def _in_true_mm(stated: sitk.Image, true: sitk.Image, transform: Transform, points: np.ndarray) -> np.ndarray:
    """Where ``transform`` (to the ``stated`` image's mm) sends ``points``, in the ``true`` image's mm."""
    moved = transform.transform_points(points)
    indices = [stated.TransformPhysicalPointToContinuousIndex([float(c) for c in point]) for point in moved]
    return np.array([true.TransformContinuousIndexToPhysicalPoint(index) for index in indices])


def test_the_truth_with_a_doubled_slice_spacing_fits_twice_as_long_and_says_which_spacing(small_pair):
    wrong = _stated(small_pair.moving, 2, 2.0)  # 2.5 mm slices stated as 5 mm
    warning = axis_spacing_warning(small_pair.fixed, wrong, small_pair.truth)
    assert warning is not None and warning.startswith(f"{AXIS_SPACING_WARNING} 2.00 times along its"), warning
    assert "(image axis 2)" in warning and "it is about 2.5 mm (the header says 5)" in warning
    # The right spacing: the tissue's shapes agree, so no search runs and nothing is said.
    assert not shapes_differ(small_pair.fixed, small_pair.moving, small_pair.truth)
    assert axis_spacing_warning(small_pair.fixed, small_pair.moving, small_pair.truth) is None
    assert AXIS_SPACING_WARNING in RESULT_DOUBTS  # a batch asks for a look


@pytest.mark.slow
def test_a_rigid_run_on_an_mr_stating_twice_its_slice_spacing_is_warned_and_qa_says_so_too():
    folder = "mni_icbm152"
    t1, grey, white = (
        sitk.BinShrink(sitk.ReadImage(str(shared_data(folder, f"mni_icbm152_{part}_tal_nlin_sym_09a_converted.nii.gz")),
                                      sitk.sitkFloat32), [2, 2, 2])
        for part in ("t1", "gm", "wm")
    )  # fmt: skip
    t2 = sitk.Mask(200.0 - 0.8 * white - 0.4 * grey, t1 > 5)  # a T2-like contrast of the same head
    truth = rigid_transform(20.0, (1.0, 2.0, 3.0), (10.0, -15.0, 8.0))
    moving = sitk.Resample(t2, t1, truth.inverse().sitk, sitk.sitkLinear, 0.0)  # moving(truth(x)) = t2(x)
    wrong = _stated(moving, 2, 2.0)
    result = register(t1, wrong, engine="elastix", preset="rigid")
    brain = np.argwhere(sitk.GetArrayFromImage(t1) > 40)[::200, ::-1]
    points = np.array([t1.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in brain])
    error = np.linalg.norm(_in_true_mm(wrong, moving, result.transform, points) - truth.transform_points(points), 1)
    assert error.mean() > 5.0  # no rigid result fits: the warning is the help
    said = [w for w in result.warnings if w.startswith(AXIS_SPACING_WARNING)]
    assert len(said) == 1 and "(image axis 2)" in said[0] and "it is about 2 mm (the header says 4)" in said[0], said
    doubts = image_doubts(t1, wrong, result.transform, None, result.metric_before, result.metric_after)
    assert any(w.startswith(AXIS_SPACING_WARNING) for w in doubts), doubts
