"""A NIfTI file whose sform is sheared: ITK and Slicer then read its qform, a rotation, and the voxels land where the
sform does not put them, without a word (ITK prints "unexpected scales in sform" at most). A sheared NRRD is refused
(:func:`.file_checks.direction_problem`); the same grid written as NIfTI had registered on the qform's geometry (a
helper's sweep of wrong headers). A CT converted with its gantry tilt kept in the header is such a file.

Units: mm; the sform is in RAS, ITK's geometry in LPS.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from .errors import InputError
from .file_headers import file_suffix

# The most (mm) the sform may place a corner voxel away from the geometry read, before the file is refused.
MAX_SFORM_GAP_MM = 0.5
_F = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS on points (the one convention: core.transforms)


def nifti_sform(path: Path) -> np.ndarray | None:
    """The sform (4x4, voxel index -> RAS mm) of a NIfTI-1 or NIfTI-2 file when its sform_code is set and a
    qform is also given (without one, ITK refuses a sheared sform itself); else None."""
    suffix = file_suffix(path)
    if suffix not in (".nii", ".nii.gz"):
        return None
    try:
        with (gzip.open if suffix == ".nii.gz" else open)(path, "rb") as file:
            header = file.read(540)
    except (OSError, EOFError):
        return None
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            qform, sform = struct.unpack(order + "2h", header[252:256])
            rows = struct.unpack(order + "12f", header[280:328])
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            qform, sform = struct.unpack(order + "2i", header[344:352])
            rows = struct.unpack(order + "12d", header[400:496])
            break
    else:
        return None
    if sform <= 0 or qform <= 0:
        return None
    return np.vstack([np.reshape(rows, (3, 4)), [0.0, 0.0, 0.0, 1.0]])


def check_sform(path: Path, role: str, size, spacing, origin, direction) -> None:
    """Refuse a NIfTI file whose sform places a corner of its grid over MAX_SFORM_GAP_MM from the geometry ITK read
    (``size``, ``spacing`` mm, ``origin`` LPS mm, ``direction`` row-major LPS), naming the gap and the fix."""
    sform = nifti_sform(path)
    if sform is None or len(size) < 3:
        return
    corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    read = np.asarray(direction, float).reshape(-1, len(size))[:3, :3] @ (corners * np.asarray(spacing[:3])).T
    read = read.T + np.asarray(origin[:3], float)
    written = (corners @ sform[:3, :3].T + sform[:3, 3]) @ _F  # RAS -> LPS
    gap = float(np.linalg.norm(written - read, axis=1).max())
    if gap <= MAX_SFORM_GAP_MM:
        return
    raise InputError(
        f"{role} file {path} has two geometries that disagree: ITK and Slicer read its qform, and its sform (which "
        f"FSL, SPM and nibabel read) puts a corner of the image {gap:.1f} mm away, usually because the sform is "
        "sheared (a CT converted with its gantry tilt kept): resample the image onto a grid with right-angled axes "
        "(convert a tilted CT again with tilt correction, e.g. dcm2niix), or, if the qform is the true geometry, set "
        "the file's sform_code to 0"
    )
