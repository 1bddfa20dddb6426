"""Typed records that read like their JSON form.

Jobs, results and reports are dataclasses: code reads and sets their attributes. Scripts, tests
and the JSON files see the same record through :meth:`Record.to_dict`, and a record also reads
like that dictionary (``summary["provenance"]["engine"]``), so nothing keeps a second copy of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

from .errors import InputError


class Record(Mapping):
    """A read-only mapping view of :meth:`to_dict`; subclasses are dataclasses that define ``to_dict``."""

    def to_dict(self) -> dict:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


def build(cls: type, record: dict, what: str):
    """The dataclass ``cls`` from a JSON ``record``; an unknown key is refused, naming the known ones."""
    known = {f.name for f in fields(cls)}
    unknown = set(record) - known
    if unknown:
        raise InputError(f"unknown {what} {sorted(unknown)}: use {', '.join(sorted(known))}")
    return cls(**record)
