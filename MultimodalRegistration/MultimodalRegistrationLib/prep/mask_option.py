"""The mask a prep option asks for on an image: none, the automatic foreground, or a labelmap file or image (with
the image's spacing fix when it is drawn on that image's file)."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from ..core.errors import InputError
from ..core.images import mask_coverage, read_image, same_grid
from ..core.mask_values import check_mask_geometry
from .downsample import read_header
from .masks import closing_radius_mm, covers_grid, foreground_mask, mask_from_labelmap
from .spacing import mask_with_spacing, metaimage_with_spacing
from .summary import ImageModality


def mask_for(option, image: sitk.Image, role: str, kind: ImageModality, steps: list, grid, spacing, folder: Path):
    """The mask ``option`` asks for on ``image``'s grid (None for none). ``kind``: the image's modality;
    ``grid``: the input's grid as stored, ``spacing``: the spacing given for it (a mask file on that grid
    gets the same fix); ``folder``: scratch for a header copy."""
    if option is None:
        return None
    if isinstance(option, str) and option == "auto":
        closing = closing_radius_mm(grid[0], spacing if spacing is not None else grid[1])  # the input's extent
        mask, record = foreground_mask(image, kind.modality, offset=kind.hu_offset, guessed=not kind.given,
                                       closing_mm=closing)  # fmt: skip
        why = "automatic foreground: the metric sees the anatomy, not the air"
        steps.append({"step": "mask", "image": role, "why": why, **record})
        return mask
    source = None if isinstance(option, sitk.Image) else str(option)
    said = f"{role} mask" if source is None else f"{role} mask ({Path(source).name})"
    patched = None
    if source is not None and spacing is not None:
        # a mask drawn on a MetaImage stack whose header spacing is 0 gets the stack's fix; ITK cannot read it as
        # stored (a helper's prep sweep: refused, naming the option the user had given)
        patched = metaimage_with_spacing(source, read_header(source, said, spacing_given=True).spacing, spacing, folder)
    labelmap = option if isinstance(option, sitk.Image) else read_image(patched or option, said)
    check_mask_geometry(labelmap, *grid[:4], said)
    if spacing is not None:
        labelmap, fixed = mask_with_spacing(labelmap, grid, spacing, role)
        if fixed or patched:
            steps.append({"step": "set spacing", "image": f"{role} mask", "why": f"the mask is on the {role} image "
                          "file's grid: the same spacing fix (no resampling)", "to_mm": list(spacing),
                          "source": source})  # fmt: skip
    try:
        mask = mask_from_labelmap(labelmap, image, role=said)
    except InputError:
        cropped = any(step["step"] == "crop" and step["image"] == role for step in steps)
        if not cropped or not covers_grid(labelmap, (grid[0], spacing or grid[1], *grid[2:])):  # the fixed spacing
            raise
        raise InputError(f"the {role} mask lies outside the cropped {role} image: the crop to the common region (or "
                         "the region of interest) cut it away; widen --margin or --roi, or do not crop") from None
    moved = "" if same_grid(labelmap, image) else ", resampled onto the image's grid (nearest neighbour)"
    steps.append({"step": "mask", "image": role, "why": f"from the given labelmap (all nonzero labels){moved}",
                  "source": source, "coverage": round(mask_coverage(mask), 4)})  # fmt: skip
    return mask
