"""A job's command-line options, read from its own fields: each field with ``cli`` metadata (see
:func:`..process.jobs._choice`) is one option, named after the field (``fixed_mask`` is ``--fixed-mask``)
unless its metadata names it, typed as the field is, defaulting to the field's default. The parser and the
job so hold the options once.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field

from ..process.jobs import Job, option_flag

NOT_ARGPARSE = ("flag", "group", "always", "column")  # the cli metadata that is not argparse's


def _type(field: Field):
    """The argparse type of a field: float, int or str, by its annotation."""
    annotation = str(field.type)
    if "list" in annotation:
        return str
    return float if "float" in annotation else int if "int" in annotation else str


def add_job_options(parser, job_class: type[Job], groups: dict | None = None) -> None:
    """Add ``job_class``'s options to ``parser``; a field whose ``cli`` names a ``group`` goes into
    ``groups[group]`` (an argument group of the parser)."""
    for field in job_class.option_fields():
        options = {key: value for key, value in field.metadata["cli"].items() if key not in NOT_ARGPARSE}
        options.setdefault("type", _type(field))
        if field.default is not MISSING and not options.get("required"):
            options.setdefault("default", field.default)
        target = (groups or {}).get(field.metadata["cli"].get("group"), parser)
        target.add_argument(option_flag(field), dest=field.name, **options)


def job_values(job_class: type[Job], arguments: argparse.Namespace) -> dict:
    """Field name -> value for each of ``job_class``'s options given in ``arguments`` (None: not given)."""
    given = {f.name: getattr(arguments, f.name, None) for f in job_class.option_fields()}
    return {name: value for name, value in given.items() if value is not None}
