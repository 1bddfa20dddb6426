"""The segments a Slicer ``.seg.nrrd`` header lists (``SegmentN_Name``, ``SegmentN_LabelValue``,
``SegmentN_Layer``), read in one place for the preflight checks, labelmaps and multi-layer segmentations.

Each reader keeps its own rule for a missing or malformed value; this module only says what is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import takewhile
from typing import Protocol

from .errors import InputError

IMAGE_ROLES = ("fixed image", "moving image")  # the roles a segmentation is given in by mistake


class MetaData(Protocol):
    """An image or an image file reader: anything that lists its header's keys and values."""

    def GetMetaDataKeys(self) -> tuple[str, ...]: ...

    def GetMetaData(self, key: str) -> str: ...


@dataclass(frozen=True)
class HeaderSegment:
    """One ``SegmentN`` entry as written (None where the header has no such key)."""

    index: int
    name: str | None
    label_value: str | None
    layer: str | None


def header_segments(source: MetaData) -> list[HeaderSegment]:
    """Every ``SegmentN`` entry for N = 0, 1, ... while the header has ``SegmentN_Name`` or ``SegmentN_LabelValue``."""
    keys = set(source.GetMetaDataKeys())

    def value(index: int, field: str) -> str | None:
        key = f"Segment{index}_{field}"
        return source.GetMetaData(key) if key in keys else None

    found: list[HeaderSegment] = []
    while True:
        index = len(found)
        entry = HeaderSegment(index, value(index, "Name"), value(index, "LabelValue"), value(index, "Layer"))
        if entry.name is None and entry.label_value is None:
            return found
        found.append(entry)


def named_prefix(segments: list[HeaderSegment]) -> list[HeaderSegment]:
    """The entries up to the first without a name."""
    return list(takewhile(lambda segment: segment.name is not None, segments))


def valued_prefix(segments: list[HeaderSegment]) -> list[HeaderSegment]:
    """The entries up to the first without a label value."""
    return list(takewhile(lambda segment: segment.label_value is not None, segments))


def check_not_a_segmentation(path, role: str, names: tuple[str, ...]) -> None:
    """Refuse a Slicer segmentation (its header lists segment ``names``) given as the fixed or moving image: it had
    been registered as intensities, exit 0 (a helper's sweep)."""
    if role not in IMAGE_ROLES or not names:
        return
    side = role.split()[0]
    listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise InputError(f"{role} file {path} is a Slicer segmentation (segments {listed}), not an image: give the {side} "
                     f"image itself as --{side}, and this file as --{side}-segmentation to guide the registration")
