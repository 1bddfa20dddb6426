"""An optional reference volume (an MRI of the block or organ) that ties every section to one frame: it removes
the slow drift and bend that registering neighbours alone leaves (anatomy that changes along the stack).

Matching planes: section k lies on the reference plane at depth ``offset_mm + k * section_mm`` along the
reference's third voxel axis, measured from its first plane (resample the MRI first so that this axis is the
cutting direction). The plane is interpolated linearly between the reference's slices.

Plane frame (mm): the reference's voxel (column i, row j) is at ``(i sx, j sy)``, after the in-plane axes whose
direction points against LPS's (their largest component negative) are reversed (``flipped_axes``): a reference
stored with one axis reversed, physically the same image (as RAS-stored NIfTI often is), gave a mirrored plane
that no rigid pose fits (the stack 0.49 / 1.30 mm off against 0.14 / 0.37). Its origin is not used. The solve holds the reference as one more "section" whose pose maps the volume's section plane to this
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
    flipped_axes: tuple[int, ...] = ()  # in-plane voxel axes reversed to point along LPS (see the module notes)
    index_to_lps: np.ndarray | None = None  # 4x4, the image's voxel index (as stored) -> LPS mm

    def volume_to_lps(self, reference_from_volume: np.ndarray) -> np.ndarray:
        """4x4: the stacked volume's points (LPS mm of its header: origin 0, spacing px, px, section spacing) ->
        the reference image's (LPS mm), from ``reference_from_volume`` (3x3, the plane frame's ``x_ref = M x_out``).
        Section k lies at the depth ``offset_mm + z`` along the reference's third axis, z = k * section spacing."""
        in_plane = np.eye(4)
        in_plane[:2, :2], in_plane[:2, 3] = reference_from_volume[:2, :2], reference_from_volume[:2, 2]
        in_plane[2, 3] = self.offset_mm
        to_index = np.diag([1.0 / s for s in self.spacing] + [1.0])
        unflip = np.eye(4)
        for axis in self.flipped_axes:
            unflip[axis, axis], unflip[axis, 3] = -1.0, self.voxels.shape[2 - axis] - 1.0
        return self.index_to_lps @ unflip @ to_index @ in_plane

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
    spacing = tuple(float(s) for s in image.GetSpacing())
    depth = (image.GetSize()[2] - 1) * spacing[2]
    last = offset_mm + (count - 1) * section_mm
    if last > depth + DEPTH_TOLERANCE * spacing[2]:
        raise InputError(
            f"the {count} sections {section_mm:g} mm apart from {offset_mm:g} mm reach {last:g} mm, but the reference "
            f"{path.name} is {depth:g} mm deep along its third axis: check --section-spacing and --reference-offset, "
            "or resample the reference so that its third axis is the cutting direction"
        )
    voxels = sitk.GetArrayFromImage(to_gray(image))
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    flipped = tuple(axis for axis in (0, 1) if direction[np.argmax(np.abs(direction[:, axis])), axis] < 0)
    for axis in flipped:  # array order z, y, x
        voxels = np.flip(voxels, axis=2 - axis)
    return Reference(np.ascontiguousarray(voxels), spacing, float(offset_mm), float(section_mm), str(path), flipped,
                     index_to_physical_matrix(image))  # fmt: skip
