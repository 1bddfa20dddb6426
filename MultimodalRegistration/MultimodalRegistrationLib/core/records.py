"""Typed records and their JSON form, in one place.

Jobs, results and reports are dataclasses whose fields are typed to the leaves: nested records, lists and
dictionaries of records, numbers, strings. Code reads their attributes; JSON files and scripts see
:meth:`Record.to_dict`, and :meth:`Record.from_dict` reads that back, converting each field by its type.

A field's JSON key is its name unless its metadata says ``key`` (``field(metadata={"key": "from"})``);
``omit_none`` in the metadata, or the class's ``OMIT_NONE``, leaves a None field out of the JSON. A class
whose JSON is laid out otherwise overrides both methods. A key missing from an older record takes the
field's default; an unknown key is refused (:func:`build`) or ignored (``from_dict(strict=False)``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, fields
from functools import cache
from typing import Any, ClassVar, Union

import numpy as np

from .errors import InputError


class Record:
    """A dataclass with a JSON form. Not a mapping: read attributes, or :meth:`to_dict`."""

    OMIT_NONE: ClassVar[bool] = False

    def to_dict(self) -> dict:
        record = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none", self.OMIT_NONE):
                continue
            record[f.metadata.get("key", f.name)] = to_json(value)
        return record

    @classmethod
    def from_dict(cls, record: dict, strict: bool = False):
        """The record from its JSON form; missing keys take their defaults; ``strict`` refuses unknown keys."""
        if not isinstance(record, dict):
            raise InputError(f"a {cls.__name__} must be a JSON object, not {type(record).__name__}")
        hints = _hints(cls)
        by_key = {f.metadata.get("key", f.name): f for f in fields(cls)}
        unknown = set(record) - set(by_key)
        if strict and unknown:
            raise InputError(f"unknown {cls.__name__} keys {sorted(unknown)}: use {', '.join(sorted(by_key))}")
        values = {}
        for key, f in by_key.items():
            if key in record:
                values[f.name] = from_json(hints[f.name], record[key])
            elif f.default is MISSING and f.default_factory is MISSING:
                values[f.name] = None
        return cls(**values)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_json(value: Any) -> Any:
    """``value`` as JSON-ready data: records by their ``to_dict``, numpy numbers and arrays as Python ones."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def from_json(annotation: Any, value: Any) -> Any:
    """JSON ``value`` as the type ``annotation`` says: records, lists and dictionaries of them, optionals."""
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [option for option in typing.get_args(annotation) if option is not type(None)]
        for option in options:
            if _fits(option, value):
                return from_json(option, value)
        return value
    if origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        return [from_json(item, element) for element in value]
    if origin is dict:
        item = (typing.get_args(annotation) + (Any, Any))[1]
        return {key: from_json(item, element) for key, element in value.items()}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) and hasattr(annotation, "from_dict"):
        return annotation.from_dict(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _fits(annotation: Any, value: Any) -> bool:
    """Whether JSON ``value`` can be read as ``annotation`` (to choose among the members of a union)."""
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple):
        return isinstance(value, list)
    if origin is dict or (isinstance(origin, type) and dataclasses.is_dataclass(origin)):
        return isinstance(value, dict)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is Any:
        return True
    return isinstance(origin, type) and isinstance(value, origin)


def build(cls: type, record: dict, what: str):
    """The dataclass ``cls`` from a JSON ``record``; an unknown key is refused, naming the known ones."""
    known = {f.name for f in fields(cls)}
    unknown = set(record) - known
    if unknown:
        raise InputError(f"unknown {what} {sorted(unknown)}: use {', '.join(sorted(known))}")
    return cls(**record)
