"""The segments a Slicer ``.seg.nrrd`` header lists (``SegmentN_Name``, ``SegmentN_LabelValue``,
``SegmentN_Layer``), read in one place for the preflight checks, labelmaps and multi-layer segmentations.

Each reader keeps its own rule for a missing or malformed value; this module only says what is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import takewhile
from typing import Protocol


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
