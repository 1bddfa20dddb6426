"""What a preparation does: the options of :func:`.pipeline.prepare`, shared by ``mmreg prep``,
``mmreg register --prep``, the worker jobs and the RegistrationPrep module.

Standard library only, so that building the command line imports no image library.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.records import build

N4_CHOICES = ("fixed", "moving", "both")
MODALITIES = ("auto", "ct", "mr")
ROLES = ("fixed", "moving")
DEFAULT_MARGIN_MM = 10.0


def n4_target(fixed: bool, moving: bool) -> str | None:
    """:attr:`PrepOptions.n4` from two independent choices (a panel's two check boxes)."""
    return {(True, True): "both", (True, False): "fixed", (False, True): "moving"}.get((bool(fixed), bool(moving)))


def _auto(on: bool) -> str | None:
    """An automatic mask when a panel's box is checked."""
    return "auto" if on else None


def _vector(*values: float) -> tuple:
    return tuple(values)


def option_text(value) -> str:
    """A value as a command line gives it back: a number that reads back to the same float (``repr``
    round-trips), a sequence comma-separated."""
    if isinstance(value, (list, tuple)):
        return ",".join(option_text(part) for part in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value)) if float(value) != int(value) else str(int(value))
    return str(value)


def roi_from_ras_corners(values) -> tuple:
    """Six numbers (R1, A1, S1, R2, A2, S2: two opposite corners in RAS mm, as Slicer shows them) as LPS corners."""
    from ..core.transforms import lps_ras_points

    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        values = []
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise InputError("a region of interest needs 6 numbers: R1,A1,S1,R2,A2,S2 (two opposite corners, RAS mm)")
    corners = lps_ras_points([values[:3], values[3:]])
    return tuple(map(tuple, corners))


def _roi_option(text: str) -> tuple:
    return roi_from_ras_corners(text.split(","))


def _roi_text(roi_lps) -> str:
    """The box as the option takes it: its two corners in RAS."""
    from ..core.transforms import lps_ras_points

    return option_text(lps_ras_points([list(corner) for corner in roi_lps]).ravel().tolist())


def _mask_option(value: str) -> str:
    if value == "auto":
        return value
    if not os.path.exists(value):
        raise InputError(f"mask file not found: {value}: give a labelmap file or 'auto'")
    return str(Path(value).resolve())  # the worker runs in another folder


def _spacing_option(text: str) -> list:
    from .spacing import parse_spacing

    return list(parse_spacing(text))


def _downsample_option(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--downsample-to '{text}' is neither a size in mm nor auto") from None


def _option(default: Any, step: bool = False, panel: str | tuple[str, ...] = "", switch: str = "",
            read: Callable | None = None, cli: dict | None = None):  # fmt: skip
    """An option; ``step``: setting it switches a step on. A panel sets it through its ``panel`` attribute(s),
    only while its ``switch`` box is checked; ``read`` turns the attributes' values into the option's.
    ``cli``: its command-line option, as a job field's (see process/jobs.py), plus ``parse`` (the typed text
    to the option) and ``text`` (the option to the text to type)."""
    metadata = {"step": step, "panel": panel, "switch": switch, "read": read, "cli": cli}
    return field(default=default, metadata=metadata)


def _mask(role: str) -> dict:
    return {"metavar": "auto|FILE", "help": f"{role} mask: automatic, or a labelmap file", "parse": _mask_option}


def _spacing(role: str) -> dict:
    return {"metavar": "SX,SY,SZ", "help": f"set the {role} spacing, mm (no resampling)", "parse": _spacing_option}


_MODALITY = {"choices": MODALITIES, "help": "ct, or mr for any image that is not CT (MR, ultrasound, microscopy); "
             "default: guessed"}


@dataclass
class PrepOptions:
    """What to do; every field off by default. Lengths in mm, points in LPS mm (fixed space)."""

    crop_common: bool = _option(False, step=True, panel="cropCommon", cli={"action": "store_true", "help": "crop "
        "both images to the physical region both cover (placed by --initial-transform, else by their own "
        "coordinates)"})  # fmt: skip
    margin_mm: float = _option(DEFAULT_MARGIN_MM, panel="marginMm", cli={
        "flag": "--margin", "help": f"margin around the common region, mm (default {DEFAULT_MARGIN_MM:g})"})  # fmt: skip
    # two opposite corners of a box in fixed space
    roi_lps: tuple | None = _option(None, step=True, cli={"flag": "--roi", "help": "crop to a box in fixed space: "
        "R1,A1,S1,R2,A2,S2 (two opposite corners, RAS mm)", "parse": _roi_option, "text": _roi_text})  # fmt: skip
    # "auto", a labelmap (file or image), or None
    mask_fixed: Any = _option(None, step=True, panel="maskFixed", read=_auto, cli=_mask("fixed"))
    mask_moving: Any = _option(None, step=True, panel="maskMoving", read=_auto, cli=_mask("moving"))
    # auto, ct or mr: picks the mask rule and where N4 and exclusion apply
    modality_fixed: str = _option("auto", panel="modalityFixed", cli=_MODALITY)
    modality_moving: str = _option("auto", panel="modalityMoving", cli=_MODALITY)
    # HU: leave out CT voxels above this (metal), dilated by exclude_margin_mm
    exclude_above: float | None = _option(None, step=True, panel="excludeAboveHu", switch="excludeAbove", cli={
        "metavar": "HU", "help": "leave CT voxels above HU (metal) out"})  # fmt: skip
    exclude_margin_mm: float = _option(3.0, cli={"flag": "--exclude-margin",
                                                 "help": "and this many mm around them (default 3)"})  # fmt: skip
    n4: str | None = _option(None, step=True, panel=("n4Fixed", "n4Moving"), read=n4_target, cli={  # fixed, moving, both
        "choices": N4_CHOICES, "help": "N4 bias-field correction of the MR image(s)"})  # fmt: skip
    n4_shrink: int | None = _option(None, cli={"help": "N4 shrink factor (default: voxels of about 6 mm)"})
    # replaces the header's spacing (no resampling)
    spacing_fixed: tuple | None = _option(None, step=True, cli=_spacing("fixed"))
    spacing_moving: tuple | None = _option(None, step=True, panel=("movingSpacingX", "movingSpacingY",
                                           "movingSpacingZ"), switch="setMovingSpacing", read=_vector,
                                           cli=_spacing("moving"))  # fmt: skip
    # mm for both images, or "auto": the finer toward the coarser
    downsample_to: float | str | None = _option(None, step=True, panel="downsampleMm", switch="downsample", cli={
        "type": str, "metavar": "MM|auto", "parse": _downsample_option, "help": "downsample images finer than MM "
        "(anti-aliased, streamed from NRRD/MHA/NIfTI/TIFF); auto: the finer image toward the coarser when they "
        "differ 4x or more"})  # fmt: skip

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
        """The fields of the steps this asks for (an empty list: nothing to do). A number is a step asked for
        whatever its value (``--downsample-to 0`` asks, and is refused by :meth:`check`; 0 == False in Python)."""
        return [name for name in STEP_FIELDS if getattr(self, name) is not None and getattr(self, name) is not False]

    @classmethod
    def from_dict(cls, record: dict) -> PrepOptions:
        return build(cls, record, "prep options")

    def check(self) -> None:
        """Refuse options no step can use (negative or NaN lengths, a shrink factor below 1)."""
        if self.n4 not in (None,) + N4_CHOICES:
            raise InputError(f"unknown N4 target '{self.n4}': choose fixed, moving or both")
        if not math.isfinite(self.margin_mm) or self.margin_mm < 0:
            raise InputError(f"margin {self.margin_mm} mm is negative or not a number: give 0 or more")
        if self.exclude_above is not None and not math.isfinite(self.exclude_above):
            raise InputError(f"--exclude-above {self.exclude_above} is not a number: give a CT value in HU, e.g. 2000")
        if not math.isfinite(self.exclude_margin_mm) or self.exclude_margin_mm < 0:
            raise InputError(
                f"--exclude-margin {self.exclude_margin_mm} mm is negative or not a number: give 0 or more (default 3)"
            )
        if self.n4_shrink is not None and (int(self.n4_shrink) != self.n4_shrink or self.n4_shrink < 1):
            raise InputError(f"--n4-shrink {self.n4_shrink} is not a whole number of 1 or more: give e.g. 4 (or leave "
                             "it out: voxels of about 6 mm)")  # fmt: skip
        if isinstance(self.downsample_to, str) and self.downsample_to != "auto":
            self.downsample_to = float(self.downsample_to)
        if self.downsample_to not in (None, "auto") and not 0 < float(self.downsample_to) < math.inf:
            raise InputError(f"downsample target {self.downsample_to} mm is not a positive size: give the voxel size "
                             "to reach in mm, e.g. 0.5, or auto")  # fmt: skip
        if self.roi_lps is not None:
            check_roi_size(self.roi_lps)


def check_roi_size(roi_lps) -> None:
    """Refuse a region of interest (two opposite corners, LPS mm) that spans 0 mm along an axis: it crops to a
    single voxel or a flat slab that no registration can use."""
    low, high = (tuple(float(v) for v in corner) for corner in roi_lps)
    for axis, (letter, sign) in enumerate(zip("RAS", (-1, -1, 1))):  # LPS -> RAS: x and y negated
        if low[axis] == high[axis]:
            at = f"{letter} {sign * low[axis] + 0:g}"  # + 0: no "-0"
            raise InputError(f"--roi spans 0 mm along {letter} (both corners at {at}): give two opposite corners of "
                             "a box, R1,A1,S1,R2,A2,S2 in RAS mm")  # fmt: skip


# The fields that switch a step on; the others tune a step.
STEP_FIELDS = tuple(f.name for f in fields(PrepOptions) if f.metadata.get("step"))
# A tuning field -> the steps it tunes (it does nothing while all of them are off).
TUNES = {"margin_mm": ("crop_common", "roi_lps"), "exclude_margin_mm": ("exclude_above",), "n4_shrink": ("n4",),
         "modality_fixed": ("mask_fixed", "exclude_above", "n4"),
         "modality_moving": ("mask_moving", "exclude_above", "n4")}  # fmt: skip
