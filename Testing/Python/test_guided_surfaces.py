"""The surfaces that score guided starts (registration/guided/surfaces.py): which points a field of view keeps,
and that the same masks give the same points every time (a view of a freed temporary image once made the
guided start differ between runs of the same pair)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.views import FOV_MARGIN_MM, edge_distance, field_of_view
from MultimodalRegistrationLib.registration.guided.surfaces import Surface

SPACING_MM = 1.5
RADIUS_MM = 15.0


def _ball(size=40) -> tuple[sitk.Image, np.ndarray]:
    """A 15 mm ball in a 40^3 grid of 1.5 mm voxels (UInt8), and its centre (LPS mm)."""
    index = np.indices((size,) * 3).transpose(1, 2, 3, 0)[..., ::-1] * SPACING_MM  # (k, j, i) -> (x, y, z) mm
    centre = np.full(3, (size - 1) * SPACING_MM / 2)
    image = sitk.GetImageFromArray((np.linalg.norm(index - centre, axis=-1) <= RADIUS_MM).astype(np.uint8))
    image.SetSpacing((SPACING_MM,) * 3)
    return image, centre


def _half_fan(like: sitk.Image, below_x_mm: float) -> sitk.Image:
    """An image with data (1..255) where x < ``below_x_mm`` and 0 elsewhere: a field of view that cuts the ball."""
    x = np.arange(like.GetSize()[0]) * SPACING_MM
    array = np.broadcast_to((x < below_x_mm) * 100 + 0, like.GetSize()[::-1]).astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.CopyInformation(like)
    return image


def test_the_field_of_view_keeps_the_surface_it_did_not_cut():
    ball, centre = _ball()
    whole = Surface.of(ball, edge_distance(field_of_view(None, ball)))
    cut_at = centre[0] + 5.0  # the fan stops 5 mm past the ball's centre
    mask = sitk.Mask(ball, field_of_view(_half_fan(ball, cut_at), ball))
    cut = Surface.of(mask, edge_distance(field_of_view(_half_fan(ball, cut_at), ball)))
    radius = np.linalg.norm(whole.points - centre, axis=1)
    assert abs(radius.mean() - RADIUS_MM) < 1.0  # the voxel contour lies about half a voxel inside: 14.4 mm
    assert whole.cut_fraction == 0.0
    # kept: only points farther than FOV_MARGIN_MM from the fan's edge, so none within 3 mm of it
    assert cut.points[:, 0].max() < cut_at - FOV_MARGIN_MM + SPACING_MM
    # the contour of the cut ball includes its flat face at the edge (about pi 14^2 = 600 mm^2), all dropped
    assert 0.3 < cut.cut_fraction < 0.6
    assert len(cut.points) < 0.75 * len(whole.points)
    assert np.allclose(whole.residuals(whole.points), 0.0, atol=SPACING_MM)


def test_the_same_masks_give_the_same_points_every_time():
    ball, centre = _ball()
    fov = field_of_view(_half_fan(ball, centre[0] + 5.0), ball)
    mask = sitk.Mask(ball, fov)
    runs = [Surface.of(mask, edge_distance(fov)) for _ in range(5)]
    for run in runs[1:]:
        assert np.array_equal(run.points, runs[0].points)
        assert run.cut_fraction == runs[0].cut_fraction
