"""A TIFF stack (3D) states no slice step where ITK reads one, and often no pixel size: it needs its spacing given.

ITK reads a TIFF's pixel size from its resolution tags (1 mm when there are none; 72 or 96 dpi are screen
defaults) and never its slice step: a stack written at 0.01 x 0.01 x 0.02 mm reads back as 0.01 x 0.01 x 1 mm. A
helper's light-sheet stack saved by Pillow had been read as 1 mm voxels and registered 4.3 mm off on a 7 mm mouse
brain, exit 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import InputError

TIFF_SUFFIXES = (".tif", ".tiff")


def check_tiff_stack(path: str | Path, role: str, size: Sequence[int]) -> None:
    """Refuse the fixed or moving image as a TIFF stack (more than one slice) whose spacing is not given."""
    side = role.split()[0]
    if side not in ("fixed", "moving") or not role.endswith("image"):
        return  # a mask or segmentation follows its image's spacing fix (prep.spacing.mask_with_spacing)
    if len(size) < 3 or size[2] < 2 or Path(path).suffix.lower() not in TIFF_SUFFIXES:
        return
    raise InputError(
        f"{role} file {path} is a TIFF stack, whose slice step ITK cannot read (nor its pixel size unless the file "
        f"states one): give its voxel size in mm with --spacing-{side} x,y,z on mmreg prep or mmreg register (a light "
        "sheet at 3.25 um pixels and 5 um steps: 0.00325,0.00325,0.005; prep writes it as NRRD for the other "
        "commands), or save the stack as NRRD or NIfTI with its spacing"
    )
