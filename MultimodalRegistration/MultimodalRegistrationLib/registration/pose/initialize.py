"""Where a registration starts: the user's initial transform, centre alignment, or a search over all poses.

``init`` methods (all transforms map fixed to moving points, LPS mm):

* ``auto`` (default): without an initial transform, search all poses (:mod:`.anypose`; with
  ``scale``, for presets that scale, all poses and sizes: :mod:`.scale_search`, checked by a second sample seed,
  :mod:`.scale_consensus`) and also
  keep the image-centre start when it leads elsewhere, and the headers' own pose (the scanner alignment) when
  it leads elsewhere and the images overlap there (:func:`_headers_overlap`), so that the engine
  can run from each and keep the best; with an initial transform, start from it as it is. The header start:
  the SCT T1w -> T2w cord pair's search start ended 29 mm off (mutual information 0.127, Dice 0), where the
  headers, 0.6 mm apart, led to 0.161 and Dice 0.91.
* ``any-pose``: only the search over all poses (on top of the initial transform, if given).
* ``geometry``: align the centres of the image boxes; ``moments``: the centres of the foregrounds;
  ``none``: the initial transform (or identity) as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ...core.choices import FULL_ROTATION_DEG, INIT_METHODS
from ...core.errors import InputError
from ...core.images import corner_points, inside_fraction, physical_extent_mm
from ...core.plausible_spacing import reads_as_no_spacing
from ...core.rotations import MAX_SCALE, MIN_SCALE
from ...core.transforms import Transform
from ..rules.thin_moving import THIN_SHARE, thin_side_mm
from ..settings import RegistrationSettings
from . import anypose
from .anypose import AnyPoseResult
from .centres import centre_alignment, foreground_center
from .same_start import SAME_START_MM, same_start
from .scale_consensus import search_scaled_pose_agreed
from .slab_size import search_slab_size

# The headers' pose is a start of its own unless another lies within this share of the fixed image's smallest
# extent of it (and SAME_START_MM).
HEADER_SHARE = 0.1


def _check_method(method: str) -> None:
    if method not in INIT_METHODS:
        raise InputError(f"unknown initialisation '{method}': choose one of {', '.join(INIT_METHODS)}")


def initial_alignment(
    fixed: sitk.Image,
    moving: sitk.Image,
    initial_transform: Transform | None,
    method: str,
) -> Transform:
    """The one fixed -> moving transform a registration starts from (LPS mm).

    ``geometry``, ``moments`` and ``none`` as in the module notes (see :func:`.centres.centre_alignment`);
    ``auto`` and ``any-pose`` return the first of :func:`starting_poses`.
    """
    _check_method(method)
    if method in ("auto", "any-pose"):
        settings = RegistrationSettings(initial_transform=initial_transform, init=method, seed=0)
        return starting_poses(fixed, moving, settings).poses[0][1]
    return centre_alignment(fixed, moving, initial_transform, method)


@dataclass
class StartingPoses:
    """The poses an engine runs from, best guess first; with two, keep the result with the higher metric."""

    # (name, fixed -> moving): "any-pose", "centre", "header", "initial" (kept as given), or the init method
    poses: list[tuple[str, Transform]]
    before: Transform  # the pose the images are in before any search, for the metric before
    search: AnyPoseResult | None = None  # when a search ran
    warnings: list[str] = field(default_factory=list)


def _headers_overlap(fixed: sitk.Image, moving: sitk.Image, fixed_center: np.ndarray) -> bool:
    """Whether, as the headers place them, the fixed foreground centre (given, LPS mm) lies inside the moving image,
    and the moving foreground centre inside the fixed image or the whole fixed box inside the moving one: two scans
    of one anatomy, or a small field of view within a larger scan. An intraoperative ultrasound of the brain (a
    helper's simulation, 2026-11-30), navigated 5 mm and 5 deg off, lies inside the head MR, whose centre it does
    not hold: without the headers' start every run ended 70-77 mm off."""
    if inside_fraction(np.atleast_2d(fixed_center), moving) < 1.0:
        return False
    return (
        inside_fraction(foreground_center(moving)[None], fixed) == 1.0
        or inside_fraction(corner_points(fixed), moving) == 1.0
    )


def starting_poses(
    fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings | None = None, scale: bool = False
) -> StartingPoses:
    """Where the engine should start (see the module notes); runs the any-pose search when asked.

    ``settings``: its ``init`` method, ``initial_transform``, masks and ``seed``; its ``max_rotation_deg``
    keeps the search within that rotation (degrees), for images known to be roughly aligned: faster.
    ``scale`` (a preset that scales) searches isotropic scale too.
    Raises :class:`InputError` for an unknown method or images that look mirrored.
    """
    settings = settings or RegistrationSettings()
    method, initial_transform, max_rotation_deg = settings.init, settings.initial_transform, settings.max_rotation_deg
    _check_method(method)
    if not 0.0 < max_rotation_deg <= FULL_ROTATION_DEG:
        raise InputError(f"max_rotation_deg {max_rotation_deg:g} is out of range: give 0 < degrees <= 180")
    if method in ("geometry", "moments", "none") or (method == "auto" and initial_transform is not None):
        start = initial_alignment(fixed, moving, initial_transform, "none" if method == "auto" else method)
        return StartingPoses(poses=[("initial" if method == "auto" else method, start)], before=start)
    before = initial_transform if initial_transform is not None else centre_alignment(fixed, moving, None, "geometry")
    slab = _slab(fixed, moving) if scale else None
    try:
        if slab is not None:  # a slab shows no size the scaled search can compare; a fixed one is searched at sizes
            searcher = search_slab_size if slab == "fixed" else anypose.search_any_pose
        else:
            searcher = search_scaled_pose_agreed if scale else anypose.search_any_pose
        search = searcher(
            fixed, moving, settings.fixed_mask, settings.moving_mask, prior=initial_transform,
            max_rotation_deg=max_rotation_deg, seed=settings.seed,
        )  # fmt: skip
    except InputError:
        raise  # a verdict on the images (mirrored), not a failure of the search
    except (RuntimeError, ValueError, np.linalg.LinAlgError) as error:
        # The search is a help, not a condition: under auto, an image it cannot handle (too few
        # voxels, no foreground) still registers from the centres, as without it.
        reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else type(error).__name__
        if method != "auto":
            raise InputError(
                f"the any-pose search failed ({reason}): use --init geometry, or prealign with landmarks"
            ) from error
        return StartingPoses(
            poses=[("centre", before)], before=before,
            warnings=[f"the any-pose search failed ({reason}); started from the image centres instead"],
        )  # fmt: skip
    poses = [("any-pose", search.transform)]
    if method == "auto":
        center = foreground_center(fixed)
        # The search refined the centre start too: if it joined the winner, so would the engine.
        joined = same_start(search.transform, search.centre_transform, center)
        if not (joined or same_start(search.transform, before, center)):
            poses.append(("centre", before))
        # On a small image 10 mm is far: the cord pair's centres lay 9.9 mm from its headers, 42 mm across.
        header, near_mm = Transform.identity(), min(SAME_START_MM, HEADER_SHARE * physical_extent_mm(fixed).min())
        apart = not any(same_start(header, pose, center, near_mm) for pose in (search.transform, before))
        if apart and _headers_overlap(fixed, moving, center):
            poses.append(("header", header))
    if scale and slab is None and all(name != "header" for name, _ in poses):
        if search.metric <= 0.0:
            raise InputError(_blind_search_message(fixed, moving, initial_transform is not None))
        if not MIN_SCALE <= search.scale <= MAX_SCALE:  # the result would be refused as collapsed or exploded
            raise InputError(
                f"the start search finds the moving anatomy {search.scale:.3g} times the size of the fixed one, beyond "
                f"what a result may scale ({MIN_SCALE:g}-{MAX_SCALE:g}): a spacing is probably wrong; check the voxel "
                "spacing in both image headers and give the right one in mm (--spacing-fixed / --spacing-moving; "
                "mmreg prep sets it without resampling)"
            )
    return StartingPoses(poses=poses, before=before, search=search, warnings=list(search.warnings))


def _slab(fixed: sitk.Image, moving: sitk.Image) -> str | None:
    """Which image ("fixed" or "moving") is a slab inside the other (:func:`.rules.thin_moving.thin_side_mm`), thin in
    its own shape too (a whole head beside one stored at 10 times its spacing is thin only against it, and that
    spacing is refused), or None. The scaled search had read a 15 mm CT slab of the phantom head as 5 times too small
    and refused it ("a spacing is probably wrong"), and left a 40 mm skull-base slab 117 mm off, unwarned, after
    126 s. A fixed slab's size is searched (:func:`.slab_size.search_slab_size`); a moving one starts at its own size."""
    for role, image, other in (("fixed", fixed, moving), ("moving", moving, fixed)):
        thin = thin_side_mm(image, other)
        if thin is not None and thin < THIN_SHARE * float(physical_extent_mm(image).max()):
            return role
    return None


def _blind_search_message(fixed: sitk.Image, moving: sitk.Image, placed: bool) -> str:
    """Why a scaled search that scored 0 at every pose and size cannot start a run (``placed``: from the user's
    initial transform): a mouse MRI (18 mm) against a light-sheet stack stored at 1 mm (120 mm) had gone on from a
    size the search never compared, 4.3 mm off on a 7 mm brain, exit 0 and unwarned (a helper's sweep)."""
    described = []
    for role, image in (("fixed", fixed), ("moving", moving)):
        stored_none = reads_as_no_spacing(image.GetSpacing())
        unit = " (1 mm voxels: also what a file that stores no spacing reads as)" if stored_none else ""
        described.append(f"the {role} image is {float(physical_extent_mm(image).max()):.3g} mm across{unit}")
    place = ("check that the initial transform places the moving image on the fixed one, or give --init none to start "
             "from it as it is") if placed else "place the images with --initial-transform (landmarks: mmreg prealign)"  # fmt: skip
    return (
        "the start search found no pose and size at which the two images' tissue overlaps enough to compare: "
        f"{' and '.join(described)}. A spacing is probably wrong: give the right one in mm (--spacing-fixed / "
        f"--spacing-moving; mmreg prep sets it without resampling); if both are right, {place}"
    )
