"""A NIfTI file whose sform and qform disagree: ITK and Slicer read the qform whenever the sform is sheared (or, in
ITK 5.4, for some sform codes), and the voxels land where the sform does not put them, without a word (ITK prints
"unexpected scales in sform" at most). A sheared NRRD is refused (:func:`.file_checks.direction_problem`); the same
grid written as NIfTI had registered on the qform's geometry (a helper's sweep of wrong headers). A CT converted with
its gantry tilt kept in the header is such a file. NIfTI-2 is read at the standard's offsets (:func:`.file_headers.
nifti_header`) but untested: this ITK build did not read a hand-made NIfTI-2 file.

Units: mm; the sform is in RAS, ITK's geometry in LPS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError
from .file_headers import file_suffix, nifti_header

# The most (mm) the sform may place a corner voxel away from the geometry read, before the file is refused.
MAX_SFORM_GAP_MM = 0.5
SHEAR_TOLERANCE = 1e-3  # largest cosine between two of the sform's axes that counts as right-angled
# RAS <-> LPS on points, as core.transforms.lps_ras_points does; not imported from there: core.transforms imports the
# file checks, which import this module, and the module contract refuses that cycle.
_F = np.diag([-1.0, -1.0, 1.0])


def nifti_sform(path: Path) -> np.ndarray | None:
    """The sform (4x4, voxel index -> RAS mm, scaled from the file's unit as ITK scales it) of a NIfTI-1 or NIfTI-2
    file when its sform_code is set and a qform is also given (without one, ITK refuses a sheared sform itself);
    else None."""
    if file_suffix(path) not in (".nii", ".nii.gz"):
        return None
    header = nifti_header(path)
    if header is None or header.sform_code <= 0 or header.qform_code <= 0 or header.srow is None:
        return None
    return np.vstack([np.reshape(header.srow, (3, 4)) * header.unit_mm, [0.0, 0.0, 0.0, 1.0]])


def _sheared(sform: np.ndarray) -> bool:
    axes = sform[:3, :3] / np.linalg.norm(sform[:3, :3], axis=0)
    return bool(np.abs(np.triu(axes.T @ axes, 1)).max() > SHEAR_TOLERANCE)


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
    why, fix = (
        "",
        (
            "copy the true one over the other (fslorient -copysform2qform, or -copyqform2sform), or set the "
            "file's sform_code to 0 if the qform is the true geometry"
        ),
    )
    if _sheared(sform):
        why = " because its sform is sheared (a CT converted with its gantry tilt kept)"
        fix = (
            "resample the image onto a grid with right-angled axes (convert a tilted CT again with tilt correction, "
            "e.g. dcm2niix), or, if the qform is the true geometry, set the file's sform_code to 0"
        )
    raise InputError(
        f"{role} file {path} has two geometries that disagree: ITK and Slicer read its qform, and its sform (which "
        f"FSL, SPM and nibabel read) puts a corner of the image {gap:.1f} mm away{why}: {fix}"
    )
