"""Registering the other way round. A thin slab as the moving image inside a much larger fixed image leaves most
fixed samples off the slab at any pose: elastix can stop ("Too many samples map outside moving image buffer") from
every start, or end far off with no sign of it. For a linear preset the pair is also registered with the slab as
the fixed image, the result inverted (exact), and the one whose images agree better (the mutual information both are
ranked by) is kept (:func:`better_way`). Transforms map fixed to moving points (LPS mm).

Measured (40 mm skull-base CT slab moving, whole-head MR fixed, generated from MNI with exact truth, 30 degrees and
27 mm apart): at 1 mm elastix had stopped with exit 1 and at 2 mm ended 40.3 mm off silently; the other way round,
0.04 and 0.12 mm. On three phantom slabs, where either way ends 1.5-9.8 mm off, the agreement kept the better of
the two each time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import SimpleITK as sitk

from ..core.errors import EngineError
from ..core.metric import mutual_information
from ..core.transforms import Transform
from ..engines.presets import load_preset
from .guided.guidance import Guidance
from .rules.thin_moving import thin_moving_hint
from .runs import error_reason
from .settings import RegistrationSettings

NOTE = "registered the other way round"  # how the warning starts


def other_way_reason(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings,
                     guidance: Guidance | None) -> str | None:  # fmt: skip
    """Why the pair is registered the other way round too, or None: the moving image is a thin slab in the fixed
    one (:func:`.thin_moving_hint`), the preset and any initial transform are linear, and nothing guides the run
    (segments and landmarks name their sides)."""
    if guidance is not None and not guidance.is_empty:
        return None
    if settings.initial_transform is not None and not settings.initial_transform.is_linear:
        return None
    if (hint := thin_moving_hint(fixed, moving)) is None or not load_preset(settings.engine, settings.preset).is_linear:
        return None
    return hint.split(": register the other way round")[0]


def better_way(result, failure: EngineError | None, other_way: Callable, fixed: sitk.Image, moving: sitk.Image,
               settings: RegistrationSettings, reason: str):  # fmt: skip
    """``result`` (None when the engine lost its samples from every start: ``failure``), or the result
    ``other_way()`` gives for moving -> fixed, turned round, when its images agree better. If the other way fails
    too, ``result`` stands, or ``failure`` is raised, its hint saying both ways were tried."""
    try:
        other = other_way()
    except EngineError as error:
        if result is not None:
            return result
        failure.hint = (f"{reason}; registered the other way round too, which failed as well ({error_reason(error)}): "
                        "crop the larger image to the slab's region (mmreg prep --crop-common) or place the images "
                        "with --initial-transform")  # fmt: skip
        raise failure from None
    if result is None:
        return the_right_way(other, fixed, moving, settings, f"{reason}, and the engine lost its samples from every start")
    after = the_metric(fixed, moving, other.transform.inverse(), settings)
    if result.metric_after >= after:
        return result
    why = f"{reason}, and the images agree better that way (mutual information {after:.3f} against {result.metric_after:.3f})"
    return the_right_way(other, fixed, moving, settings, why)


def the_metric(fixed: sitk.Image, moving: sitk.Image, transform: Transform, settings: RegistrationSettings) -> float:
    """The mutual information every result is ranked by (fixed samples, the fixed mask)."""
    return mutual_information(fixed, moving, transform, settings.fixed_mask)


def swapped(settings: RegistrationSettings) -> RegistrationSettings:
    """``settings`` for moving -> fixed: the masks and their sources exchanged, the initial transform inverted."""
    sources = dict(settings.sources or {})
    for a, b in (("fixed", "moving"), ("fixed_mask", "moving_mask")):
        sources[a], sources[b] = sources.get(b), sources.get(a)
    initial = settings.initial_transform.inverse() if settings.initial_transform is not None else None
    return replace(settings, fixed_mask=settings.moving_mask, moving_mask=settings.fixed_mask,
                   initial_transform=initial, sources=sources)  # fmt: skip


def _inverted(matrix: list | None) -> list | None:
    return None if matrix is None else np.round(np.linalg.inv(np.asarray(matrix, float)), 9).tolist()


def the_right_way(result, fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings, why: str):
    """The :class:`.register.RegistrationResult` of moving -> fixed as fixed -> moving: the transforms exchanged,
    the matrices the provenance records inverted, the images and masks back in their roles, the mutual information
    before and after measured as every result is ranked (:func:`the_metric`), and a warning saying ``why``."""
    record = result.provenance
    search = record.any_pose
    transform = result.inverse if result.inverse is not None else result.transform.inverse()
    after = the_metric(fixed, moving, transform, settings)
    record = replace(
        record,
        start_matrix_lps=_inverted(record.start_matrix_lps),
        before_matrix_lps=_inverted(record.before_matrix_lps),
        any_pose=replace(search, matrix_lps=_inverted(search.matrix_lps)) if search is not None else None,
        fixed=record.moving, moving=record.fixed, fixed_mask=record.moving_mask, moving_mask=record.fixed_mask,
        fixed_sampling=record.fixed_sampling and f"the other way round, with the slab as the fixed image: "
                                                 f"{record.fixed_sampling}",
        other_way_round=why,
    )  # fmt: skip
    before = transform if record.before_matrix_lps is None else Transform.from_matrix(np.asarray(record.before_matrix_lps))
    note = (f"{NOTE}: {why}; the slab was registered as the fixed image and the result inverted (exact for a linear "
            "transform)")  # fmt: skip
    if result.warnings:
        note += ". The warnings before this one speak of the images the other way round"
    return replace(
        result, transform=transform, inverse=result.transform, provenance=record,
        metric_before=the_metric(fixed, moving, before, settings), metric_after=after,
        warnings=[*result.warnings, note],
    )  # fmt: skip
