"""The record of one preparation (``prep.json``, and a registration summary's ``prep``): what was done to
which image and why, the prepared grids, and, as ``mmreg prep`` writes it, its inputs, options and outputs.

Keys on disk: ``steps``, ``warnings``, ``fixed``, ``moving``, ``fixed_mask``, ``moving_mask``, ``modality``
(what each image was taken for, and a CT's HU offset), then ``inputs``, ``options`` and ``outputs`` when set.
Each step is ``{"step", "image", "why", ...}`` with the step's own numbers beside them (a crop's ``index``
and ``size``, on the downsampled grid when the image was downsampled first; a mask's ``coverage``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..core.records import Record
from .options import PrepOptions


@dataclass
class ImageGrid(Record):
    """A prepared image's grid: size (voxels), spacing (mm), origin (LPS mm) and direction (the 3 x 3 matrix
    whose columns are the voxel axes in LPS, row by row as ITK gives it; absent in records written before)."""

    size: list[int]
    spacing_mm: list[float]
    origin_lps_mm: list[float]
    direction: list[float] | None = field(default=None, metadata={"omit_none": True})


@dataclass
class ImageModality(Record):
    """What an image was taken for, judged once on the whole input before any crop or downsampling:
    ``modality`` ("ct" or "mr": the mask rule, metal exclusion and N4 follow it), whether it was ``given``
    (else guessed: CT when over 2% of its voxels are at -500 or below, ``share_at_air``), and, for CT, the
    ``hu_offset`` added to its stored values to get HU (0, or -1024 for CT stored as HU + 1024)."""

    modality: str
    given: bool
    share_at_air: float
    hu_offset: float | None = field(default=None, metadata={"omit_none": True})


@dataclass
class PrepStep(Record):
    """One step (crop, mask, exclude, bias correction, set spacing, downsample) on one image ("fixed" or
    "moving"; "neither" for a step asked for and not needed), why it was done or not, and its own numbers
    (``details``; in JSON beside the others)."""

    step: str
    image: str
    why: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"step": self.step, "image": self.image, "why": self.why, **self.details}

    @classmethod
    def from_dict(cls, record: dict, strict: bool = False) -> PrepStep:
        named = {f.name for f in fields(cls)} - {"details"}
        details = {key: value for key, value in record.items() if key not in named}
        return cls(record.get("step", ""), record.get("image", ""), record.get("why", ""), details)


@dataclass
class PrepSummary(Record):
    """What a preparation did (``steps``, in order), its warnings and the prepared grids (None: not made).
    ``inputs`` (files by role), ``options`` and ``outputs`` (files written, by role) are set by ``mmreg prep``."""

    steps: list[PrepStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fixed: ImageGrid | None = None
    moving: ImageGrid | None = None
    fixed_mask: ImageGrid | None = None
    moving_mask: ImageGrid | None = None
    # {"fixed": ..., "moving": ...}; absent in records written before it was kept
    modality: dict[str, ImageModality] | None = field(default=None, metadata={"omit_none": True})
    inputs: dict[str, str | None] | None = field(default=None, metadata={"omit_none": True})
    options: PrepOptions | None = field(default=None, metadata={"omit_none": True})
    outputs: dict[str, str] | None = field(default=None, metadata={"omit_none": True})
    # versions, command and working folder (core.made_by), set by ``mmreg prep``; absent in older records
    made_by: dict | None = field(default=None, metadata={"omit_none": True})


def _detail(step: dict) -> str:
    """What a step did, in numbers ("" for none)."""
    kind = step["step"]
    if kind == "crop":
        if step["voxels_kept"] >= 1.0:  # mmreg prep had said "crop (fixed)" of an image it left whole
            return "nothing cropped: the whole image lies in the region"
        return f"{step['voxels_kept']:.0%} of the voxels kept ({' x '.join(map(str, step['size']))})"
    if kind == "mask" and "coverage" in step:
        return f"covers {step['coverage']:.0%} of the image"
    if kind == "exclude":
        return f"{step['voxels_excluded']} voxels left out"
    if kind == "bias correction":
        low, high = step["bias_range"]
        return f"bias {low:.2f} to {high:.2f} removed in {step['seconds']:.1f} s"
    if kind == "downsample" and "to_mm" in step:  # "auto" on images under 4x apart: a step not needed, no size
        return f"to {step['to_mm']:g} mm"
    if kind == "set spacing":
        return "to " + " x ".join(f"{s:g}" for s in step["to_mm"]) + " mm"
    return ""


def step_line(step: dict) -> str:
    """One step of a preparation as `mmreg prep` and the Prep panel say it: what, on which image, why, how much."""
    detail = _detail(step)
    return f"{step['step']} ({step['image']}): {step['why']}" + (f"; {detail}" if detail else "")
