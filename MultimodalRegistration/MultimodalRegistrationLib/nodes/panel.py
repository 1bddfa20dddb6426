"""From a panel's parameters to a worker job: the one path the Register button, the console and scripts take.

A job field that a panel sets names its parameter-node attribute (``panel``) and, for a file, the kind
of node the file is written from (``node``). :func:`job_from_panel` reads those attributes from any
object that has them (the module's parameter node, or :func:`panel_parameters` in a script), writes
each input node once by its kind, and fills the choices; nothing lists the fields a second time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, fields
from pathlib import Path, PurePath
from types import SimpleNamespace
from typing import Any

from ..core.errors import InputError
from ..core.images import write_image
from ..process.jobs import Job
from . import mrml


def panel_names(field: Field) -> tuple[str, ...]:
    """The parameter-node attributes a field reads, first set one first (a custom preset file before the
    chosen preset)."""
    names = field.metadata["panel"]
    return (names,) if isinstance(names, str) else tuple(names)


def panel_fields(record_class: type) -> list[Field]:
    """The fields of a dataclass (a job, the prep options) that a panel sets."""
    return [f for f in fields(record_class) if f.metadata.get("panel")]


def panel_path(value) -> str:
    """A path parameter as text, "" when none is chosen. A panel's path widgets (ctkPathLineEdit,
    ctkDirectoryButton) bind to ``pathlib.Path`` parameters, which hold ``Path(".")`` until a path is chosen;
    a script may give a str."""
    text = "" if value is None else str(value)
    return "" if text in ("", ".") else text


def panel_value(parameters, field: Field):
    """The field's value in ``parameters``: None while its ``switch`` box is unchecked; else ``read`` applied to
    its attributes' values when the field has one; else its first attribute that is set (not the panel's
    ``unset`` value, None, "" or an unchosen path), else None."""
    switch = field.metadata.get("switch")
    if switch and not getattr(parameters, switch, None):
        return None
    read = field.metadata.get("read")
    if read is not None:
        return read(*(getattr(parameters, name, None) for name in panel_names(field)))
    unset = field.metadata.get("unset")
    for name in panel_names(field):
        value = getattr(parameters, name, None)
        if isinstance(value, PurePath):
            value = panel_path(value)
        if value is not None and value != "" and value != unset:
            return value
    return None


def panel_defaults(panel_fields: Iterable[Field]) -> dict:
    """Parameter-node name -> its value when a script leaves it out: a field's default (None for a node), off
    for a switch box."""
    defaults: dict = {}
    for field in panel_fields:
        default = None if field.default is MISSING or field.metadata.get("node") else field.default
        *overrides, name = panel_names(field)  # the last name holds the choice; those before it override it
        defaults.setdefault(name, default)
        for override in overrides:
            defaults.setdefault(override, None)
        if field.metadata.get("switch"):
            defaults.setdefault(field.metadata["switch"], False)
    return defaults


def panel_parameters(job_class: type[Job], extra: dict | None = None, **values) -> SimpleNamespace:
    """The parameters a panel holds for ``job_class``, as a script gives them: the module's parameter-node
    names (``fixedVolume=``, ``preset=``, ``segments=``...), everything else at the panel's default.
    ``extra`` adds names the job's fields do not read (output nodes), with their defaults."""
    defaults = panel_defaults(job_class.panel_fields()) | (extra or {})
    unknown = set(values) - set(defaults)
    if unknown:
        raise InputError(f"unknown parameters {sorted(unknown)}: use {', '.join(sorted(defaults))}")
    return SimpleNamespace(**(defaults | values))


def parameter_words(name: str) -> str:
    """A parameter-node attribute in words ("fixedVolume": "fixed volume")."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def panel_noun(job_class: type, field_name: str) -> str:
    """How the panel names a job field, in words: its parameter-node attribute split ("fixedVolume": "fixed volume")."""
    field = next(f for f in panel_fields(job_class) if f.name == field_name)
    return parameter_words(panel_names(field)[-1])


def node_of(parameters, job_class: type, field_name: str):
    """The node the panel holds for the field ``field_name`` (e.g. "output_transform") of a job, or None."""
    field = next(f for f in panel_fields(job_class) if f.name == field_name)
    return panel_value(parameters, field)


Writer = Callable[[object, Path, list[Field]], dict[str, Any]]  # job field -> its value (a file, mostly)


def job_from_panel(job_class: type[Job], parameters, folder: Path, writers: dict[str, Writer], **outputs) -> Job:
    """The job ``parameters`` describe: each kind of input node written into ``folder`` by ``writers[kind]``
    (given the fields of that kind, it returns field name -> file), the choices read as they are, and
    ``outputs`` (field name -> file in ``folder``) where the worker writes its results."""
    fields = job_class.panel_fields()
    values: dict = {}
    kinds: dict[str, list[Field]] = {}
    for field in fields:
        if field.metadata.get("node"):
            kinds.setdefault(field.metadata["node"], []).append(field)
        else:
            value = panel_value(parameters, field)
            # A path field the panel fills with a node (the output transform) gets its file from ``outputs``.
            if value is not None and (not field.metadata.get("path") or isinstance(value, str)):
                values[field.name] = value
    for kind, kind_fields in kinds.items():
        values |= writers[kind](parameters, folder, kind_fields)
    return job_class(**values, **outputs)


def write_images(parameters, folder: Path, fields: list[Field], image_of: Callable) -> dict[str, str]:
    """Each field's node as the image ``image_of(node, field)``, an uncompressed NRRD named after the field
    (fast to write; streamed when it is downsampled)."""
    files = {}
    for field in fields:
        node = panel_value(parameters, field)
        if node is not None:
            files[field.name] = str(folder / f"{field.name}.nrrd")
            write_image(image_of(node, field), files[field.name], compress=False)
    return files


def write_volumes(parameters, folder: Path, fields: list[Field]) -> dict[str, str]:
    """Each volume node as it is."""
    return write_images(parameters, folder, fields, lambda node, _: mrml.image_from_volume_node(node))
