"""A nonlinear preset with a thin moving slab (a few CT slices inside a head MR): the rigid preset places it
first, registered both ways round as a linear preset is (:mod:`.other_way`), and the nonlinear preset runs from that
pose, where the engine samples the fixed image only where the moving image lies (:mod:`.rules.sampling_region`). A
nonlinear result has no exact inverse, so it cannot itself be registered the other way round.

Measured (the 40 mm skull-base CT slab moving, the whole-head MR fixed, from MNI with exact truth, 30 degrees and
27 mm apart): elastix `deformable` had stopped after 7 s, "Too many samples map outside moving image buffer: 988 /
4096" (exit 1, with a hint to swap the images); placed first, elastix ends 0.05 mm off and ANTs 0.07 mm.
Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import SimpleITK as sitk

from ..core.errors import EngineError, ImagesApartError
from ..engines.presets import load_preset
from ..engines.run import lost_overlap
from .guided.guidance import Guidance
from .other_way import falls_short_reason
from .rules.thin_moving import thin_moving
from .runs import error_reason
from .settings import RegistrationSettings

PLACED_FIRST = "placed by a rigid run first"  # how the result's warning starts
KEPT_RIGID = "rigid placement"  # ``kept`` when the nonlinear preset could not run from it
RIGID = "rigid"


def placed_first_reason(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings,
                        guidance: Guidance | None) -> str | None:  # fmt: skip
    """Why a nonlinear preset's run is placed by a rigid run first: the moving image is a thin slab
    (:func:`.rules.thin_moving.thin_moving`), or None. Not for a linear preset (registered the other way round
    instead), nor for a small box that is not thin: so little of the fixed image lies inside it at any pose that the
    nonlinear run is refused with the advice to swap the images (a 22 mm cube in a 96 mm image: 2%)."""
    if falls_short_reason(fixed, moving, settings, guidance) is None:
        return None
    return None if load_preset(settings.engine, settings.preset).is_linear else thin_moving(fixed, moving)


def placed_then_registered(reason: str, settings: RegistrationSettings, place: Callable, register_from: Callable):
    """The :class:`.register.RegistrationResult` of ``register_from(settings)`` started from the result of
    ``place(settings)`` under the rigid preset (both take settings and return a result): the first run's warnings,
    then one saying why (``reason``), then the second run's; the seconds, logs and the metric before (at the first
    run's start) and the pose search of the first; ``provenance.placed_first`` records why. When the second cannot
    run for want of overlap, the rigid result is returned (:func:`_rigid_returned`)."""
    rigid = place(replace(settings, preset=RIGID))
    way = "the other way round" if rigid.provenance.other_way_round else "as given"
    try:
        result = register_from(replace(settings, init="auto", initial_transform=rigid.transform))
    except (EngineError, ImagesApartError) as error:
        if isinstance(error, EngineError) and not lost_overlap(str(error)):
            raise
        return _rigid_returned(rigid, reason, way, settings.preset, error_reason(error))
    preset = result.provenance.preset
    why = f"{reason}; the rigid preset placed it first ({way} was kept), and the {preset} preset ran from there"
    record = replace(
        result.provenance, placed_first=why, initial_transform=rigid.provenance.initial_transform, init=settings.init,
        before_matrix_lps=rigid.provenance.before_matrix_lps, any_pose=rigid.provenance.any_pose,  # the rigid's search
        timings_s={**result.provenance.timings_s, "placed_first_s": round(rigid.seconds, 3)},
    )  # fmt: skip
    return replace(
        result, provenance=record, metric_before=rigid.metric_before, seconds=rigid.seconds + result.seconds,
        warnings=[*rigid.warnings, f"{PLACED_FIRST}: {why}", *result.warnings],
        log="\n".join(part for part in (rigid.log, result.log) if part),
    )  # fmt: skip


def _rigid_returned(rigid, reason: str, way: str, preset: str, failure: str):
    """The rigid result, when the nonlinear preset cannot run from it: a slab a few of the fixed image's voxels thick
    leaves too little of the fixed image for it to sample (the Visible Human 8 mm CT slab against its 5 mm MR slices:
    elastix "79 / 4096" samples, ANTs refused at 2% overlap). Said in a warning and in ``kept``."""
    why = (f"{reason}; the rigid preset placed it ({way} was kept), and the {preset} preset could not run from there "
           f"({failure}): returned the rigid result")  # fmt: skip
    record = replace(rigid.provenance, placed_first=why, kept=KEPT_RIGID, kept_reason=why)
    return replace(rigid, provenance=record, warnings=[*rigid.warnings, f"{PLACED_FIRST}: {why}"])
