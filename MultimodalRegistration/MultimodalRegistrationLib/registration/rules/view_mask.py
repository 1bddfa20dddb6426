"""An intraoperative ultrasound inside a head MR: sampled inside its fan, started from the headers' pose.

An iUS reads 0 outside its fan, inside an MR that has anatomy there. Sampled whole, the fan's zero exterior matched
against dark MR (background, the skull base) made wrong poses score higher than the truth: a helper's simulated brain
MR -> iUS pairs (Testing/Python/ius_data.py), mutual information 0.279 at a pose 76 mm off against 0.132 at the truth
over the whole image; inside the fan 0.084 against 0.209. And the any-pose search, which brings the foreground centres
together, put the fan at the head's centre (57-76 mm off). So an unguided run under ``--init auto`` with no initial
transform and no fixed mask, whose fixed image reads 0 outside a field of view that is a small part of the moving
anatomy and lies inside it at the headers' pose (a navigation system's), samples only that field of view and starts
from the headers' pose; a result far from it is warned (:mod:`.far_from_start`). With the user's fixed mask in
such a view (a fan mask), that mask is sampled and the start and the warning are the same (searched, a simulated
iUS 15 mm off at the headers had ended 86 mm off, unwarned). A prostate ultrasound in a pelvic
MR crop (16-34% of its anatomy) keeps the search and the whole image: sampled in its fan, 2 of 6 unguided TRUS-like
results 33-37 mm off were no longer warned. Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.errors import InputError
from ...core.images import corner_points, inside_fraction
from ...core.metric import shrink_to_spacing
from ...core.views import field_of_view
from ...engines.presets import Preset
from ..pose.centres import foreground_mask
from .masks import check_fixed_mask_size

# A field of view of at most this share of the moving foreground's volume is a small part of the moving anatomy
# (an intraoperative ultrasound in a head MR: 3%).
MAX_SHARE_OF_MOVING = 0.1
# A view filling more of the fixed box than this is an image with a few zero voxels, not one reading 0 outside a
# field of view (a fan fills a third of its box: ius_data.py). A 62 mm MR cube from inside a head, 1% zeros, had
# been started from the headers alone, 30 mm off, and ended there unwarned.
MAX_SHARE_OF_BOX = 0.9
# At the headers' pose, at least this share of the view lies in the moving foreground: the frames agree.
MIN_IN_ANATOMY = 0.9
MOVING_FOREGROUND_MM = 4.0  # the grid the moving foreground is measured on
IN_VIEW = "fixed_mask_in_view"  # a settings.sources key: the user's fixed mask lies in a small view, as above
SMALL_VIEW = (
    "the fixed image reads 0 outside a field of view that is a small part of the moving anatomy and lies in it at the "
    "headers' pose (an ultrasound inside an MR): started from the headers' pose alone"
)
VIEW_MASK_SOURCE = (
    "the image's own field of view (it reads 0 outside it; found automatically): started from the headers' pose"
)


def view_mask(fixed: sitk.Image, moving: sitk.Image, recipe: Preset) -> sitk.Image | None:
    """:func:`small_view_of` when ``recipe``'s sampler can use it; else None."""
    view = small_view_of(fixed, moving)
    if view is None:
        return None
    try:
        check_fixed_mask_size(recipe, fixed, view)
    except InputError:  # too small for the sampler: sampled whole, as before
        return None
    return view


def small_view_of(fixed: sitk.Image, moving: sitk.Image) -> sitk.Image | None:
    """Where ``fixed`` has data (UInt8 on its grid, :func:`.views.field_of_view`) when it reads 0 outside it (the
    view fills at most MAX_SHARE_OF_BOX of it), its box lies inside the moving image at the headers' pose, the view
    holds at most MAX_SHARE_OF_MOVING of the moving foreground's volume and MIN_IN_ANATOMY of it lies in that
    foreground; else None."""
    if float(sitk.GetArrayViewFromImage(fixed).min()) != 0.0 or inside_fraction(corner_points(fixed), moving) < 1.0:
        return None
    view = field_of_view(fixed, fixed)
    inside = np.argwhere(sitk.GetArrayViewFromImage(view) > 0)
    if not 0 < len(inside) <= MAX_SHARE_OF_BOX * view.GetNumberOfPixels():
        return None
    coarse = shrink_to_spacing(moving, MOVING_FOREGROUND_MM)
    anatomy = foreground_mask(coarse)
    volume = np.count_nonzero(sitk.GetArrayViewFromImage(anatomy)) * float(np.prod(coarse.GetSpacing()))
    if len(inside) * float(np.prod(fixed.GetSpacing())) > MAX_SHARE_OF_MOVING * volume:
        return None
    landed = sitk.GetArrayFromImage(sitk.Resample(anatomy, fixed, sitk.Transform(), sitk.sitkNearestNeighbor))
    return view if float(np.mean(landed[tuple(inside.T)] > 0)) >= MIN_IN_ANATOMY else None


def from_view(settings) -> bool:
    """Whether ``settings`` (:class:`..settings.RegistrationSettings`) carry a fixed mask :func:`view_mask` made, or
    the user's fixed mask in such a view (marked under IN_VIEW)."""
    sources = settings.sources or {}
    return sources.get("fixed_mask") == VIEW_MASK_SOURCE or bool(sources.get(IN_VIEW))
