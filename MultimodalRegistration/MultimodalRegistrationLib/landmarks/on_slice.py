"""Landmarks of a 2D image lie on it: on its plane, and inside its pixels (LPS mm).

A 2D image is placed as ITK and Slicer place its file (:meth:`..core.images2d.Image2D.frame_to_lps`); a point off
its plane by more than OFF_PLANE_MM, or half a one-slice volume's thickness, was placed on another (3D) image, and
its z had been dropped with no word (a helper's sweep: points spread over 60 mm of z on a 2D slice). Inside the
plane, the 3D rule holds (:func:`.bounds.check_points_inside`): a list wholly outside is refused (with the RAS/LPS
fix when a flip brings it in), some points outside are named. A slice outside the axial plane reads its landmarks
in its pixel frame (x, y; see ``register2d``), so only the pixel box is checked there.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.images2d import Image2D
from .bounds import check_points_inside
from .points_io import PointsSystem

OFF_PLANE_MM = 0.5  # half of the 1 mm slice Slicer gives a 2D file


def _sheet(image: Image2D) -> sitk.Image:
    """The slice as a one-voxel-thick 3D image placed in LPS (its pixels' box)."""
    frame = image.frame_to_lps()
    columns, rows = image.image.GetSize()
    sheet = sitk.Image([columns, rows, 1], sitk.sitkUInt8)
    sheet.SetSpacing([image.pixel_mm, image.pixel_mm, 1.0])
    sheet.SetOrigin(frame[:3, 3].tolist())
    sheet.SetDirection(frame[:3, :3].ravel().tolist())
    return sheet


def check_points_on_slice(
    points_lps: np.ndarray, labels: list[str], image: Image2D, role: str, system: PointsSystem | None = None
) -> list[str]:
    """Refuse (InputError naming the fix) points off ``image``'s plane, or all outside it; warnings naming those
    outside when only some are (see the module notes)."""
    points = np.asarray(points_lps, float).reshape(-1, 3)
    frame = image.frame_to_lps()
    if image.is_axial:
        inverse = np.linalg.inv(frame)
        depth = points @ inverse[2, :3] + inverse[2, 3]
        tolerance = 0.5 * image.thickness_mm if image.thickness_mm else OFF_PLANE_MM
        off = np.flatnonzero(np.abs(depth) > tolerance + 1e-9)
        if len(off):
            worst = off[np.argmax(np.abs(depth[off]))]
            raise InputError(
                f"{role} point '{labels[worst]}' lies {abs(depth[worst]):.1f} mm off the {role} image's plane "
                f"({len(off)} of {len(points)} beyond {tolerance:g} mm): landmarks of a 2D image lie on it; were they "
                f"placed on a 3D volume? Place them on the {role} slice itself"
            )
        on_plane = points - np.outer(depth, frame[:3, 2])
    else:  # read in the pixel frame: (x, y) mm of the picture
        on_plane = points[:, :2] @ frame[:3, :2].T + frame[:3, 3]
    return check_points_inside(on_plane, _sheet(image), labels, role, system)
