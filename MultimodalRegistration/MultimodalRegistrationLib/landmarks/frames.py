"""A landmark list read in the wrong coordinate system (RAS taken for LPS, or the reverse) that still lies inside
its image: flipping x and y is a half-turn about the superior axis, not a mirror, so neither the mirror check nor
the points-outside check sees it. The images' headers are the prior: medical headers agree on which way is
anterior and superior, so paired landmarks whose rigid fit turns about 180 degrees from them, and whose fit with
one list flipped does not, point at that mistake."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..core.rotations import orthogonal_fit, rotation_angle_deg
from .bounds import FLIP_BRINGS_INSIDE, RAS_LPS_FLIP
from .checks import FLAT_RATIO, principal_spreads
from .pairing import MIRRORED
from .points_io import PointsSystem

# The fit as given turns at least this far from the headers, and with one list flipped at most NEAR_DEG.
FAR_DEG = 135.0
NEAR_DEG = 45.0


def turn_from_headers_deg(fixed_lps: np.ndarray, moving_lps: np.ndarray) -> float:
    """Rotation (degrees) of the rigid least-squares fit of fixed to moving points (LPS mm) from the identity,
    the orientation the headers give."""
    return float(rotation_angle_deg(orthogonal_fit(fixed_lps, moving_lps, scale=False)[:3, :3]))


def frame_warnings(fixed_lps: np.ndarray, moving_lps: np.ndarray, fixed_system: PointsSystem | None = None,
                   moving_system: PointsSystem | None = None, said: list[str] = ()) -> list[str]:  # fmt: skip
    """A warning when the paired landmarks (LPS mm, 3 or more) fit the images only turned about 180 degrees from
    their headers, and within NEAR_DEG of them once one list's x and y are negated; [] otherwise, and when the
    warnings ``said`` already found the list mirrored (a mirrored list's best rotation can turn that far too)."""
    fixed_lps, moving_lps = np.asarray(fixed_lps, float), np.asarray(moving_lps, float)
    if len(fixed_lps) < 3 or len(fixed_lps) != len(moving_lps) or any(w.startswith(MIRRORED) for w in said):
        return []
    spreads = principal_spreads(fixed_lps)
    if spreads[1] < FLAT_RATIO * spreads[0]:  # nearly on one line: the turn about it is not determined
        return []
    as_given = turn_from_headers_deg(fixed_lps, moving_lps)
    flipped = turn_from_headers_deg(fixed_lps, moving_lps * RAS_LPS_FLIP)
    if as_given < FAR_DEG or flipped > NEAR_DEG:
        return []
    declared = [f"{system.name} says {system.system} ({system.declared})"
                for system in (fixed_system, moving_system) if system is not None]  # fmt: skip
    files = f" ({'; '.join(declared)})" if declared else ""
    # Each file's own fix (a sweep: a CSV of LPS numbers was told to export .mrk.json, not to rename its columns).
    fixes = [f"{system.fix} if {system.name} is the one" for system in (fixed_system, moving_system) if system]
    fix = f"; or {', or '.join(fixes)}" if fixes else ""
    warning = (
        f"the two landmark lists are turned {as_given:.0f} degrees from each other as placed (scanners' coordinates, "
        f"which agree on which way is up), and {flipped:.0f} degrees with one list's x and y negated: one list is "
        f"probably RAS read as LPS, or the reverse{files}. Check that each file holds the coordinate system it "
        f"declares (export the points from Slicer as .mrk.json{fix}); if the images really are turned half around, "
        "ignore this"
    )
    return [warning]


def refuse_turned_and_flipped(turned: list[str], outside: list[str]) -> None:
    """Refuse (:class:`InputError`) when two independent checks name the same RAS/LPS mistake: the lists fit only
    turned half around (``turned``, :func:`frame_warnings`), and a list's points outside its image all come inside
    once flipped (``outside``, :func:`.bounds.check_points_inside`). ``mmreg prealign`` refused it; ``mmreg register``
    had only warned, and a result 17.5 mm off at the cord, 71 mm beside it, exited 0 (a helper's real spinal cords)."""
    flips = [warning for warning in outside if FLIP_BRINGS_INSIDE in warning]
    if turned and flips:
        raise InputError(f"{flips[0]} (the landmarks also fit the images only turned about 180 degrees from "
                         "their headers, which the same mistake explains; if the images really are turned so, "
                         "prone against supine, and a point was placed beyond its image's edge, move it "
                         "inside)")  # fmt: skip
