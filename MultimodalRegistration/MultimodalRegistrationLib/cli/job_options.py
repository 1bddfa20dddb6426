"""A job's command-line options, read from its own fields: each field with ``cli`` metadata (see
:func:`..process.jobs._choice`) is one option, named after the field (``fixed_mask`` is ``--fixed-mask``)
unless its metadata names it (``aliases``: other spellings it accepts), typed as the field is, defaulting to
the field's default. The parser and the job so hold the options once. The preparation's options
(:class:`..prep.options.PrepOptions`) are read the same way, their ``parse`` turning the typed text into the option.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field

from ..core.errors import InputError
from ..process.jobs import option_fields, option_flag

NOT_ARGPARSE = ("flag", "aliases", "group", "always", "column", "parse", "text")  # cli metadata not argparse's
_CHAIN = ("a chain of transforms (ANTs' 0GenericAffine.mat and 1Warp.nii.gz) is one transform: compose them into "
          "one .h5 first (antsApplyTransforms ... -o [composite.h5,1], or in Slicer harden one transform into the "
          "other and save it)")
# Options that only the last of several values would set, silently, where the user meant all of them: their values
# are kept (in ``REPEATS`` on the parsed arguments) for mmreg to refuse (cli.main.refuse_repeated_options).
REPEAT_REFUSED = {
    "--preset": "to run two preset files one after the other, register with the first and give its result to the "
                "second as --initial-transform",
    "--initial-transform": _CHAIN,
    "--transform": _CHAIN,
    "--inverse": _CHAIN,
}  # fmt: skip
REPEATS = "repeated_values"


class KeepRepeats(argparse.Action):
    """Store the value, as argparse does, and keep every value given for the option (argparse's own prefixes
    resolved: ``--init`` is not ``--initial-transform``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.__dict__.setdefault(REPEATS, {}).setdefault(self.option_strings[0], []).append(values)
        setattr(namespace, self.dest, values)


def _type(field: Field):
    """The argparse type of a field: float, int or str, by its annotation."""
    annotation = str(field.type)
    if "list" in annotation:
        return str
    return float if "float" in annotation else int if "int" in annotation else str


def add_options(parser, record_class: type, groups: dict | None = None) -> None:
    """Add ``record_class``'s options to ``parser``; a field whose ``cli`` names a ``group`` goes into
    ``groups[group]`` (an argument group of the parser)."""
    for field in option_fields(record_class):
        options = {key: value for key, value in field.metadata["cli"].items() if key not in NOT_ARGPARSE}
        flag = option_flag(field)
        if "action" not in options:
            options.setdefault("type", _type(field))
            if flag in REPEAT_REFUSED:
                options["action"] = KeepRepeats
            if "choices" not in options:  # named after the option as typed (--margin MARGIN), not the field
                options.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
        if field.default is not MISSING and not options.get("required"):
            options.setdefault("default", field.default)
        target = (groups or {}).get(field.metadata["cli"].get("group"), parser)
        target.add_argument(flag, *field.metadata["cli"].get("aliases", ()), dest=field.name, **options)


def option_values(record_class: type, arguments: argparse.Namespace) -> dict:
    """Field name -> value for each of ``record_class``'s options given in ``arguments`` (None: not given),
    through the field's ``parse`` when it has one."""
    values = {}
    for field in option_fields(record_class):
        value = getattr(arguments, field.name, None)
        if value is not None:
            parse = field.metadata["cli"].get("parse")
            values[field.name] = parse(value) if parse else value
    return values


def set_by_user(flag: str, value, default, typed: list[str] | None) -> bool:
    """Whether the user gave ``flag``: typed on the command line (``typed``, as cli.main keeps it; a value equal to
    the default counts), else (no command line) a value other than ``default``."""
    if typed is None:
        return value is not None and value != default
    return any(word == flag or word.startswith(flag + "=") for word in typed)


def refuse_idle_tuning(
    record,
    changed: Iterable[str],
    tunes: Mapping[str, tuple[str, ...]],
    flags: Mapping[str, str],
    what: str = "a step",
    off: Callable[[object], bool] = lambda value: value in (None, False),
) -> None:
    """Refuse an option given (``changed``: field names set away from their defaults) that only tunes steps
    (``tunes``: field -> the fields that switch its steps on) which are all ``off`` in ``record``: it would do
    nothing, silently. ``flags``: field -> how the user writes it; ``what`` the steps are called."""
    for name in changed:
        steps = tunes.get(name, ())
        if steps and all(off(getattr(record, step)) for step in steps):
            needs = " or ".join(flags[step] for step in steps)
            raise InputError(f"{flags[name]} tunes {what}, and it is off: add {needs}, or drop {flags[name]}")
