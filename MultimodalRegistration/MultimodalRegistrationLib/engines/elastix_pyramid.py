"""elastix's image pyramids kept from shrinking a thin image to a slice or two.

elastix halves every axis alike at each coarser level (a factor 4 at the first of 3 levels). A slab of 7 slices
then has 1 slice at that level: elastix stops with "Too many samples map outside moving image buffer", or
crashes (signal 11 in its mutual information's derivative, itk-elastix 0.25.4). An axis is shrunk only while
it keeps MIN_LEVEL_VOXELS voxels; the other axes keep elastix's factors. A preset's own schedule is kept.
"""

from __future__ import annotations

# ITK's recursive Gaussian smoothing needs 4 voxels along an axis. At 8, a 16-slice moving MR box whose run
# worked (a head mask, an oblique 110 x 100 x 80 mm box) lost its samples: only thinner axes are changed.
MIN_LEVEL_VOXELS = 4
SHRINKING_PYRAMIDS = ("RecursiveImagePyramid", "ShrinkingImagePyramid")
ELASTIX_LEVELS = 3  # elastix's own NumberOfResolutions when a map gives none


def level_factors(levels: int, size: tuple[int, ...]) -> list[list[int]]:
    """Each level's shrink factor per axis (coarsest level first) for an image of ``size`` voxels: elastix's
    2^(levels-1-level), capped so that every axis keeps at least MIN_LEVEL_VOXELS voxels (or all it has)."""
    factors = []
    for level in range(levels):
        default = 2 ** (levels - 1 - level)
        row = []
        for voxels in size:
            factor = default
            while factor > 1 and voxels / factor < MIN_LEVEL_VOXELS:
                factor //= 2
            row.append(factor)
        factors.append(row)
    return factors


def thin_axis_schedules(
    parameters: dict[str, list[str]], fixed_size: tuple[int, ...], moving_size: tuple[int, ...]
) -> dict[str, list[str]]:
    """The pyramid schedule entries to add to one parameter map so that neither image's pyramid shrinks a thin
    axis below MIN_LEVEL_VOXELS; none for a side whose schedule the map gives, or where nothing would change.
    Unguided runs only (engines/elastix.py): a guided run's several pyramids per side are left as they are."""
    if "ImagePyramidSchedule" in parameters:
        return {}
    levels = int(float(parameters.get("NumberOfResolutions", [str(ELASTIX_LEVELS)])[0]))
    entries = {}
    for side, size in (("Fixed", fixed_size), ("Moving", moving_size)):
        if f"{side}ImagePyramidSchedule" in parameters:
            continue
        pyramid = parameters.get(f"{side}ImagePyramid", [f"{side}SmoothingImagePyramid"])[0]
        if not pyramid.endswith(SHRINKING_PYRAMIDS):
            continue
        factors = level_factors(levels, size)
        if factors != level_factors(levels, (10**9,) * len(size)):
            entries[f"{side}ImagePyramidSchedule"] = [str(f) for row in factors for f in row]
    return entries
