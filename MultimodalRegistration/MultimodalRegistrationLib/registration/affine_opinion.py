"""A second opinion on a one-scale (similarity) result: elastix's affine preset run from it. Tissue that shrank more
along one axis (clearing often shrinks the cutting axis most) leaves a similarity result off by several mm, and
an affine run from there stretches that axis back and agrees far better with the fixed image.

The affine run samples the fixed image where both images hold tissue at the result
(:func:`.rules.sampling_region.overlap_regions`), as a scaled search's runs do. The result is warned when the
affine run's result, kept by the usual rule, stretches one axis MIN_STRETCH times another and its bias-corrected
mutual information over the fixed image (or its mask) is MIN_GAIN times the result's. Elastix gives the opinion
whichever engine ran: it was measured with it.

Measured (a helper, forty-sixth session; a light-sheet rendering of the MNI head's brain, stack axis shrunk most,
with and without bright vessels, a smooth warp, missing parts): 13 similarity results 3.5-15 mm off on tissue shrunk
0.7, 0.7, 0.5 or 0.7, 0.7, 0.6 (10 of them unwarned by :mod:`.rules.uneven_size`, whose coarse search the vessels
fool) stretched 1.16-1.65 with a gain of 1.37 or more, and the affine run ended 0.6-3 mm off; 18 right ones (14
evenly shrunk stacks, two half hemispheres, the MNI T1 against a pseudo-CT at 0.8, the real SCT cord pair)
stretched at most 1.031 with a gain of at most 1.018; the thresholds were chosen on these 31. A second helper's 40
right similarity results (both engines; MNI contrasts, stacks, a mouse-sized pair, the phantom) were not warned;
there the gain reached 1.33 on a right ANTs pseudo-CT result, which the stretch (at most 1.020) kept silent. 2-6.5 s
a run. Transforms map fixed to moving points (LPS mm).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..engines.presets import load_preset
from .outcome import Kept, keep_no_worse
from .pose.mirror import axis_name
from .rules.inside_size import INSIDE_SIZE_WARNING
from .rules.sampling_region import overlap_regions
from .rules.thin_moving import thin_side_mm
from .rules.uneven_size import UNEVEN_WARNING, is_one_scale
from .rules.view_mask import from_view
from .runs import RegistrationRun, RunPlan
from .side_run import information, lap_side_run, side_run

MIN_STRETCH = 1.10  # largest over smallest scale of the affine run's result
MIN_GAIN = 1.2  # its bias-corrected mutual information over the similarity result's
OPINION_ENGINE = "elastix"


def _stretch(matrix: np.ndarray, directions: np.ndarray) -> tuple[int, float]:
    """(the moving image axis most stretched against the other two, that factor) of a fixed -> moving 3x3, the
    moving image's axes the columns of ``directions`` (LPS)."""
    sizes = np.linalg.norm(directions.T @ matrix, axis=1)  # the scale along each moving image axis
    relative = [sizes[axis] / np.sqrt(np.prod(np.delete(sizes, axis))) for axis in range(3)]
    axis = int(np.argmax(np.abs(np.log(relative))))
    return axis, float(relative[axis])


def warn_if_uneven_by_affine(run: RegistrationRun, plan: RunPlan, kept: Kept, start_name: str) -> None:
    """Unguided, a warning when an affine run from a one-scale result stretches it and fits far better (see the
    module notes); not when the size checks already warned, for an ultrasound inside an MR, nor for a slab against
    a larger image (:func:`.rules.thin_moving.thin_side_mm`)."""
    if run.prepared is not None or from_view(run.settings) or not (run.recipe.scales and run.recipe.is_linear):
        return
    if kept.kept != "result" or not is_one_scale(kept.transform):
        return
    if any(warning.startswith((UNEVEN_WARNING, INSIDE_SIZE_WARNING)) for warning in run.warnings):
        return  # a size already doubted: "use --preset affine" would contradict its advice
    # A slab says nothing of the size across it, which an affine run is free to stretch: not measured, so not asked.
    if thin_side_mm(run.fixed, run.moving) is not None or thin_side_mm(run.moving, run.fixed) is not None:
        return
    affine = load_preset(OPINION_ENGINE, "affine")
    runs = [(start_name, kept.transform)]
    regions = overlap_regions(runs, run.fixed, run.moving, affine, run.fixed_mask, run.moving_mask)
    # Its own timings: its engine's seconds are the opinion's, not the registration's engine_s.
    opinion_plan = replace(plan, runs=runs, regions=regions, span=(plan.span[1], plan.span[1]))
    side, _, picked = side_run(run, opinion_plan, recipe=affine, settings=replace(run.settings, engine=OPINION_ENGINE),
                               timings={})  # fmt: skip
    opinion = keep_no_worse(side, opinion_plan, picked)[0] if picked is not None else None
    scales, before, after = None, 0.0, 0.0
    if opinion is not None and opinion.kept == "result":
        scales = np.linalg.svd(opinion.transform.matrix[:3, :3], compute_uv=False)
        before, after = information(run, kept.transform, opinion.transform)
    lap_side_run(run, side, "affine_opinion_s")
    if scales is None:
        return
    if scales.max() < MIN_STRETCH * scales.min() or before <= 0.0 or after < MIN_GAIN * before:
        return
    axis, factor = _stretch(opinion.transform.matrix[:3, :3], np.asarray(run.moving.GetDirection()).reshape(3, 3))
    run.warnings.append(
        f"{UNEVEN_WARNING} {factor:.2f} times along its {axis_name(run.moving, axis)} axis (image axis {axis}) against "
        f"the other two (an affine run from the result, which agrees {after / before:.2f} times better with the fixed "
        "image): the tissue seems to have shrunk or swollen unevenly, which one scale cannot fit, so the result is "
        "likely off by millimetres: use --preset affine (or check the slice spacing in the moving image's header)"
    )
