"""What one registration is asked to do (:class:`RegistrationSettings`): engine, preset, masks, start, seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import SimpleITK as sitk

from ..core.choices import DEFAULT_INIT, DEFAULT_PRESET, DEFAULT_SEED, FULL_ROTATION_DEG
from ..core.transforms import Transform
from ..engines.registry import DEFAULT_ENGINE

Progress = Callable[..., None]  # (fraction 0..1, stage name, **details)


@dataclass(frozen=True)
class RegistrationSettings:
    """How :func:`.register.register` runs.

    ``initial_transform`` (fixed -> moving, LPS mm) is where the search starts and is part of the result.
    ``init`` is auto, any-pose, geometry, moments or none (see :mod:`.pose.initialize`).
    ``max_rotation_deg`` (degrees) narrows the any-pose search for images known to be roughly aligned.
    ``sources`` names where the inputs came from (keys fixed, moving, fixed_mask, moving_mask,
    initial_transform), for provenance only.
    """

    engine: str = DEFAULT_ENGINE
    preset: str = DEFAULT_PRESET
    fixed_mask: sitk.Image | None = None
    moving_mask: sitk.Image | None = None
    initial_transform: Transform | None = None
    init: str = DEFAULT_INIT
    max_rotation_deg: float = FULL_ROTATION_DEG
    seed: int = DEFAULT_SEED
    threads: int | None = None
    sources: dict | None = None

    def __post_init__(self) -> None:
        """A file path where an image or a transform belongs raised AttributeError deep in the run (a helper's
        docs sweep); name what to pass instead."""
        for name in ("fixed_mask", "moving_mask"):
            check_kind(getattr(self, name), sitk.Image, name, "a SimpleITK image (core.images.read_image(path))")
        check_kind(self.initial_transform, Transform, "initial_transform", "a Transform (Transform.read(path))")

    def overridden(self, overrides: dict) -> RegistrationSettings:
        """These settings with ``overrides`` (field name -> value); see :func:`check_names`."""
        check_names(overrides, type(self))
        return replace(self, **overrides) if overrides else self


def check_kind(value, kind: type, name: str, what: str) -> None:
    """TypeError naming ``what`` to pass when ``value`` is neither None nor a ``kind``."""
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__} {str(value)[:80]!r}")


def check_names(overrides: dict, *settings: type) -> None:
    """A TypeError, as for a misspelled keyword argument, naming what in ``overrides`` is no field of
    the ``settings`` dataclasses, and the fields that are."""
    names = {f.name for kind in settings for f in fields(kind)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}: use {', '.join(sorted(names))}")
