"""An ultrasound's fan as the fixed mask of an unguided run, when the user gave none.

An intraoperative ultrasound reads 0 outside its fan, inside a head MR that has anatomy there. Sampled whole, the
fan's zero exterior matched against dark MR (background, the skull base) made wrong poses score higher than the
truth: a helper's simulated brain MR -> iUS pairs, mutual information 0.279 at a pose 76 mm off against 0.132 at
the truth over the whole image; inside the fan 0.084 against 0.209. So when the fixed image reads 0 outside a field
of view, is small beside the moving anatomy and, where the run starts, lies inside the moving image, the engine
samples only that field of view (the weak-result check already reads such an image inside it), from the headers' pose: the any-pose search, which
brings the foreground centres together, put the fan at the head's centre (57-76 mm off). An MR head against
a CT head is not small beside it: there the zeros are air that the CT shows too, and they are sampled as before.
Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.images import corner_points
from ...core.metric import shrink_to_spacing
from ...core.transforms import Transform
from ...core.views import field_of_view
from ..pose.centres import foreground_mask

# A field of view holding more of the fixed image than this leaves out too little to matter.
MAX_VIEW_SHARE = 0.9
# A field of view of at most this share of the moving foreground's volume is a small view inside a larger scan.
MAX_SHARE_OF_MOVING = 0.5
# At most this share, a view is a small part of the moving anatomy (an intraoperative ultrasound in a head MR: 3%),
# and the run starts from the headers' pose alone. Above it (a prostate ultrasound in a pelvic MR crop: 16-34%), the
# any-pose search, which brings the foreground centres together, still finds the start.
HEADER_START_SHARE = 0.1
MOVING_FOREGROUND_MM = 4.0  # the grid the moving foreground is measured on
VIEW_MASK_SOURCE = "the fixed image's field of view (it reads 0 outside it; found automatically)"
SMALL_VIEW_SOURCE = VIEW_MASK_SOURCE[:-1] + ", a small part of the moving anatomy: started from the headers' pose)"


def view_mask(fixed: sitk.Image, moving: sitk.Image, start: Transform | None) -> tuple[sitk.Image, float] | None:
    """Where ``fixed`` has data (UInt8 on its grid, :func:`.views.field_of_view`) when it reads 0 outside it, its
    box lies inside the moving image at ``start`` (linear, fixed -> moving; None: the headers' pose), the view
    leaves out more than 1 - MAX_VIEW_SHARE of it and holds at most MAX_SHARE_OF_MOVING of the moving foreground's
    volume (with that share); else None."""
    if float(sitk.GetArrayViewFromImage(fixed).min()) != 0.0:
        return None
    if start is not None and not start.is_linear:
        return None
    corners = corner_points(fixed) if start is None else start.transform_points(corner_points(fixed))
    for corner in corners:
        index = np.asarray(moving.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in corner)))
        if np.any(index < -0.5) or np.any(index > np.asarray(moving.GetSize()) - 0.5):
            return None
    view = field_of_view(fixed, fixed)
    count = float(np.count_nonzero(sitk.GetArrayViewFromImage(view)))
    if not 0.0 < count <= MAX_VIEW_SHARE * float(np.prod(fixed.GetSize())):
        return None
    coarse = shrink_to_spacing(moving, MOVING_FOREGROUND_MM)
    anatomy = np.count_nonzero(sitk.GetArrayViewFromImage(foreground_mask(coarse))) * np.prod(coarse.GetSpacing())
    share = count * float(np.prod(fixed.GetSpacing())) / max(float(anatomy), 1e-9)
    return (view, share) if share <= MAX_SHARE_OF_MOVING else None


def header_start_only(settings) -> bool:
    """Whether ``settings`` (:class:`..settings.RegistrationSettings`) carry a fixed mask :func:`view_mask` made of
    a view that is a small part of the moving anatomy (HEADER_START_SHARE)."""
    return (settings.sources or {}).get("fixed_mask") == SMALL_VIEW_SOURCE
