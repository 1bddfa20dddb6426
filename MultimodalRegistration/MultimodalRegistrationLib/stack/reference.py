"""An optional reference volume (an MRI of the block or organ) that ties every section to one frame: it removes
the slow drift and bend that registering neighbours alone leaves (anatomy that changes along the stack).

Matching planes: section k lies on the reference plane at depth ``offset_mm + k * section_mm`` along the
reference's third voxel axis, measured from its first plane (resample the MRI first so that this axis is the
cutting direction). The plane is interpolated linearly between the reference's slices.

Plane frame (mm): the reference's plane is laid out as Slicer's standard view of it shows it (``core.picture``:
columns to the right, rows down), so that sections photographed as that view shows the plane meet it unmirrored;
its picture's pixel (column i, row j) is at ``(i sx, j sy)``. A reference stored with an in-plane axis reversed
(``flipped_axes``, as RAS-stored NIfTI often is) or its two in-plane axes swapped (``axes_swapped``), physically
the same image, gives the same plane; a mirrored plane had left the stack 0.49 / 1.30 mm off against 0.14 / 0.37,
and swapped axes 87 mm. A coronal or sagittal reference had been turned to point its rows superior: upside down
against the view. Its origin is not used. The solve holds the reference as one more "section" whose pose maps the volume's section plane to this
frame; the stack summary reports it (``reference_from_volume``, 3x3, ``x_ref = M x_out``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.images import index_to_physical_matrix
from ..core.images2d import to_gray
from ..core.picture import picture_axes
from .sections import SectionReport, WorkingSection, working_section

DEPTH_TOLERANCE = 0.5  # of a reference slice: a section this far beyond the first or last plane still matches


@dataclass
class Reference:
    """The reference's voxels (float32 array z, y, x), its voxel size (mm: x, y, z) and where section 0 lies."""

    voxels: np.ndarray
    spacing: tuple[float, float, float]
    offset_mm: float
    section_mm: float
    path: str = ""  # where it was read from (for the record)
    flipped_axes: tuple[int, ...] = ()  # stored in-plane voxel axes reversed to show the plane as Slicer does
    index_to_lps: np.ndarray | None = None  # 4x4, the image's voxel index (as stored) -> LPS mm
    axes_swapped: bool = False  # the picture's columns run along the stored rows

    def volume_to_lps(self, reference_from_volume: np.ndarray) -> np.ndarray:
        """4x4: the stacked volume's points (LPS mm of its header: origin 0, spacing px, px, section spacing) ->
        the reference image's (LPS mm), from ``reference_from_volume`` (3x3, the plane frame's ``x_ref = M x_out``).
        Section k lies at the depth ``offset_mm + z`` along the reference's third axis, z = k * section spacing."""
        in_plane = np.eye(4)
        in_plane[:2, :2], in_plane[:2, 3] = reference_from_volume[:2, :2], reference_from_volume[:2, 2]
        in_plane[2, 3] = self.offset_mm
        to_index = np.diag([1.0 / s for s in self.spacing] + [1.0])
        stored = np.eye(4)  # the picture's voxel index (column, row, slice) -> the stored one
        if self.axes_swapped:
            stored[:2, :2] = [[0.0, 1.0], [1.0, 0.0]]
        picture_size = (self.voxels.shape[2], self.voxels.shape[1])
        for axis in self.flipped_axes:
            along = 1 - axis if self.axes_swapped else axis  # the picture's axis that runs along stored ``axis``
            stored[axis, along], stored[axis, 3] = -1.0, picture_size[along] - 1.0
        return self.index_to_lps @ stored @ to_index @ in_plane

    def depth_index(self, section: int) -> float:
        """The continuous slice index of section ``section``'s plane."""
        return (self.offset_mm + section * self.section_mm) / self.spacing[2]

    def plane(self, section: int) -> sitk.Image:
        """Section ``section``'s plane: 2D float32, square pixels of the finer in-plane spacing, origin (0, 0)."""
        z = min(max(self.depth_index(section), 0.0), len(self.voxels) - 1.0)
        low = math.floor(z)
        high = min(low + 1, len(self.voxels) - 1)
        weight = z - low
        plane = sitk.GetImageFromArray(
            ((1 - weight) * self.voxels[low] + weight * self.voxels[high]).astype(np.float32)
        )
        plane.SetSpacing(self.spacing[:2])
        if not math.isclose(self.spacing[0], self.spacing[1], rel_tol=1e-3):
            pixel = min(self.spacing[:2])
            size = [max(1, round((n - 1) * s / pixel) + 1) for n, s in zip(plane.GetSize(), self.spacing[:2])]
            plane = sitk.Resample(plane, size, sitk.Transform(), sitk.sitkLinear, (0.0, 0.0), (pixel, pixel))
        return plane

    def working_plane(self, section: int, scale: float = 1.0) -> WorkingSection | None:
        """The plane's working image (as a section's, ``scale`` times larger), or None when it holds no tissue."""
        return working_section(self.plane(section), SectionReport(section, "reference"), scale)


def read_reference(path: str | os.PathLike, section_mm: float, offset_mm: float, count: int) -> Reference:
    """Read and check the reference for ``count`` sections ``section_mm`` apart from ``offset_mm`` (see the module
    notes). InputError naming the fix for an unreadable, 2D or too short reference or a negative offset."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--reference {path} does not exist: give the reference volume (NRRD, NIfTI) or leave it out")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"--reference {path} cannot be read: save it as NRRD or NIfTI") from None
    if image.GetDimension() != 3 or image.GetSize()[2] < 2:
        raise InputError(f"--reference {path} is not a 3D volume ({image.GetSize()}): give a volume of two or more "
                         "slices whose third axis is the cutting direction")  # fmt: skip
    if not (math.isfinite(offset_mm) and offset_mm >= 0):
        raise InputError(f"--reference-offset {offset_mm} mm: give the depth of the first section in the reference "
                         "(mm from its first slice, 0 or more)")  # fmt: skip
    stored_spacing = tuple(float(s) for s in image.GetSpacing())
    depth = (image.GetSize()[2] - 1) * stored_spacing[2]
    last = offset_mm + (count - 1) * section_mm
    if last > depth + DEPTH_TOLERANCE * stored_spacing[2]:
        raise InputError(
            f"the {count} sections {section_mm:g} mm apart from {offset_mm:g} mm reach {last:g} mm, but the reference "
            f"{path.name} is {depth:g} mm deep along its third axis: check --section-spacing and --reference-offset, "
            "or resample the reference so that its third axis is the cutting direction"
        )
    index_to_lps = index_to_physical_matrix(image)
    (across, leftward), (down, upward) = picture_axes(index_to_lps[:3, :3])
    voxels = sitk.GetArrayFromImage(to_gray(image))  # z, y, x
    if across == 1:
        voxels = voxels.transpose(0, 2, 1)
    if leftward:
        voxels = voxels[:, :, ::-1]
    if upward:
        voxels = voxels[:, ::-1, :]
    flipped = tuple(sorted(axis for axis, reversed_ in ((across, leftward), (down, upward)) if reversed_))
    spacing = (stored_spacing[across], stored_spacing[down], stored_spacing[2])
    return Reference(np.ascontiguousarray(voxels), spacing, float(offset_mm), float(section_mm), str(path), flipped,
                     index_to_lps, across == 1)  # fmt: skip
