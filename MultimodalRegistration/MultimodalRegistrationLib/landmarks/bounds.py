"""Points inside their image (LPS mm): refuse a list that lies wholly outside, name the points that lie
outside, and say when flipping RAS<->LPS would bring them inside, with the fix for the points file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from .models import distance_outside
from .points_io import PointsSystem

RAS_LPS_FLIP = np.array([-1.0, -1.0, 1.0])  # RAS <-> LPS
# How the warning for some points outside says a flip brings them all inside (a fit also turned ~180 degrees
# from the headers then refuses, see .fit).
FLIP_BRINGS_INSIDE = "all of them lie inside it after flipping RAS<->LPS"
# Some points outside their own image, none once the lists are exchanged: at least this share of all the points.
EXCHANGED_SHARE = 0.2


def check_points_inside(
    points_lps: np.ndarray,
    image: sitk.Image | None,
    labels: list[str],
    role: str,
    system: PointsSystem | None = None,
) -> list[str]:
    """Refuse points that all lie outside their image; name those outside (a warning) when only some do.

    Every point outside is the classic wrong-file or RAS/LPS mistake, and nothing computed from such
    points means anything: :class:`InputError`. When the points would lie inside after flipping RAS<->LPS
    (negating x and y), the message says so, with the fix for the file that ``system`` describes (how
    the points file declared its coordinates, from :func:`.points_io.read_points_file`). ``image``
    None, or not 3D: no check.
    """
    points_lps = np.asarray(points_lps, float).reshape(-1, 3)
    if image is None or image.GetDimension() != 3 or not len(points_lps):
        return []
    distance = distance_outside(points_lps, image)
    outside = np.flatnonzero(distance > 0)
    if not len(outside):
        return []
    flip_fits = not np.any(distance_outside(points_lps * RAS_LPS_FLIP, image) > 0)
    if len(outside) == len(points_lps):
        problem = (
            f"all {len(points_lps)} {role} points lie outside the {role} image "
            f"(the nearest {distance.min():.1f} mm beyond its edge)"
        )
        if flip_fits:
            raise InputError(
                f"{problem}, but inside it after flipping RAS<->LPS (negating x and y): {_flip_fix(system)}"
            )
        raise InputError(
            f"{problem}: the points were placed on another image, or on this one while a transform moved it; "
            f"check that the {role} points and the {role} image belong together, and harden any transform in "
            "Slicer before exporting the points"
        )
    names = ", ".join(f"'{labels[i]}'" for i in outside)
    message = f"{role} points {names} lie outside the {role} image (up to {distance.max():.1f} mm beyond its edge): "
    if flip_fits:
        return [message + f"{FLIP_BRINGS_INSIDE} (negating x and y): {_flip_fix(system)}"]
    return [
        message + "they were probably placed on another volume, or the volume moved after placing; "
        f"check the {role} list"
    ]


def check_lists_inside(lists: list[tuple[np.ndarray, sitk.Image | None, list[str], str, PointsSystem | None]]
                       ) -> list[str]:  # fmt: skip
    """:func:`check_points_inside` for each (points LPS, image, labels, role, system): its warnings; every list refused
    is named in one :class:`InputError`, each with its own file's fix (a helper's sweep: both files in the other
    convention, the message named one, and the second run refused the other)."""
    said, refused = [], []
    for points_lps, image, labels, role, system in lists:
        try:
            said += check_points_inside(points_lps, image, labels, role, system)
        except InputError as error:
            refused.append(str(error))
    if refused:
        raise InputError("; and ".join(refused))
    return said


@dataclass
class PointBounds:
    """The images a landmark fit's points must lie in (LPS; None: no check), and how each points file declared
    its coordinates (:func:`.points_io.read_points_file`), for the RAS/LPS fix a message gives."""

    fixed_image: sitk.Image | None = None
    moving_image: sitk.Image | None = None
    fixed_system: PointsSystem | None = None
    moving_system: PointsSystem | None = None

    def check(self, fixed_lps: np.ndarray, moving_lps: np.ndarray, fixed_labels: list[str],
              moving_labels: list[str]) -> list[str]:  # fmt: skip
        """:func:`check_points_inside` for both lists: refuses a list wholly outside, names the points outside; lists
        that each lie wholly inside the other's image are called exchanged (a helper's sweep: "placed on another
        image" named no fix)."""
        def outside(points, image) -> np.ndarray:
            return distance_outside(np.asarray(points, float).reshape(-1, 3), image) > 0

        fixed, moving = self.fixed_image, self.moving_image
        both = fixed is not None and moving is not None and len(fixed_lps) > 0 and len(moving_lps) > 0
        if both:  # each list against its own image, and against the other's
            own = (outside(fixed_lps, fixed), outside(moving_lps, moving))
            fit_exchanged = not (outside(fixed_lps, moving).any() or outside(moving_lps, fixed).any())
            if own[0].all() and own[1].all() and fit_exchanged:
                raise InputError(
                    "the fixed and moving point lists look exchanged: every fixed point lies outside the fixed image "
                    "but inside the moving one, and every moving point the other way round: give the points placed "
                    "on the fixed image as --fixed-points and those on the moving image as --moving-points"
                )
        said = check_lists_inside([(fixed_lps, self.fixed_image, fixed_labels, "fixed", self.fixed_system),
                                   (moving_lps, self.moving_image, moving_labels, "moving", self.moving_system)])
        if not both:
            return said
        as_given = int(own[0].sum() + own[1].sum())
        # Both lists off their own image: a large fixed image holding the moving one would otherwise call a few moving
        # points beyond its edge an exchange (the session's review).
        if own[0].any() and own[1].any() and fit_exchanged and as_given >= max(
                2, EXCHANGED_SHARE * (len(fixed_lps) + len(moving_lps))):  # fmt: skip
            # A helper's real spinal cords at a 45 degree start: 13 and 7 of 20 points outside, "placed on another
            # volume" twice, the fit 70 mm wrong; exchanged, every point lies inside.
            said.append(f"the fixed and moving point lists look exchanged: {as_given} points lie outside their own "
                        "image, and none once the lists are exchanged; give the points placed on the fixed image as "
                        "the fixed list")  # fmt: skip
        return said


def _flip_fix(system: PointsSystem | None) -> str:
    """The cause and the fix of points mirrored through RAS<->LPS, for the file ``system`` describes."""
    export = "export the points from Slicer as .mrk.json or .fcsv, which record their coordinate system"
    if system is None:
        return f"the coordinates are probably LPS read as RAS, or the reverse; {export}"
    return (
        f"the coordinates are {system.other} but {system.name} says {system.system} ({system.declared}); "
        f"{system.fix}, or {export}"
    )
