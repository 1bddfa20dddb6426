"""Whether an image's physical size (voxels x spacing) is plausible for a medical or microscopy image, and which
spacing would make it so (a file that stores none, micrometres or metres written as millimetres)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

# Largest plausible physical extent of a medical or microscopy image along one axis (mm). A whole-body CT is about
# 2 m long; anything wider almost always means wrong spacing units (or none stored: readers then use 1 mm).
MAX_PLAUSIBLE_EXTENT_MM = 2000.0
# Narrower than this (mm) along an axis of many voxels, an image is a spacing stored in metres.
MIN_PLAUSIBLE_EXTENT_MM = 0.01
# Pixel sizes of a 6.5 um camera pixel behind 1x .. 40x objectives (mm): light-sheet and slide scanners.
MICROSCOPY_SPACINGS_MM = tuple(0.0065 / m for m in (1, 2, 4, 5, 10, 20, 40))
# A microscopy specimen (a cleared organ, a slide's section) is at most about this wide (mm).
SPECIMEN_MM = 10.0
# Two images whose largest sides differ more than this many times are not one anatomy at any spacing a scan or a
# slide states rightly: a 3.25 um stack stated in mm against an MR is 308 times (a helper's sweep: it ran, MI
# 0.000 -> 0.000, exit 0). A block against a whole head, a cord against a spine: 5-40 times.
MAX_EXTENT_RATIO = 100.0
# An axis with under 1/SLAB_SHARE of both other axes' voxels is a stack's slice axis (a slab).
SLAB_SHARE = 4


@dataclass
class SpacingCheck:
    """Whether an image's physical size is plausible and, if not, which spacing would make it so."""

    plausible: bool
    message: str = ""
    suggested_spacing: tuple[float, float, float] | None = None
    alternatives: list[dict] = field(default_factory=list)  # {"spacing_mm", "extent_mm", "why"}

    def describe(self) -> dict:
        return {"plausible": self.plausible, "message": self.message,
                "suggested_spacing_mm": list(self.suggested_spacing) if self.suggested_spacing else None,
                "alternatives": self.alternatives}  # fmt: skip


def reads_as_no_spacing(spacing) -> bool:
    """Whether ``spacing`` (mm, one value or one per axis) is 1 mm throughout: what readers use when a file (a TIFF,
    a PNG stack) stores no spacing."""
    return bool(np.allclose(spacing, 1.0))


def _format_spacing(spacing) -> str:
    return ",".join(f"{s:.6g}" for s in spacing)


def _candidate(spacing: np.ndarray, size: np.ndarray, why: str) -> dict:
    spacing_mm = [float(f"{s:.6g}") for s in spacing]
    return {"spacing_mm": spacing_mm, "extent_mm": [round(float(e), 3) for e in spacing * size], "why": why}


def check_spacing(image_or_size, spacing=None, role: str = "image") -> SpacingCheck:
    """Check the physical extent (size x spacing) of an image, or of a size and spacing from a header.

    Implausible: wider than 2 m along an axis (unit mix-up, or a file that stores no spacing so
    that readers use 1 mm), or narrower than 0.01 mm along an axis of 16 voxels or more
    (metres). The suggestion keeps the image's shape of voxels and gives a plausible size.
    """
    if isinstance(image_or_size, sitk.Image):
        size = np.asarray(image_or_size.GetSize()[:3], float)
        spacing = np.asarray(image_or_size.GetSpacing()[:3], float)
    else:
        size, spacing = np.asarray(image_or_size, float), np.asarray(spacing, float)
    extent = size * spacing
    too_wide = extent > MAX_PLAUSIBLE_EXTENT_MM
    too_narrow = (extent < MIN_PLAUSIBLE_EXTENT_MM) & (size >= 16)
    if not (too_wide.any() or too_narrow.any()):
        return SpacingCheck(True)
    axis = int(np.argmax(too_wide)) if too_wide.any() else int(np.argmax(too_narrow))
    alternatives, slab = [], ""
    if too_wide.any():
        if reads_as_no_spacing(spacing):
            for pixel in MICROSCOPY_SPACINGS_MM:
                alternatives.append(_candidate(np.full(3, pixel), size, f"a microscope pixel of {pixel * 1000:.4g} um"))
            fitting = [c for c in alternatives if max(c["extent_mm"]) <= SPECIMEN_MM]
            best = fitting[0] if fitting else alternatives[-1]
            reason = "spacing 1 mm on every axis usually means the file stores no spacing"
            # A slab's few slices are rarely a pixel apart (a helper's 8-slice stack at 0.05 x 0.05 x 0.5 mm).
            slices = int(np.argmin(size))
            if size[slices] * SLAB_SHARE < np.sort(size)[1]:  # one thin axis: a slab, not a rod
                slab = (f"; along axis {slices} ({int(size[slices])} slices) give the microscope's slice step, "
                        "often larger than its pixel")  # fmt: skip
        else:
            alternatives.append(_candidate(spacing / 1000.0, size, "micrometres written as millimetres"))
            best = alternatives[0]
            reason = "the spacing looks like micrometres written as millimetres"
        problem = f"spacing {spacing[axis]:g} mm gives a {extent[axis] / 1000:.2f} m wide image"
    else:
        alternatives.append(_candidate(spacing * 1000.0, size, "metres written as millimetres"))
        best = alternatives[0]
        reason = "the spacing looks like metres written as millimetres"
        problem = f"spacing {spacing[axis]:g} mm gives a {extent[axis] * 1000:.3g} um wide image"
    suggestion = tuple(best["spacing_mm"])
    message = (
        f"{role}: {problem} ({int(size[axis])} voxels along axis {axis}): set the true spacing; {reason}, "
        f"for example {_format_spacing(suggestion)} mm ({best['why']}: "
        f"{' x '.join(f'{e:.3g}' for e in best['extent_mm'])} mm){slab}"
    )
    return SpacingCheck(False, message, suggestion, alternatives)


def sizes_apart_message(sizes: dict, spacings: dict) -> str | None:
    """Why two images (``sizes`` and ``spacings`` by role, "fixed" and "moving": voxels and mm per axis) cannot be
    one anatomy: their largest sides differ over MAX_EXTENT_RATIO times, a spacing in the wrong unit; else None."""
    sides = {role: float((np.asarray(sizes[role], float) * np.asarray(spacings[role], float)).max()) for role in sizes}
    small, large = sorted(sides, key=sides.get)
    if sides[small] <= 0 or sides[large] / sides[small] <= MAX_EXTENT_RATIO:
        return None
    stated = {role: "x".join(f"{v:g}" for v in spacings[role]) for role in spacings}
    # Either the small image's spacing is in metres or the large one's in micrometres: both readings, with numbers.
    readings = [f"{role} spacing is in {unit}, it is {'x'.join(f'{v * factor:.6g}' for v in spacings[role])} mm "
                f"({sides[role] * factor:.3g} mm across)"
                for role, unit, factor in ((small, "metres", 1000.0), (large, "micrometres", 0.001))]  # fmt: skip
    return (
        f"the {small} image is {sides[small]:.3g} mm across and the {large} image {sides[large]:.3g} mm: "
        f"{sides[large] / sides[small]:.0f} times larger, more than any one anatomy at its right spacing. A spacing is "
        f"likely in the wrong unit (fixed {stated['fixed']} mm, moving {stated['moving']} mm): if the "
        f"{readings[0]}; if the {readings[1]}. Give the right one in mm (--spacing-fixed / --spacing-moving), or "
        "place the images with --initial-transform"
    )
