"""The ANTs engine (antspyx), driven by antsRegistration arguments built from a JSON preset.

ANTs repeats a result only with one thread and a fixed seed, so one thread is the default.

With guidance every stage gets one more ``--metric MeanSquares[...]`` term per segment channel and
one for the landmarks, drawn as Gaussian blobs (:mod:`.point_blobs`): antsRegistration has no
reliable corresponding-point metric. The terms of one stage are weighed against each other after
ANTs scales each term's gradient to unit length, so the weights do not depend on each metric's scale.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.transforms import Transform
from .ants_library import ants_registration
from .ants_recipe import LINEAR as _LINEAR
from .ants_recipe import shrink_factors
from .guidance_terms import EngineGuidance
from .loading import load
from .output import EngineOutput
from .point_blobs import BLOB_SIGMA_MM, render_point_blobs
from .presets import Preset
from .registry import runner_spec
from .request import EngineRequest

SPEC = runner_spec(__name__)


def _join(values) -> str:
    return "x".join(str(v) for v in values)


@dataclass(frozen=True)
class ImageTerm:
    """One extra MeanSquares term of every stage: fixed and moving image files, a weight, and a sampling.

    ``sampling`` is antsRegistration's ``strategy,percentage``; None takes the stage's own.
    """

    fixed: str
    moving: str
    weight: float
    sampling: str | None = None
    name: str = ""


@dataclass(frozen=True)
class RunFiles:
    """The files of one antsRegistration run: the images, the masks (None: none), the initial transform
    and the prefix of the outputs."""

    fixed: str
    moving: str
    initial: str
    output_prefix: str
    fixed_mask: str | None = None
    moving_mask: str | None = None


def intensity_leads(terms: Sequence[ImageTerm], intensity_weight: float) -> bool:
    """Whether the intensity metric comes first in each stage rather than the heaviest guidance term.

    ANTs judges a stage by its first metric alone (line search, convergence, parameter scales), so the
    intensities lead only when they outweigh all guidance terms together.
    """
    return not terms or intensity_weight > sum(term.weight for term in terms)


def stage_arguments(
    stage: dict, fixed: str, moving: str, voxel_mm: float = 1.0,
    terms: Sequence[ImageTerm] = (), intensity_weight: float = 1.0,
) -> list[str]:  # fmt: skip
    """antsRegistration arguments for one preset stage; ``voxel_mm`` is the fixed image's finest spacing.

    ``terms`` are guidance terms added to the stage's own metric; ``intensity_weight`` 0 drops that metric.
    """
    transform = stage["transform"]
    step = stage.get("gradient_step", 0.1)
    if transform in _LINEAR:
        transform_argument = f"{transform}[{step}]"
    elif transform == "SyN":
        variances = f"{stage.get('update_field_variance', 3)},{stage.get('total_field_variance', 0)}"
        transform_argument = f"SyN[{step},{variances}]"
    else:
        raise InputError(f"ANTs preset stage transform '{transform}' is not supported: use {', '.join(_LINEAR)} or SyN")
    metric = stage.get("metric", "Mattes")
    if metric not in ("Mattes", "MI"):
        raise InputError(f"ANTs preset metric '{metric}' is not multimodal: use Mattes or MI")
    sampling = f"{stage.get('sampling', 'Regular')},{stage.get('sampling_percentage', 0.25)}"
    iterations = stage["iterations"]
    shrink = shrink_factors(stage, voxel_mm)
    sigmas = stage.get("smoothing_sigmas", [0] * len(iterations))
    if not (len(iterations) == len(shrink) == len(sigmas)):
        raise InputError("ANTs preset: iterations, shrink_factors and smoothing_sigmas need the same length")
    guides = [
        f"MeanSquares[{term.fixed},{term.moving},{term.weight},1,{term.sampling or sampling}]" for term in terms
    ]
    weight = 1 if intensity_weight == 1 else intensity_weight
    own = [f"{metric}[{fixed},{moving},{weight},{stage.get('bins', 32)},{sampling}]"] if intensity_weight > 0 else []
    ordered = own + guides if intensity_leads(terms, intensity_weight) else guides + own
    metrics = [argument for term in ordered for argument in ("--metric", term)]
    return metrics + [
        "--transform", transform_argument,
        "--convergence",
        f"[{_join(iterations)},{stage.get('convergence_threshold', 1e-6)},{stage.get('convergence_window', 10)}]",
        "--smoothing-sigmas", _join(sigmas) + stage.get("smoothing_units", "vox"),
        "--shrink-factors", _join(shrink),
    ]  # fmt: skip


def registration_arguments(
    preset: Preset, files: RunFiles, seed: int, voxel_mm: float = 1.0,
    terms: Sequence[ImageTerm] = (), intensity_weight: float = 1.0, dimension: int = 3,
) -> list[str]:  # fmt: skip
    """The whole antsRegistration command line (without the program name); ``dimension`` of the images (2 or 3).

    With guidance ``terms`` ANTs must not winsorize: it would clip every image of every term at the
    preset's quantiles, which wipes out a small segment or a landmark blob. The caller winsorizes the
    intensities itself (:func:`winsorized`).
    """
    recipe = preset.recipe
    low, high = recipe.get("winsorize", [0.005, 0.995]) if not terms else (0.0, 1.0)
    arguments = [
        "--dimensionality", str(dimension),
        "--float", "1",
        "--collapse-output-transforms", "1",
        "--write-composite-transform", "1",
        "--output", f"[{files.output_prefix}]",
        "--interpolation", "Linear",
        "--use-histogram-matching", "0",
        "--winsorize-image-intensities", f"[{low},{high}]",
        "--initial-moving-transform", files.initial,
        "--random-seed", str(seed),
        "--verbose", "1",
    ]  # fmt: skip
    if files.fixed_mask or files.moving_mask:
        arguments += ["--masks", f"[{files.fixed_mask or 'NULL'},{files.moving_mask or 'NULL'}]"]
    for stage in recipe["stages"]:
        arguments += stage_arguments(stage, files.fixed, files.moving, voxel_mm, terms, intensity_weight)
    return arguments


def winsorized(image: sitk.Image, low: float, high: float) -> sitk.Image:
    """``image`` clipped to its ``low`` and ``high`` intensity quantiles (0 to 1), as float32."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    lower, upper = np.quantile(array, [low, high])
    result = sitk.GetImageFromArray(np.clip(array, lower, upper))
    result.CopyInformation(image)
    return result


def pinned_pair(fixed: sitk.Image, moving: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """Both images with their first and last voxels set to the pair's joint minimum and maximum.

    antsRegistration rescales every image to [0, 1] by its own range before comparing; mean squares
    needs the two images of a term on one scale, so both get the same range (two voxels change).
    """
    arrays = [sitk.GetArrayFromImage(image).astype(np.float32) for image in (fixed, moving)]
    low, high = min(a.min() for a in arrays), max(a.max() for a in arrays)
    pinned = []
    for array, image in zip(arrays, (fixed, moving)):
        array.flat[0], array.flat[-1] = low, high
        result = sitk.GetImageFromArray(array)
        result.CopyInformation(image)
        pinned.append(result)
    return pinned[0], pinned[1]


def guidance_terms(
    guidance: EngineGuidance, fixed: sitk.Image, moving: sitk.Image, workdir: Path, blob_sigma_mm: float = BLOB_SIGMA_MM
) -> list[ImageTerm]:
    """Write each channel and the landmark blobs to ``workdir`` as .nrrd pairs; one term per pair.

    Heaviest first, channels before blobs on a tie (the first may lead each stage, see
    :func:`intensity_leads`; a clamped distance map keeps changing while its segment moves, where
    mutual information of unrelated intensities, or blobs that do not overlap yet, stay flat).
    Blobs are sampled densely: a sparse sampler sees few voxels of a blob.
    """
    pairs = [(c.name, c.fixed, c.moving, c.weight, None) for c in guidance.active_channels]
    if guidance.has_points:
        fixed_blobs = render_point_blobs(guidance.fixed_points_lps, fixed, blob_sigma_mm)
        moving_blobs = render_point_blobs(guidance.moving_points_lps, moving, blob_sigma_mm)
        pairs.append(("points", fixed_blobs, moving_blobs, guidance.points_weight, "None,1"))
    pairs.sort(key=lambda pair: -pair[3])  # stable: channels stay before the blobs on a tie
    terms = []
    for number, (name, fixed_image, moving_image, weight, sampling) in enumerate(pairs):
        paths = [workdir / f"guide{number}_{role}.nrrd" for role in ("fixed", "moving")]
        for path, image in zip(paths, pinned_pair(fixed_image, moving_image)):
            sitk.WriteImage(image, str(path))
        terms.append(ImageTerm(str(paths[0]), str(paths[1]), weight, sampling, name))
    return terms


@contextmanager
def _stdout_to(path: Path):
    """Send the process's C-level stdout (where antsRegistration prints) to a file."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def import_engine() -> None:
    """Load antspyx's compiled library (see :mod:`.ants_library`)."""
    ants_registration()


def run(request: EngineRequest) -> EngineOutput:
    """One antsRegistration run (see :class:`.request.EngineRequest`); the result maps fixed to moving points (LPS mm)."""
    fixed, moving, preset, initial = request.fixed, request.moving, request.preset, request.initial
    fixed_mask, moving_mask, guidance, workdir, progress = (
        request.fixed_mask, request.moving_mask, request.guidance, Path(request.workdir), request.progress
    )  # fmt: skip
    progress(0.0, f"loading {SPEC.label}")
    started = time.perf_counter()
    threads = SPEC.threads(request.threads)
    # ITK reads this once, when ANTs first starts a thread pool.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    load(SPEC.name)
    loaded = time.perf_counter()
    terms: list[ImageTerm] = []
    intensities = (fixed, moving)
    if guidance is not None:
        terms = guidance_terms(guidance, fixed, moving, workdir)
    if terms:  # ANTs then leaves the images as they are (see registration_arguments)
        low, high = preset.recipe.get("winsorize", [0.005, 0.995])
        intensities = (winsorized(fixed, low, high), winsorized(moving, low, high))
    paths = {"fixed": workdir / "fixed.nrrd", "moving": workdir / "moving.nrrd"}
    sitk.WriteImage(sitk.Cast(intensities[0], sitk.sitkFloat32), str(paths["fixed"]))
    sitk.WriteImage(sitk.Cast(intensities[1], sitk.sitkFloat32), str(paths["moving"]))
    masks = {}
    for role, mask in (("fixed_mask", fixed_mask), ("moving_mask", moving_mask)):
        if mask is not None:
            masks[role] = str(workdir / f"{role}.nrrd")
            sitk.WriteImage(mask, masks[role])
    initial_path = workdir / "initial.h5"
    initial.write(initial_path)
    prefix = str(workdir / "ants_")
    files = RunFiles(str(paths["fixed"]), str(paths["moving"]), str(initial_path), prefix, **masks)
    arguments = registration_arguments(
        preset, files, request.seed, voxel_mm=min(fixed.GetSpacing()),
        terms=terms, intensity_weight=guidance.intensity_weight if guidance is not None else 1.0,
    )  # fmt: skip
    log_path = workdir / SPEC.log_name
    plan = [count for stage in preset.recipe["stages"] for count in stage["iterations"]]
    progress(0.05, f"{SPEC.label} {preset.name}", engine=SPEC.name, log=str(log_path), iterations=plan)
    with _stdout_to(log_path):
        status = ants_registration()(arguments)
    log = log_path.read_text(errors="replace")
    if status != 0:
        raise RuntimeError(f"antsRegistration exited with {status}: {log.strip()[-1500:]}")
    if "Exception caught" in log:
        # antsRegistration reports some failures (no samples in the mask, none inside the moving image)
        # only in its log, exits 0 and leaves its start as the result: never pass that off as a result.
        caught = log[log.index("Exception caught"):].strip()
        raise RuntimeError(f"antsRegistration stopped: {caught[:1500]}")
    registered = time.perf_counter()
    # The composite already holds the initial transform (antsRegistration folds it in).
    transform = Transform.read(f"{prefix}Composite.h5")
    # antsRegistration writes the inverse only when every part can be inverted: not after a nonlinear
    # start such as a thin-plate landmark fit, which is a displacement field.
    inverse_path = Path(f"{prefix}InverseComposite.h5")
    if transform.is_linear:
        inverse = transform.inverse()
    else:
        inverse = Transform.read(inverse_path) if inverse_path.exists() else None
    transform = Transform(transform.sitk, inverse=inverse)
    progress(1.0, f"{SPEC.label} done")
    return EngineOutput(
        transform=transform,
        inverse=inverse,
        log=log,
        version=SPEC.version(),
        threads=threads,
        timings={"engine_import_s": round(loaded - started, 3), "engine_register_s": round(registered - loaded, 3)},
        guidance=None if guidance is None else {**guidance.describe(), **_guidance_notes(guidance, terms)},
        stages=cumulative_stages(preset, transform),
    )


def cumulative_stages(preset: Preset, transform: Transform) -> list[tuple[str, Transform]]:
    """(stage name, cumulative fixed -> moving transform after it) from the collapsed composite ``transform``.

    Names are the stages' ``transform`` lowercased ("rigid", "affine", "syn"). ``--collapse-output-transforms``
    merges the initial transform and consecutive linear stages into one affine, so those stages appear once,
    under the name of the last of them: after "rigid" then "affine" only "affine" is reported, holding both
    (and the initial transform). The composite's components run outermost first (ITK applies the last-added
    first): ``[initial and linear stages, SyN field]``, so the cumulative transform after the linear stages
    is the composite without its trailing displacement field. The last entry is ``transform`` itself.
    """
    names = [stage["transform"].lower() for stage in preset.recipe["stages"]]
    groups: list[tuple[str, bool]] = []  # (name, linear) per run of linear or of SyN stages, as ANTs collapses them
    for name, stage in zip(names, preset.recipe["stages"]):
        linear = stage["transform"] in _LINEAR
        if groups and groups[-1][1] == linear:
            groups[-1] = (name, linear)
        else:
            groups.append((name, linear))
    if len(groups) == 2 and groups[0][1] and not transform.is_linear:
        parts = transform.components()
        if parts[-1].kind == "displacement":
            return [(groups[0][0], Transform.chain(parts[:-1])), (groups[1][0], transform)]
    # One group, or an order the composite does not split cleanly: only the final transform is known.
    return [(groups[-1][0], transform)] if groups else []


def _guidance_notes(guidance: EngineGuidance, terms: list[ImageTerm]) -> dict:
    """How ANTs combined the terms, for provenance."""
    notes = {
        "engine_weights": "relative: ANTs scales each term's gradient to unit length, then weighs the terms of a stage",
        "engine_winsorize": "done before ANTs, on the intensities only",
        "stage_led_by": "intensities" if intensity_leads(terms, guidance.intensity_weight) else terms[0].name,
    }
    if guidance.has_points:
        notes["points_as"] = f"Gaussian blobs, sigma {BLOB_SIGMA_MM} mm, compared by MeanSquares"
    return notes
