"""A similarity result on tissue that shrank more along its stack axis is warned by the affine run from it, and a
right one on evenly shrunk tissue is not: a helper's cleared stacks with bright vessels had ended 10 mm off under
similarity without a word (the coarse stretch search of rules/uneven_size did not confirm it). Transforms map
fixed to moving points (LPS mm)."""

from __future__ import annotations

import micro_data as md
import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.registration.affine_opinion import _stretch
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.uneven_size import UNEVEN_WARNING

needs_data = pytest.mark.skipif(not md.available(), reason="MNI ICBM152 maps not in ../shared/data")


def test_the_stretch_is_named_along_the_moving_image_axis():
    """A fixed -> moving 3x3 that shrinks 0.7, 0.7, 0.5 along a turned moving grid's axes: axis 2, 0.5 / 0.7."""
    turn = np.asarray(sitk.Euler3DTransform((0, 0, 0), 0.4, -0.3, 0.2).GetMatrix()).reshape(3, 3)
    matrix = turn @ np.diag([0.7, 0.7, 0.5]) @ np.eye(3)  # moving axes: the columns of ``turn``
    axis, factor = _stretch(matrix, turn)
    assert axis == 2 and factor == pytest.approx(0.5 / 0.7, rel=1e-6)


@pytest.fixture(scope="module")
def head():
    return md.head_mri(1.5)


def _stack(head, shrink_z: float):
    """A cleared stack shrunk 0.65 (seed 13), its stored slice step times ``shrink_z``: the tissue shrinks that much
    more along the stack axis; and the truth's mean error function over the brain points it covers."""
    case = md.light_sheet(0.65, 25.0, seed=13, brain_points=head.brain_points)
    moving = sitk.Image(case.moving)
    spacing = list(moving.GetSpacing())
    spacing[2] *= shrink_z
    moving.SetSpacing(spacing)
    origin = np.asarray(moving.GetOrigin())
    along_z = np.diag([1.0, 1.0, shrink_z, 1.0])  # the stack's grid is unturned: z is the LPS z
    along_z[:3, 3] = origin - along_z[:3, :3] @ origin
    truth = along_z @ case.truth
    return moving, lambda matrix: md.mean_error(matrix, truth, case.covered_points)


@needs_data
@pytest.mark.parametrize("shrink_z, warned", [(0.85, True), (1.0, False)])
def test_a_similarity_result_on_unevenly_shrunk_tissue_is_warned(head, shrink_z, warned):
    moving, error = _stack(head, shrink_z)
    result = register(head.image, moving, engine="elastix", preset="similarity")
    uneven = [warning for warning in result.warnings if warning.startswith(UNEVEN_WARNING)]
    mm = error(result.transform.matrix)
    if warned:
        assert mm > 3.0, mm  # one scale cannot fit 0.65, 0.65, 0.55 (4.5 mm off; the coarse stretch search is silent)
        assert len(uneven) == 1 and "0.86 times along its superior-inferior axis (image axis 2)" in uneven[0], uneven
        assert "(an affine run from the result" in uneven[0]
        assert "use --preset affine" in uneven[0]
        affine = register(head.image, moving, engine="elastix", preset="affine")
        assert error(affine.transform.matrix) < 2.0
    else:
        assert mm < 2.0 and not uneven, (mm, result.warnings)
    assert result.provenance.timings_s["affine_opinion_s"] > 0.5  # the affine run happened


def test_a_slab_gets_no_affine_opinion(small_pair):
    """Five CT slices (15 mm) against the head MR: an affine run is free to stretch across the slab, so it is not
    asked (no opinion, no seconds spent)."""
    from conftest import near_truth

    fixed = small_pair.fixed[:, :, 20:25]
    result = register(fixed, small_pair.moving, engine="elastix", preset="similarity", init="none",
                      initial_transform=near_truth(small_pair))  # fmt: skip
    assert "affine_opinion_s" not in result.provenance.timings_s
    assert not any("an affine run from the result" in warning for warning in result.warnings)
