"""The size of a thin slab against a whole image, for presets that scale: the rigid search
(:func:`.anypose.search_any_pose`) run with the moving image brought to each of SIZES about its centre, and the size
whose best pose agrees best kept (see MARGIN).
The scaled search (:mod:`.scale_search`) reads a slab's volume and extents as those of the whole anatomy (a 15 mm CT
slab of the phantom head read 2-3 times smaller than the MR), and its overlap scores find little in a few slices.

Measured (a 40 mm skull-base CT slab from MNI, generated with its truth, as the fixed image against the head MR; the
slab at 1.0, 0.8, 0.65 and 0.5 of its size): the rigid search's mutual information peaked at the true size each time
(0.93-1.09 nats at the size nearest the truth, under 0.40 at sizes 19% or more off it, 0.07-0.08 at its own), under
1 s a size. Only for a fixed slab: a moving slab leaves most fixed samples off it at any size (the Visible Human
slab's scores 0.005-0.056, highest at 0.5 for its true 1), and linear presets register it the other way round too
(:mod:`..other_way`). Poses map fixed to moving points (LPS mm)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import SimpleITK as sitk

from ...core.choices import FULL_ROTATION_DEG
from ...core.images import physical_center, scaled_image
from ...core.transforms import Transform
from .anypose import AnyPoseResult, search_any_pose
from .scale_seed import scale_about

SIZES = tuple(float(2.0 ** (step / 8)) for step in range(-8, 9))  # moving / fixed size, 0.5-2 in steps of 9%
# Another size is kept only at this many times the information at the images' own size: the real Visible Human 8 mm
# CT slab (one cadaver, size 1) scores 0.68-0.93 nats from 0.65 to 2 times (1.19 best, 1.08 times its own size's),
# the skull-base slab at its true size over 10 times its own size's.
MARGIN = 1.5


def search_slab_size(
    fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None, prior: Transform | None = None,
    max_rotation_deg: float = FULL_ROTATION_DEG, seed: int = 0,
) -> AnyPoseResult:  # fmt: skip
    """The rigid search's start at the best of SIZES (see the module notes): its ``transform`` scales by the size
    found, ``scale`` is that size (moving / fixed; None at the images' own size, which then runs as the rigid search's
    start does), ``scales`` the sizes tried; ``metric`` and the counts are the kept size's, ``seconds`` all of them."""
    started = time.perf_counter()
    center = physical_center(moving)
    best, best_size, own = None, 1.0, None
    for size in SIZES:
        to_resized = scale_about(1.0 / size, center)  # moving points -> the moving image brought to size
        resized_prior = None if prior is None else Transform.from_matrix(to_resized @ prior.matrix)
        found = search_any_pose(
            fixed, scaled_image(moving, 1.0 / size, center), fixed_mask, scaled_image(moving_mask, 1.0 / size, center),
            prior=resized_prior, max_rotation_deg=max_rotation_deg, check_mirror=size == 1.0, seed=seed,
        )  # fmt: skip  # a mirror verdict at the images' own size only, as the rigid search gives it
        own = found if size == 1.0 else own
        if best is None or found.metric > best.metric:
            best, best_size = found, size
    if best.metric < MARGIN * own.metric:  # its own size, unless another is clearly better
        best, best_size = own, 1.0
    back = np.linalg.inv(scale_about(1.0 / best_size, center))
    return replace(
        best,
        transform=Transform.from_matrix(back @ best.transform.matrix),
        centre_transform=Transform.from_matrix(back @ best.centre_transform.matrix),
        scale=None if best_size == 1.0 else best_size, scales=[round(size, 4) for size in SIZES],
        seconds=time.perf_counter() - started,
    )
