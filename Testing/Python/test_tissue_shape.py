"""A slice spacing written too large (x3, x10): a doubted result or a lost overlap names the stretched axis.

Generated: ellipsoids of known size (mm) on known grids; end to end, micro_data's head MRI against a light-sheet
brain whose z spacing is stored 3 times too large (a helper's sweep: 105 mm off, warned, with no word of the
spacing).
"""

import micro_data as md
import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import EngineError
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.tissue_shape import (
    elongation,
    hint_if_lost,
    stretched_slice_hint,
    tissue_extents_mm,
)
from MultimodalRegistrationLib.registration.rules.weak_result import WEAK_RESULT


def ellipsoid(semi_axes_mm, spacing, box_mm=(200.0, 200.0, 200.0), stored_spacing=None) -> sitk.Image:
    """A bright ellipsoid with ``semi_axes_mm`` in a dark box, sampled at ``spacing``; its header then states
    ``stored_spacing`` (a wrong slice step stretches it)."""
    size = [round(b / s) for b, s in zip(box_mm, spacing)]
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(size, spacing)], indexing="ij")
    inside = sum((g / a) ** 2 for g, a in zip(grids, semi_axes_mm)) <= 1.0
    rng = np.random.default_rng(0)
    array = np.where(inside, 100.0, 5.0) + rng.normal(0, 2, inside.shape)
    image = sitk.GetImageFromArray(array.transpose(2, 1, 0).astype(np.float32))
    image.SetSpacing(stored_spacing or spacing)
    return image


HEAD = (80.0, 95.0, 80.0)  # semi-axes, mm
BRAIN = (38.0, 48.0, 40.0)


def test_tissue_extents_are_measured_in_mm_along_the_image_axes():
    extents = tissue_extents_mm(ellipsoid(BRAIN, (1.0, 1.0, 1.0), (120.0, 120.0, 120.0)))
    np.testing.assert_allclose(extents, [76.0, 96.0, 80.0], atol=10.0)  # 4 mm voxels, the 1st-99th percentiles
    assert elongation(extents) == pytest.approx(96 / 80, abs=0.1)


def test_a_colour_image_is_measured_by_its_brightness():
    grey = ellipsoid(BRAIN, (1.0, 1.0, 1.0), (120.0, 120.0, 120.0))
    colour = sitk.Compose([sitk.Cast(grey, sitk.sitkUInt8)] * 3)
    np.testing.assert_allclose(tissue_extents_mm(colour), tissue_extents_mm(grey))


def test_a_slice_step_three_times_too_large_is_named():
    fixed = ellipsoid(HEAD, (2.0, 2.0, 2.0))
    moving = ellipsoid(BRAIN, (1.0, 1.0, 1.0), (120.0, 120.0, 120.0), stored_spacing=(1.0, 1.0, 3.0))
    hint = stretched_slice_hint(fixed, moving)
    assert hint is not None and "moving tissue measures" in hint and "axis 2" in hint and "3 mm against 1 mm" in hint
    assert "--spacing-moving" in hint
    turned = stretched_slice_hint(moving, fixed)  # the other way round, the fixed image is the stretched one
    assert turned is not None and "fixed tissue" in turned and "--spacing-fixed" in turned


def test_tissue_long_for_its_width_on_even_voxels_or_thick_slices_across_it_is_not_hinted():
    fixed = ellipsoid(HEAD, (2.0, 2.0, 2.0))
    hemisphere_slab = ellipsoid((22.0, 52.0, 14.0), (1.0, 1.0, 1.0), (120.0, 120.0, 120.0))  # even voxels
    assert elongation(tissue_extents_mm(hemisphere_slab)) > 1.6 * elongation(tissue_extents_mm(fixed))
    assert stretched_slice_hint(fixed, hemisphere_slab) is None
    thick_across = ellipsoid((26.0, 50.0, 40.0), (1.0, 1.0, 3.0), (120.0, 120.0, 120.0))  # longest in-plane
    assert stretched_slice_hint(fixed, thick_across) is None
    assert stretched_slice_hint(fixed, ellipsoid(BRAIN, (1.0, 1.0, 1.0), (120.0, 120.0, 120.0))) is None


def test_a_mouse_brain_on_its_right_anisotropic_stack_is_measured_finely_and_not_hinted():
    """At 4 mm cells a 12 mm mouse MRI was 2-3 cells across and measured 11.7 x 11.7 x 4 mm; its right 0.02 x 0.02 x
    0.05 mm stack was hinted (a reviewer). Cells are now a 40th of a smaller image's longest side."""
    mri = ellipsoid((4.0, 5.0, 3.0), (0.1, 0.1, 0.1), (12.0, 12.0, 12.0))
    stack = ellipsoid((4.0, 5.0, 3.0), (0.02, 0.02, 0.05), (10.0, 12.0, 8.0))
    np.testing.assert_allclose(tissue_extents_mm(mri), [8.0, 10.0, 6.0], atol=1.0)
    np.testing.assert_allclose(tissue_extents_mm(stack), [8.0, 10.0, 6.0], atol=1.0)
    assert stretched_slice_hint(mri, stack) is None


def test_a_lost_overlap_gets_the_hint_and_other_engine_errors_do_not():
    fixed = ellipsoid(HEAD, (2.0, 2.0, 2.0))
    moving = ellipsoid(BRAIN, (1.0, 1.0, 1.0), (120.0, 120.0, 120.0), stored_spacing=(1.0, 1.0, 10.0))
    lost = EngineError("Too many samples map outside moving image buffer: 183 / 4096", hint="prealign")
    hint_if_lost(lost, fixed, moving)
    assert lost.hint.startswith("prealign; or the moving tissue measures") and "10 mm against 1 mm" in lost.hint
    other = EngineError("out of memory", hint="downsample")
    hint_if_lost(other, fixed, moving)
    assert other.hint == "downsample"


@pytest.mark.skipif(not md.available(), reason="MNI ICBM152 maps not in ../shared/data")
def test_a_light_sheet_brain_with_its_z_spacing_three_times_too_large_is_warned_with_its_axis(tmp_path):
    head = md.head_mri(1.5)
    case = md.light_sheet(0.6, 25.0, 1.0, seed=3, brain_points=head.brain_points)
    moving = sitk.Image(case.moving)
    spacing = np.asarray(moving.GetSpacing())
    moving.SetSpacing(tuple(spacing * [1.0, 1.0, 3.0]))
    result = register(head.image, moving, preset="rigid", workdir=tmp_path)
    assert any(warning.startswith(WEAK_RESULT) for warning in result.warnings)
    hints = [warning for warning in result.warnings if warning.startswith("the moving tissue measures")]
    assert len(hints) == 1 and "axis 2" in hints[0] and "--spacing-moving" in hints[0], result.warnings
    assert md.mean_error(result.transform.matrix, case.truth, case.covered_points) > 20.0  # the doubt is right
