"""A nonlinear initial transform whose grid leaves part of the fixed image unmoved is warned, with the share it
covers and the step (mm) at its edge (core/field_reach.py); a field on the whole fixed grid, or one that fades
to nothing at its edge, is not."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from conftest import bulge
from MultimodalRegistrationLib.core.field_reach import field_edge_warnings
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.register import register


def _fixed() -> sitk.Image:
    fixed = sitk.Image([48, 40, 32], sitk.sitkFloat32)
    fixed.SetSpacing([2.0, 2.0, 2.0])
    fixed.SetOrigin([-48.0, -40.0, -32.0])
    return fixed


def _blobs() -> sitk.Image:
    """Three Gaussian blobs in a 40 x 36 x 32 grid of 2.5 mm: a small image any preset registers at once."""
    z, y, x = np.mgrid[:32, :36, :40].astype(float)
    blobs = sum(np.exp(-((x - a) ** 2 + (y - b) ** 2 + (z - c) ** 2) / 30.0) for a, b, c in [(12, 12, 10), (26, 20, 16),
                                                                                          (18, 26, 22)])  # fmt: skip
    image = sitk.GetImageFromArray((100 * blobs).astype(np.float32))
    image.SetSpacing([2.5, 2.5, 2.5])
    return image


def _uniform_field(grid: sitk.Image, shift_mm: tuple[float, float, float]) -> Transform:
    """A field moving every point of ``grid`` by ``shift_mm`` (LPS), stored on that grid alone."""
    size = grid.GetSize()
    vectors = np.zeros((size[2], size[1], size[0], 3)) + np.asarray(shift_mm)
    field = sitk.GetImageFromArray(vectors, isVector=True)
    field.CopyInformation(grid)
    return Transform.from_displacement_field(field)


def _central_half(image: sitk.Image) -> sitk.Image:
    size = np.asarray(image.GetSize())
    return sitk.RegionOfInterest(image, [int(s) for s in size // 2], [int(s) for s in size // 4])


def test_a_field_on_the_central_eighth_of_the_fixed_grid_is_warned_with_its_share_and_its_step():
    fixed = _fixed()
    warnings = field_edge_warnings(_uniform_field(_central_half(fixed), (5.0, 0.0, 0.0)), fixed)
    # 24 x 20 x 16 of 48 x 40 x 32 voxels: an eighth of the box (12% of the sampled centres), stepping 5 mm
    assert len(warnings) == 1
    assert "displacement grid covers 12% of the fixed image" in warnings[0]
    assert "steps by up to 5.0 mm at the grid's edge" in warnings[0]


def test_a_field_reached_through_a_translation_first_is_judged_where_the_points_arrive():
    fixed = _fixed()
    whole = _uniform_field(fixed, (0.0, 3.0, 0.0))
    assert field_edge_warnings(whole, fixed) == []
    # Applied first, 30 mm along L carries a third of the 96 mm wide box past the field's grid.
    shifted = whole @ Transform.from_matrix(np.array([[1, 0, 0, 30.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert "displacement grid covers 67% of the fixed image" in field_edge_warnings(shifted, fixed)[0]


def test_a_bspline_domain_over_part_of_the_fixed_image_is_warned():
    fixed = _fixed()
    spline = sitk.BSplineTransformInitializer(_central_half(fixed), [4, 4, 4])
    parameters = np.zeros(spline.GetNumberOfParameters())
    parameters[: len(parameters) // 3] = 3.0  # every node 3 mm along L
    spline.SetParameters(parameters.tolist())
    warnings = field_edge_warnings(Transform(spline), fixed)
    assert "bspline grid covers 15% of the fixed image" in warnings[0]
    assert "steps by up to 3.0 mm" in warnings[0]


def test_a_field_that_fades_to_nothing_at_its_edge_or_is_linear_is_not_warned():
    fixed = _fixed()
    assert field_edge_warnings(bulge(3.0), fixed) == []  # a Gaussian bulge on a 10 mm grid: 0 mm at its faces
    assert field_edge_warnings(_uniform_field(_central_half(fixed), (0.5, 0.0, 0.0)), fixed) == []  # under 1 mm
    assert field_edge_warnings(Transform.identity(), fixed) == []
    assert field_edge_warnings(None, fixed) == []


def test_a_registration_started_from_a_field_on_part_of_the_fixed_grid_says_so():
    fixed = _blobs()
    start = _uniform_field(_central_half(fixed), (4.0, 0.0, 0.0))
    result = register(fixed, fixed, engine="elastix", preset="rigid", initial_transform=start)
    said = [warning for warning in result.warnings if "grid covers" in warning]
    assert len(said) == 1 and "steps by up to 4.0 mm" in said[0], result.warnings
    assert not result.transform.is_linear  # the start's field stays part of the result, step included


def test_qa_of_a_field_on_part_of_the_fixed_grid_names_the_grid_beside_the_fold():
    from MultimodalRegistrationLib.qa.assess import assess_registration

    fixed = _blobs()
    report = assess_registration(fixed, fixed, _uniform_field(_central_half(fixed), (4.0, 0.0, 0.0)))
    said = [warning for warning in report.warnings if "grid covers" in warning]
    assert len(said) == 1 and said[0].startswith("the transform's displacement grid covers 12%"), report.warnings
    assert "steps by up to 4.0 mm" in said[0]
