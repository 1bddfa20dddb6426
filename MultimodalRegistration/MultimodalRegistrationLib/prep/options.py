"""What a preparation does: the options of :func:`.pipeline.prepare`, shared by ``mmreg prep``,
``mmreg register --prep``, the worker jobs and the RegistrationPrep module.

Standard library only, so that building the command line imports no image library.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from ..core.errors import InputError
from ..core.records import build

N4_CHOICES = ("fixed", "moving", "both")
MODALITIES = ("auto", "ct", "mr")
ROLES = ("fixed", "moving")
DEFAULT_MARGIN_MM = 10.0
# The fields that switch a step on; the others tune a step.
STEP_FIELDS = ("crop_common", "roi_lps", "mask_fixed", "mask_moving", "exclude_above", "n4", "spacing_fixed",
               "spacing_moving", "downsample_to")  # fmt: skip


@dataclass
class PrepOptions:
    """What to do; every field off by default. Lengths in mm, points in LPS mm (fixed space)."""

    crop_common: bool = False
    margin_mm: float = DEFAULT_MARGIN_MM
    roi_lps: tuple | None = None  # two opposite corners of a box in fixed space, ((x, y, z), (x, y, z))
    mask_fixed: Any = None  # "auto", a labelmap (file or image), or None
    mask_moving: Any = None
    modality_fixed: str = "auto"  # auto, ct or mr: picks the mask rule and where N4 and exclusion apply
    modality_moving: str = "auto"
    exclude_above: float | None = None  # HU: leave out CT voxels above this (metal), dilated by exclude_margin_mm
    exclude_margin_mm: float = 3.0
    n4: str | None = None  # fixed, moving or both (MR images only)
    n4_shrink: int | None = None  # default: voxels of about 6 mm
    spacing_fixed: tuple | None = None  # replaces the header's spacing (no resampling)
    spacing_moving: tuple | None = None
    downsample_to: float | str | None = None  # mm for both images, or "auto": the finer toward the coarser

    def to_dict(self) -> dict:
        """JSON-ready (for a worker job); image masks cannot be sent, give files."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("mask_fixed", "mask_moving"):
            if isinstance(record[key], os.PathLike):
                record[key] = os.fspath(record[key])
            elif record[key] is not None and not isinstance(record[key], str):
                raise InputError(f"{key} is an image: give it as a file to send it to the worker")
        record["roi_lps"] = [list(corner) for corner in self.roi_lps] if self.roi_lps is not None else None
        return record

    def steps_on(self) -> list[str]:
        """The fields of the steps this asks for (an empty list: nothing to do)."""
        return [name for name in STEP_FIELDS if getattr(self, name) not in (None, False)]

    @classmethod
    def from_dict(cls, record: dict) -> PrepOptions:
        return build(cls, record, "prep options")

    def check(self) -> None:
        if self.n4 not in (None,) + N4_CHOICES:
            raise InputError(f"unknown N4 target '{self.n4}': choose fixed, moving or both")
        if self.margin_mm < 0:
            raise InputError(f"margin {self.margin_mm} mm is negative: give 0 or more")
        if isinstance(self.downsample_to, str) and self.downsample_to != "auto":
            self.downsample_to = float(self.downsample_to)
        if self.downsample_to is not None and self.downsample_to != "auto" and not float(self.downsample_to) > 0:
            raise InputError(f"downsample target {self.downsample_to} mm is not positive")
