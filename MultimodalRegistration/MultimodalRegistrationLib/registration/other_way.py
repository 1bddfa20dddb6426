"""Registering the other way round. A thin slab or a small box as the moving image inside a much larger fixed image
leaves most fixed samples off it at any pose: elastix can stop ("Too many samples map outside moving image buffer")
from every start, or end far off with no sign of it. For a linear preset the pair is also registered with the moving
image as the fixed one, the result inverted (exact), and the one whose images agree better (the mutual information every
result is ranked by, on the fixed samples) is kept (:func:`better_way`); a small box, not thin, only when no start
overlapped the way given. Transforms map fixed to moving points (LPS mm).

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

from ..core.errors import EngineError, ImagesApartError, InputError
from ..core.images import validate_mask
from ..core.metric import mutual_information
from ..core.transforms import Transform
from ..engines.presets import load_preset
from .guided.guidance import Guidance
from .outcome import start_offset
from .rules.far_from_start import moved_from_start_mm
from .rules.sampling_region import moving_footprint
from .rules.thin_moving import CLEAR_WIN, DISAGREE_MM, OTHER_WAY, WAYS_DISAGREE, moving_falls_short
from .runs import error_reason, working_image
from .settings import RegistrationSettings

Measure = Callable[[Transform], float]


def falls_short_reason(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings,
                       guidance: Guidance | None) -> str | None:  # fmt: skip
    """Why most fixed samples fall off the moving image at any pose (:func:`.moving_falls_short`), or None; also None
    for an initial transform without an exact inverse and for a guided run (its segments and landmarks name their
    sides)."""
    if guidance is not None and not guidance.is_empty:
        return None
    if settings.initial_transform is not None and not settings.initial_transform.is_linear:
        return None
    return moving_falls_short(fixed, moving, settings.fixed_mask)


def other_way_reason(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings,
                     guidance: Guidance | None) -> str | None:  # fmt: skip
    """Why the pair is registered the other way round too (:func:`falls_short_reason`), or None: for linear presets
    only, whose results have an exact inverse (a nonlinear one is placed first: :mod:`.placed_first`)."""
    why = falls_short_reason(fixed, moving, settings, guidance)
    if why is None or not load_preset(settings.engine, settings.preset).is_linear:
        return None
    return why


def swapped(settings: RegistrationSettings) -> RegistrationSettings:
    """``settings`` for moving -> fixed: the masks and their sources exchanged, the initial transform inverted."""
    sources = dict(settings.sources or {})
    for a, b in (("fixed", "moving"), ("fixed_mask", "moving_mask")):
        sources[a], sources[b] = sources.get(b), sources.get(a)
    initial = settings.initial_transform.inverse() if settings.initial_transform is not None else None
    return replace(settings, fixed_mask=settings.moving_mask, moving_mask=settings.fixed_mask,
                   initial_transform=initial, sources=sources)  # fmt: skip


def agreement(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings) -> Measure:
    """The mutual information (nats) of a fixed -> moving transform as every run measures its result: on the images
    as registered (:func:`.working_image`), the fixed samples inside the fixed mask."""
    fixed, _ = working_image(fixed, "fixed image")
    moving, _ = working_image(moving, "moving image")
    mask = validate_mask(settings.fixed_mask, fixed, "fixed mask") if settings.fixed_mask is not None else None
    return lambda transform: mutual_information(fixed, moving, transform, mask)


def better_way(result, failure: EngineError | ImagesApartError | None, other_way: Callable, fixed: sitk.Image,
               moving: sitk.Image, measure: Measure, reason: str):  # fmt: skip
    """``result`` (None when the engine lost its samples from every start, or no start overlapped: ``failure``), or
    the result ``other_way()`` gives for moving -> fixed, turned round, when its images agree better by ``measure``.
    When the other way cannot run (an engine failure, or input it refuses: a mask too small as the fixed one),
    ``result`` stands, or an error is raised saying both ways were tried: an engine's (exit 1) if one ran."""
    try:
        other = other_way()
    except (EngineError, InputError) as error:
        if result is not None:
            return result
        if isinstance(failure, EngineError) or isinstance(error, EngineError):
            engine_failure = failure if isinstance(failure, EngineError) else error  # an engine ran: exit 1
            engine_failure.hint = (f"{reason}; registered the other way round too, which failed as well "
                                   f"({error_reason(error)}): crop the larger image to the moving image's region "
                                   "(mmreg prep --crop-common) or place the images with "
                                   "--initial-transform")  # fmt: skip
            raise engine_failure from None
        raise ImagesApartError(f"{reason}; no start overlapped the way given, and the other way round could not "
                               f"register either ({error_reason(error)}): prealign with landmarks (FiducialPrealign "
                               "or mmreg prealign)") from None
    transform = other.inverse if other.inverse is not None else other.transform.inverse()
    after = measure(transform)
    if result is None:
        lost = f"{reason}, and " + ("no start overlapped" if isinstance(failure, ImagesApartError)
                                    else "the engine lost its samples from every start")  # fmt: skip
        return the_right_way(other, transform, after, fixed, measure, lost, (getattr(failure, "log", ""), 0.0))
    given = measure(result.transform)
    apart = _apart_mm(fixed, moving, result.transform, transform)
    if given >= after:
        result.provenance.timings_s["other_way_s"] = round(other.seconds, 3)  # tried, not kept
        result = replace(result, seconds=result.seconds + other.seconds)
        return _doubted(result, apart, "given", given, after)
    why = f"{reason}, and the images agree better that way (mutual information {after:.4f} against {given:.4f})"
    return _doubted(the_right_way(other, transform, after, fixed, measure, why, (result.log, result.seconds)),
                    apart, "other", after, given)  # fmt: skip


def _apart_mm(fixed: sitk.Image, moving: sitk.Image, one: Transform, other: Transform) -> float:
    """How far apart (mm, median) two fixed -> moving results put the fixed points that either maps into the
    moving image (the moving image's footprint)."""
    footprint = sitk.Or(moving_footprint(fixed, moving, one), moving_footprint(fixed, moving, other))
    return moved_from_start_mm(fixed, one, other, footprint)


def _doubted(result, apart: float, kept: str, kept_agreement: float, other_agreement: float):
    """``result`` with a warning when the two ways' results lie over DISAGREE_MM apart (at least one is wrong) and
    the kept one's images agree less than CLEAR_WIN times better: agreeing a little better does not make it right (a
    helper's sweep: ANTs kept a result 20 mm off the other way round, where the given way's, 41 mm off, had been
    warned)."""
    if apart <= DISAGREE_MM or kept_agreement >= CLEAR_WIN * other_agreement:
        return result
    way = "the way given" if kept == "given" else "the other way round"
    warning = (f"{WAYS_DISAGREE}: the moving image registered as the fixed image and as given lands {apart:.0f} mm "
               f"apart (median over its footprint), so at least one is wrong; kept {way}, whose images agree better "
               f"(mutual information {kept_agreement:.4f} against {other_agreement:.4f}): check the result (a "
               "checkerboard, landmarks in QA), or start it near the answer (--initial-transform, FiducialPrealign)")
    return replace(result, warnings=[*result.warnings, warning])


def _inverted(matrix: list | None) -> list | None:
    return None if matrix is None else np.round(np.linalg.inv(np.asarray(matrix, float)), 9).tolist()


def _scale_inverted(search):
    """The pose search's record with its matrix and sizes (moving / fixed) turned round."""
    if search is None:
        return None
    turned = {"matrix_lps": _inverted(search.matrix_lps)}
    if search.scale is not None:
        turned["scale"] = round(1.0 / search.scale, 4)
    return replace(search, **turned)


def the_right_way(result, transform: Transform, after: float, fixed: sitk.Image, measure: Measure, why: str,
                  first: tuple[str, float]):  # fmt: skip
    """The :class:`.register.RegistrationResult` of moving -> fixed as fixed -> moving (``transform``, whose
    agreement is ``after``): the transforms exchanged, the start's and the search's matrices and the start's offset
    turned round, the images and masks back in their roles, the mutual information before and after as
    ``measure`` gives it, the first way's log and seconds (``first``) added, and a warning saying ``why``.
    ``starts_tried``, ``kept_reason`` and the timings are the swapped run's, as the one-line description says."""
    record = result.provenance
    start_matrix, before_matrix = _inverted(record.start_matrix_lps), _inverted(record.before_matrix_lps)
    start = None if start_matrix is None else Transform.from_matrix(np.asarray(start_matrix))
    before = transform if before_matrix is None else Transform.from_matrix(np.asarray(before_matrix))
    record = replace(
        record,
        start_matrix_lps=start_matrix,
        before_matrix_lps=before_matrix,
        any_pose=_scale_inverted(record.any_pose),
        start_offset=None if start is None else start_offset(start, before, fixed, record.initial_transform is not None),
        fixed=record.moving, moving=record.fixed, fixed_mask=record.moving_mask, moving_mask=record.fixed_mask,
        fixed_sampling=record.fixed_sampling and f"the other way round, with the moving image as the fixed one: "
                                                 f"{record.fixed_sampling}",
        other_way_round=why,
    )  # fmt: skip
    note = (f"{OTHER_WAY}: {why}; the moving image was registered as the fixed one and the result inverted (exact "
            "for a linear transform)")  # fmt: skip
    if result.warnings:
        note += ". The warnings before this one speak of the images the other way round"
    log, seconds = first
    return replace(
        result, transform=transform, inverse=result.transform, provenance=record,
        metric_before=measure(before), metric_after=after, warnings=[*result.warnings, note],
        log="\n".join(part for part in (log, result.log) if part), seconds=seconds + result.seconds,
    )  # fmt: skip
