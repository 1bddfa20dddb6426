"""One fold check (core/folding.py) for the registration's keep rule and QA: the Jacobian determinant sampled on a
2 mm grid and each displacement field per cell on its own grid, so a result the registration keeps is not one QA's
triage fails as folding. A fold between the nodes of the keep rule's former 4 mm grid passed it."""

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.cell_jacobian import cell_jacobian_minimum
from MultimodalRegistrationLib.core.folding import folding
from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points
from MultimodalRegistrationLib.qa.jacobian import jacobian_statistics
from MultimodalRegistrationLib.registration.rules.keep import minimum_jacobian, why_not_kept


def _fixed() -> sitk.Image:
    """A 40 mm cube at 2 mm, centred on the origin (LPS)."""
    fixed = sitk.Image([21, 21, 21], sitk.sitkFloat32)
    fixed.SetSpacing((2.0, 2.0, 2.0))
    fixed.SetOrigin((-20.0, -20.0, -20.0))
    return fixed


def _field(array: np.ndarray) -> Transform:
    """A displacement field (z, y, x, 3; LPS mm) on a 1 mm grid over the same 40 mm cube."""
    field = sitk.GetImageFromArray(array, isVector=True)
    field.SetSpacing((1.0, 1.0, 1.0))
    field.SetOrigin((-20.0, -20.0, -20.0))
    return Transform.from_displacement_field(field)


def _fold_between_nodes() -> Transform:
    """Two node layers 1 mm apart (x = 2 and 3 mm) pushed 0.75 mm towards each other over a 9 mm square patch:
    within that cell d(x + u_x)/dx = 1 - 1.5 / 1 = -0.5. Every node of a 4 mm grid from -20 mm sees u = 0."""
    array = np.zeros((41, 41, 41, 3))
    array[16:25, 16:25, 22, 0], array[16:25, 16:25, 23, 0] = 0.75, -0.75
    return _field(array)


def _old_keep_check(transform: Transform, fixed: sitk.Image) -> float:
    """The keep rule's check before core/folding.py: central differences on a 4 mm grid over the fixed image."""
    field = sitk.TransformToDisplacementField(transform.sitk, sitk.sitkVectorFloat64, [11, 11, 11], fixed.GetOrigin(),
                                              [4.0, 4.0, 4.0], fixed.GetDirection())  # fmt: skip
    determinant = sitk.DisplacementFieldJacobianDeterminant(field)
    return float(sitk.GetArrayViewFromImage(determinant).min())


def test_a_fold_between_the_4_mm_grid_nodes_is_not_kept():
    fixed, folded = _fixed(), _fold_between_nodes()
    assert _old_keep_check(folded, fixed) == pytest.approx(1.0, abs=1e-12)  # the old check kept it
    # The 2 mm sampled grid (nodes at x = 2 and 4 mm) reads 1 -/+ 0.75 / 4 around it, no fold either.
    assert float(folding(folded, fixed).sampled.min()) == pytest.approx(0.8125, abs=1e-9)
    assert minimum_jacobian(folded, fixed) == pytest.approx(-0.5, abs=1e-9)
    # Where: the centre of the first folded cell (the patch's rim, x = 2.5 mm; LPS), RAS in the message.
    assert np.allclose(folding(folded, fixed).at_lps, [2.5, -4.5, -4.5])
    reason = why_not_kept(folded, 0.5, 0.5, fixed)
    assert reason == (
        "folds space (Jacobian determinant down to -0.500 <= 0 at RAS -2, 4, -4 mm, on a 2 mm grid or within a "
        "displacement field's own cells)"
    )
    # Composed with a linear part after it (a registration's affine stage): its determinant scales the field's.
    stretched = Transform.from_matrix(np.diag([1.2, 1.0, 1.0, 1.0])) @ folded
    assert minimum_jacobian(stretched, fixed) == pytest.approx(-0.6, abs=1e-9)
    # QA finds the same fold where the keep rule does.
    statistics = jacobian_statistics(folded, fixed)
    assert statistics.minimum == pytest.approx(-0.5, abs=1e-9)
    assert statistics.folding_percent > 0
    assert np.allclose(lps_ras_points(np.array([statistics.minimum_at_ras]))[0], folding(folded, fixed).at_lps)


def test_a_smooth_field_that_does_not_fold_is_kept():
    # u_x = -0.5 x exp(-(x / 12)^2): a squeeze, d(x + u_x)/dx = 0.5 at x = 0; a 1 mm cell's slope, its nodes'
    # difference, is a little gentler: 0.5035 in the cells beside x = 0.
    x = np.arange(41) - 20.0
    array = np.zeros((41, 41, 41, 3))
    array[..., 0] = (-0.5 * x * np.exp(-((x / 12.0) ** 2)))[None, None, :]
    smooth, fixed = _field(array), _fixed()
    assert 0.5 < minimum_jacobian(smooth, fixed) < 0.51
    assert why_not_kept(smooth, 0.5, 0.5, fixed) == ""
    assert minimum_jacobian(Transform.identity() @ smooth, fixed) == pytest.approx(minimum_jacobian(smooth, fixed))


def test_only_the_region_counts_for_a_field_applied_first():
    fixed, folded = _fixed(), _fold_between_nodes()
    away = sitk.Image(fixed.GetSize(), sitk.sitkUInt8)
    away.CopyInformation(fixed)
    away[:5, :5, :5] = 1  # the corner -20 to -12 mm, far from the fold at x = 2.5 mm
    found = folding(folded, fixed, away)
    assert found.minimum == pytest.approx(1.0, abs=1e-9)
    # 10 x 10 cells of 1 mm^3 fold: the 8 x 8 within the 9-node patch and the rim whose patch-side edge folds.
    assert folding(folded, fixed).fields[0].folded_mm3 == pytest.approx(100.0)
    # The linear case: the same determinant everywhere, at the fixed image's centre.
    linear = folding(Transform.from_matrix(np.diag([1.1, 1.1, 1.1, 1.0])), fixed)
    assert linear.minimum == pytest.approx(1.331, abs=1e-12) and np.allclose(linear.at_lps, 0.0)


@pytest.mark.parametrize("oblique", [False, True])
def test_the_bound_spares_only_cells_that_stay_above_the_floor(oblique):
    """cell_jacobian_minimum(below=...) samples only the cells whose interval bound reaches ``below``: the same
    minimum wherever it is <= below, a bound no more than the minimum elsewhere (a rough random field, 10^3 cells)."""
    rng = np.random.default_rng(7)
    u = rng.normal(0.0, 0.15, (11, 11, 11, 3))
    direction = np.linalg.qr(rng.normal(size=(3, 3)))[0].ravel() if oblique else None
    exact = cell_jacobian_minimum(u, (1.0, 1.5, 0.8), direction)
    spared = cell_jacobian_minimum(u, (1.0, 1.5, 0.8), direction, below=0.5)
    low = exact <= 0.5
    assert 0.3 < low.mean() < 0.6  # measured 0.42 and 0.44: both kinds of cell are there
    assert (spared != exact).any()  # some were spared: 12% (1.7% oblique; the rotation loosens the bound)
    assert np.array_equal(spared[low], exact[low])
    assert np.all(spared[~low] > 0.5) and np.all(spared[~low] <= exact[~low] + 1e-12)


def test_a_grid_overhanging_the_image_does_not_make_a_translation_fold():
    """A 5 mm translation field on a 64 x 64 x 45 image at 1 mm: the 2 mm grid ends half a voxel past the voxel
    centres, where the field reads 0, and the keep rule refused it as folding (-0.25 at 128 x 128 x 90; QA said the
    same). Nodes whose differences leave the image are left out."""
    size = (64, 64, 45)
    fixed = sitk.Image(size, sitk.sitkFloat32)
    fixed.SetOrigin((-32.0, -32.0, -22.0))
    shift = np.zeros(size[::-1] + (3,))
    shift[..., 0] = 5.0
    field = sitk.GetImageFromArray(shift, isVector=True)
    field.CopyInformation(fixed)
    found = folding(Transform.from_displacement_field(field), fixed)
    assert found.minimum == pytest.approx(1.0, abs=1e-9) and found.sampled.min() == pytest.approx(1.0, abs=1e-9)


def _far_fold(at_x_mm: float) -> Transform:
    """A displacement field on a 1 mm grid from -25 to 49 mm whose layers at x and x + 1 mm are pushed 0.75 mm
    towards each other over a 9 mm patch (y, z in -4..4 mm): a fold there, none elsewhere."""
    field = sitk.GetImageFromArray(np.zeros((75, 75, 75, 3)), isVector=True)
    field.SetOrigin((-25.0, -25.0, -25.0))
    array = sitk.GetArrayFromImage(field)
    column = int(at_x_mm + 25)
    array[21:30, 21:30, column, 0], array[21:30, 21:30, column + 1, 0] = 0.75, -0.75
    folded = sitk.GetImageFromArray(array, isVector=True)
    folded.CopyInformation(field)
    return Transform.from_displacement_field(folded)


def test_a_later_field_counts_only_the_cells_the_region_reaches():
    """A field applied after a linear part counted all its cells: an inverted field's rim, 70 mm from the fixed image,
    had made a rigid result 'fold' (a nodes sweep). The cells the fixed box reaches through the linear part count,
    and a fold there still does."""
    fixed = _fixed()  # -20..20 mm
    shift = Transform.from_matrix(np.array([[1, 0, 0, 3.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert folding(_far_fold(45.0) @ shift, fixed).minimum == pytest.approx(1.0, abs=1e-9)  # box reaches 23 mm
    assert folding(_far_fold(20.0) @ shift, fixed).minimum <= 0  # reached at 20 mm, shifted in
    moved = Transform.from_matrix(np.array([[1, 0, 0, 30.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert folding(_far_fold(45.0) @ moved, fixed).minimum <= 0  # the box shifted onto it: -10..50 mm


def test_a_linear_stage_is_not_refused_for_its_nonlinear_starts_folds():
    """A start held as a field that folds near the fixed image (Slicer's iterative inverse of a grid transform
    inverted in place) made a good rigid result, composed with it, be refused as 'folds space' and the start kept
    (a nodes sweep): a linear stage changes no field. A result whose field is new is still judged."""
    fixed, start = _fixed(), _far_fold(20.0)
    shift = Transform.from_matrix(np.array([[1, 0, 0, 3.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    result = start @ shift
    assert "folds space" in why_not_kept(result, 1.0, 1.0, fixed)
    assert why_not_kept(result, 1.0, 1.0, fixed, None, start) == ""
    assert "folds space" in why_not_kept(_fold_between_nodes() @ shift, 1.0, 1.0, fixed, None, start)
    # a review: a linear stage that moves the box onto a fold its start never reached is judged
    far = _far_fold(45.0)
    moved = Transform.from_matrix(np.array([[1, 0, 0, 30.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert folding(far, fixed).minimum > 0 and "folds space" in why_not_kept(far @ moved, 1.0, 1.0, fixed, None, far)


@pytest.mark.parametrize("corner", [(0, 0, 0), (38, 38, 38), (38, 38, 20)])
def test_a_later_field_folding_at_the_box_edges_is_found(corner):
    """A review: the cells reached were taken from the nodes inside the differences' rim, widened along the axes
    only, so a fold at the fixed box's edges and corners went unseen once the field came after a 0.01 mm shift."""
    fixed = _fixed()  # -20..20 mm
    array = np.zeros((41, 41, 41, 3))
    x, y, z = corner
    array[z, y, x, 0], array[z, y, x + 1, 0] = 0.75, -0.75
    field = _field(array)
    nudge = Transform.from_matrix(np.array([[1, 0, 0, 0.01], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert folding(field, fixed).minimum <= 0 and folding(field @ nudge, fixed).minimum <= 0
