"""Whether the two segmentations were given the wrong way round, read from the grids they lie on and where their
segments lie (LPS mm).

A segmentation usually lies on its own image's voxel grid (Slicer's segment editor draws on the source volume's).
Each on the other image's grid is refused: given the wrong way round, a pair had run to 25 mm off (a helper's
sweep). The grid alone does not prove a swap, though: a segmentation exported with the other volume as its
reference geometry lies there too, correct where it is (another sweep: a TRUS at 0.4 mm whose gland was saved on
the MR's 1.5 mm lattice, the MR's on the TRUS's, was told to swap them, which would have made the error). So the
refusal names both causes and both fixes, unless the segments also lie outside their own images: that only a swap
explains.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...core.errors import InputError
from ...core.images import index_to_physical_matrix, inside_fraction, same_grid, same_lattice

MIN_INSIDE = 0.5  # of a segmentation's foreground points inside its own image: where it belongs
SAMPLED_VOXELS = 2000


def lies_on(segmentation: sitk.Image, image: sitk.Image, other: sitk.Image) -> bool:
    """Whether ``segmentation`` lies on ``image``'s voxel grid and not on ``other``'s; or, saved cropped to its
    contents (as Slicer can), on ``image``'s lattice and not ``other``'s, when the two images' lattices differ."""
    if same_grid(segmentation, image) and not same_grid(segmentation, other):
        return True
    return (not same_lattice(image, other) and same_lattice(image, segmentation)
            and not same_lattice(other, segmentation))  # fmt: skip


def _placed_in(segmentation: sitk.Image, image: sitk.Image) -> bool:
    """Whether most of ``segmentation``'s foreground lies inside ``image``'s box."""
    array = sitk.GetArrayViewFromImage(segmentation)
    voxels = np.argwhere(array.any(axis=-1) if segmentation.GetNumberOfComponentsPerPixel() > 1 else array != 0)
    if len(voxels) == 0:
        return True
    voxels = voxels[:: max(1, len(voxels) // SAMPLED_VOXELS), ::-1].astype(float)  # (i, j, k)
    matrix = index_to_physical_matrix(segmentation)
    return inside_fraction(voxels @ matrix[:3, :3].T + matrix[:3, 3], image) >= MIN_INSIDE


def _same_voxels(a: sitk.Image, b: sitk.Image) -> bool:
    """Whether two labelmaps hold the same labels at the same places: on one grid, voxel for voxel; or, one saved
    cropped to its contents (on the other's lattice), the same labelled voxels (a helper's sweep: the same gland
    given whole for one image and cropped for the other ran 23 mm off, 'Dice 1.00 -> 1.00')."""
    if same_grid(a, b):
        return bool(np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)))
    if a.GetNumberOfComponentsPerPixel() != 1 or b.GetNumberOfComponentsPerPixel() != 1 or not same_lattice(a, b):
        return False
    counts = [int(np.count_nonzero(sitk.GetArrayViewFromImage(image))) for image in (a, b)]
    if counts[0] != counts[1] or counts[0] == 0:
        return False
    on_a = sitk.GetArrayFromImage(sitk.Resample(b, a, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    return bool(np.count_nonzero(on_a) == counts[0] and np.array_equal(on_a, sitk.GetArrayViewFromImage(a)))


def swapped_segmentations(
    fixed_segmentation: sitk.Image | None, moving_segmentation: sitk.Image | None, fixed: sitk.Image,
    moving: sitk.Image,
) -> str | None:  # fmt: skip
    """Refuses (InputError naming the fix) one segmentation given for both images, and segmentations that each lie
    on the other image's grid (see the module notes); a warning when one lies on the other image's grid; None when
    the images share a grid, or each segmentation lies on its own image's grid or on neither."""
    if fixed_segmentation is None or moving_segmentation is None or same_grid(fixed, moving):
        return None
    if any(segmentation.GetDimension() != 3 for segmentation in (fixed_segmentation, moving_segmentation)):
        return None  # refused where it is read as a labelmap (it had ended in a traceback here: a helper's sweep)
    if _same_voxels(fixed_segmentation, moving_segmentation):
        raise InputError(
            "the fixed and moving segmentations hold the same labelled voxels (one perhaps saved cropped), while the "
            "images lie on two grids: the same segmentation was given for both; give the one made on each image "
            "(--fixed-segmentation on the fixed image, --moving-segmentation on the moving one)"
        )
    fixed_on_moving = lies_on(fixed_segmentation, moving, fixed)
    moving_on_fixed = lies_on(moving_segmentation, fixed, moving)
    if fixed_on_moving and moving_on_fixed:
        misplaced = not (_placed_in(fixed_segmentation, fixed) and _placed_in(moving_segmentation, moving))
        said = ("the fixed segmentation lies on the moving image's voxel grid and the moving segmentation on the fixed "
                "image's")  # fmt: skip
        swap = ("give the segmentation made on the fixed image as the fixed segmentation (--fixed-segmentation) and "
                "the moving image's as the moving one")  # fmt: skip
        if misplaced:
            raise InputError(f"{said}, outside their own images: they were given the wrong way round; {swap}")
        raise InputError(
            f"{said}: either they were given the wrong way round ({swap}), or each was saved with the other image "
            "as its reference geometry, right as given but not to be told from a swap by the grids: then resample "
            "each onto its own image first (Slicer: Segmentations module, export to a labelmap with that image as "
            "the reference volume)"
        )
    for role, other, wrong in (("fixed", "moving", fixed_on_moving), ("moving", "fixed", moving_on_fixed)):
        if wrong:
            return (f"the {role} segmentation lies on the {other} image's voxel grid, not the {role} image's: check that "
                    f"it was made on the {role} image")  # fmt: skip
    return None
