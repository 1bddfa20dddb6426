"""The one check of a registration job before any work: every entry point (``mmreg``, the worker,
the node-level API, the Slicer batch script) calls :func:`preflight_registration` before an engine
is imported, so bad input is refused in about a second with exit code 2 and nothing is written.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from functools import partial
from pathlib import Path

from ..core.choices import INIT_METHODS, check_seed, check_threads
from ..core.errors import InputError
from ..core.file_checks import LINEAR_SUFFIXES
from ..core.files import suffix_of
from ..core.output_safety import check_outputs_apart
from ..engines.registry import ENGINE_NAMES, engine_spec
from .jobs import RegistrationJob

# (field, as a message names it) of the job's image files, and of its mask and label files, by their kind.
IMAGES = tuple((f.name, f"{f.name} image") for f in fields(RegistrationJob) if f.metadata.get("node") == "volume")
MASKS = tuple((f.name, f.name.replace("_", " ")) for f in fields(RegistrationJob)
              if f.metadata.get("node") in ("mask", "labels"))  # fmt: skip
SEGMENTATIONS = tuple(f.name for f in fields(RegistrationJob) if f.metadata.get("node") == "labels")


def _named(job: RegistrationJob, kind: str) -> list[tuple[str, str | None]]:
    """The job's ``kind`` ("input", "output") paths, each named as a message says it ("output volume")."""
    roles = dict(IMAGES)
    return [(roles.get(name, name.replace("_", " ")), getattr(job, name)) for name in job.paths(kind)]


def searches_every_pose(init: str, has_start: bool, guided: bool) -> bool:
    """Whether a run searches every pose: ``init`` any-pose, or auto without a start (an initial transform) or
    guidance, whose starts replace the search."""
    return init == "any-pose" or (init == "auto" and not has_start and not guided)


def rotation_limit_applies(job: RegistrationJob) -> bool:
    """Whether ``max_rotation_deg`` narrows anything: the any-pose search runs (:func:`searches_every_pose`)."""
    guided = bool(job.fixed_segmentation and job.moving_segmentation) or bool(job.guidance_fixed_points)
    return searches_every_pose(job.init, bool(job.initial_transform), guided)


def check_choices(job: RegistrationJob, linear: bool) -> None:
    """Refuse numbers and combinations no engine can use: they would fail (or be ignored) after the run."""
    check_seed(job.seed)
    check_threads(job.threads)
    if job.init not in INIT_METHODS:  # a script's typo had reached the worker (a helper's scripted session)
        raise InputError(f"--init '{job.init}' is not a start: choose one of {', '.join(INIT_METHODS)}")
    if not (math.isfinite(job.max_rotation_deg) and 0 < job.max_rotation_deg <= 180):
        raise InputError(f"--max-rotation-deg {job.max_rotation_deg}: give an angle from 0 to 180 degrees (0 excluded)")
    if job.guidance_weight is not None and not (math.isfinite(job.guidance_weight) and job.guidance_weight > 0):
        raise InputError(f"--guidance-weight {job.guidance_weight}: give a number above 0, e.g. 1")
    segmentations = bool(job.fixed_segmentation and job.moving_segmentation)
    if job.segments and not segmentations:
        raise InputError("--segments chooses among segmentations: add --fixed-segmentation and --moving-segmentation, "
                         "or drop --segments")  # fmt: skip
    if job.guidance_weight is not None and not (segmentations or job.guidance_fixed_points):
        raise InputError("--guidance-weight weighs segmentations or landmarks: add --fixed-segmentation and "
                         "--moving-segmentation (or --fixed-points and --moving-points), or drop --guidance-weight")  # fmt: skip
    if not linear or job.piecewise:
        check_field_outputs(job, f"a {'piecewise' if job.piecewise else job.preset} result is a displacement field")


def check_field_outputs(job: RegistrationJob, why: str) -> None:
    """Refuse an output transform (or inverse) in a linear-only format for a result that is not linear (``why``)."""
    for name in ("output_transform", "output_inverse"):
        path = getattr(job, name)
        if path and suffix_of(path) in LINEAR_SUFFIXES:
            raise InputError(f"the {name.replace('_', ' ')} {path}: {why}, which {suffix_of(path)} cannot hold: "
                             "write it to .h5")  # fmt: skip


def read_target_points(fixed_points: str | None, moving_points: str | None, fixed, moving) -> tuple[dict, list[str]]:
    """Target landmarks for the TRE, as :func:`.stability.assess_with_restarts` takes them (``fixed_points_ras``,
    ``fixed_point_labels``, ``moving_points_ras``, ``moving_point_labels``), and warnings naming points outside
    their image. Refuses one list without the other, an unreadable file, and a list wholly outside its image
    (:func:`..landmarks.bounds.check_lists_inside`). ``fixed``, ``moving``: the images, or readers of their headers
    (the check needs their grids only). Points marked skipped are left out with their partners, with a warning
    (:func:`..landmarks.points_io.read_point_lists`). No points: ({}, [])."""
    from ..core.transforms import lps_ras_points
    from ..landmarks.bounds import check_lists_inside
    from ..landmarks.points_io import read_point_lists

    if bool(fixed_points) != bool(moving_points):
        raise InputError("landmarks need both --fixed-points and --moving-points")
    if not fixed_points:
        return {}, []
    points: dict = {}
    fixed_read, moving_read, warnings = read_point_lists(fixed_points, moving_points)
    lists = (("fixed", fixed_read, fixed), ("moving", moving_read, moving))
    warnings += check_lists_inside([(lps_ras_points(read.points_ras), image, read.labels, role, read.system)
                                    for role, read, image in lists])  # fmt: skip
    for role, read, _ in lists:
        points[f"{role}_points_ras"], points[f"{role}_point_labels"] = read.points_ras, read.labels
    return points, warnings


def check_inverse_wanted(job: RegistrationJob) -> None:
    """Refuse an inverse a user asked for (``mmreg register --output-inverse``) where the result will have none to
    write (it was skipped, silently). Not part of :func:`preflight_registration`: the node layer asks for the
    inverse whenever there is one."""
    from ..core.transforms import Transform
    from ..engines.presets import load_preset

    if not job.output_inverse:
        return
    if job.initial_transform and not Transform.read(job.initial_transform).is_linear:
        raise InputError("--output-inverse: a result that starts from a nonlinear --initial-transform (a thin-plate "
                         "field) has no exact inverse; drop --output-inverse (Slicer inverts it on the fly)")  # fmt: skip
    if job.piecewise:
        raise InputError("--output-inverse: a piecewise result (a blended displacement field) has no exact inverse; "
                         "drop --output-inverse (Slicer inverts the field on the fly when points or the fixed image "
                         "go under it)")  # fmt: skip
    if load_preset(job.engine, job.preset).is_linear:
        return
    spec = engine_spec(job.engine)
    if not spec.nonlinear_inverse:
        able = [name for name in ENGINE_NAMES if engine_spec(name).nonlinear_inverse]
        raise InputError(
            f"--output-inverse: {'an' if spec.label[:1].lower() in 'aeiou' else 'a'} {spec.label} {job.preset} result "
            "has no exact inverse: use --engine "
            f"{' or '.join(able)} (its deformable result keeps one), or drop --output-inverse (Slicer inverts the "
            "result on the fly)"
        )


def segment_pairs(job: RegistrationJob, fixed_labels, moving_labels) -> int:
    """How many segment pairs will guide, from what is cheap to know (1 at least): the --segments named, else the
    names both Slicer .seg.nrrd headers share (``ImageFileInfo.segment_names``), else 1: a plain labelmap's label
    values are known only from all its voxels."""
    from ..core.labels import segment_name_key

    if job.segments:
        return len(dict.fromkeys(job.segments))
    fixed_names = {segment_name_key(name) for name in fixed_labels.segment_names}
    return max(1, len(fixed_names & {segment_name_key(name) for name in moving_labels.segment_names}))


def prepared_grids(job: RegistrationJob, images: list) -> list:
    """The images (ImageFileInfo: fixed, moving) as the job's preparation hands them to the registration, before any
    crop: with the spacing given (--spacing-fixed), read downsampled where --downsample-to (a size in mm, or auto:
    the finer image toward the coarser) takes them."""
    from ..core.file_checks import downsampled
    from ..prep.spacing import resolution_mismatch

    prep, roles = job.prep, ("fixed", "moving")
    given = [getattr(prep, f"spacing_{role}") for role in roles]
    images = [replace(i, spacing=tuple(float(s) for s in g)) if g else i for i, g in zip(images, given)]
    targets: dict[str, float] = {}
    if prep.downsample_to == "auto":
        mismatch = resolution_mismatch(images[0].spacing[:3], images[1].spacing[:3])
        targets = {mismatch.finer: mismatch.target_mm} if mismatch else {}
    elif prep.downsample_to is not None:
        targets = dict.fromkeys(roles, float(prep.downsample_to))
    return [downsampled(i, targets[role]) if role in targets else i for role, i in zip(roles, images)]


def check_run_memory(job: RegistrationJob, preset, images: list, masks: list, segmentations: list) -> None:
    """Refuse, from the headers (ImageFileInfo), a run of ``preset`` this machine's free memory cannot hold
    (:func:`..core.memory.estimate_run_bytes`, guidance included), naming a ``--downsample-to`` that fits.
    A deformable run is sized by the level on which its engine keeps dense displacement fields (ANTs SyN's finest),
    at the fixed voxel size the registration gets.

    With a preparation, the estimate is of the images it hands over (spacing given, downsampled), with its masks.
    A crop (--crop-common, --roi) is sized only once the images are read, and the uncropped estimate would refuse
    runs the crop makes fit: then only what is held whatever the crop is checked, the images as read (or their
    downsampled copies, kept for the output volume) and the segmentations."""
    from ..core.file_checks import check_images_fit_in_memory, check_read_fits_in_memory
    from ..core.memory import GuidanceLoad

    pairs = segment_pairs(job, *segmentations) if len(segmentations) == 2 else 0
    guidance = GuidanceLoad(pairs, bool(job.guidance_fixed_points), sum(s.bytes_in_memory for s in segmentations))
    guidance = None if guidance == GuidanceLoad() else guidance
    what = "the guided registration" if pairs else "the registration"
    linear = preset.is_linear
    shrink_at = None if linear else partial(engine_spec(preset.engine).recipe_module().field_shrink, preset)
    if not job.prep:
        check_images_fit_in_memory(images, what, masks, not linear, guidance, job.engine, shrink_at=shrink_at)
        return
    prepared = prepared_grids(job, images)
    if job.prep.crop_common or job.prep.roi_lps is not None:
        beside = guidance.segmentation_bytes if guidance else 0
        check_read_fits_in_memory(prepared, beside, "reading the images before the crop")
        return
    made = [replace(i, pixel_type="uint8", components=1) for role, i in zip(("fixed", "moving"), prepared)
            if getattr(job.prep, f"mask_{role}") is not None]  # fmt: skip
    check_images_fit_in_memory(prepared, what, masks + made, not linear, guidance, job.engine, command="",
                               shrink_at=shrink_at)  # fmt: skip


def preflight_registration(job: RegistrationJob, data: bool = True) -> RegistrationJob:
    """Refuse a job whose inputs, preset or outputs are wrong; return it with absolute paths.

    Checks, in order: every input file exists; every output can be written (extension, folder); the
    preset loads and names only parameters its engine knows; each image and mask file is sound as
    written (header spacing and direction, all its bytes present); and the run fits in the memory this machine
    has free (:func:`check_run_memory`, which sizes the images as the job's preparation leaves them).
    ``data=False`` checks the headers only: for the worker, whose reader checks every file's bytes
    anyway, so that a compressed file is not decompressed once more just to be checked.
    """
    # Imported here: SimpleITK is not needed to build a job, and the parent side stays light.
    from ..core.file_checks import check_image_file, grid_refusal, read_image_file_info
    from ..engines.presets import load_preset

    job = job.resolved()
    for name, path in job.missing_inputs():
        raise InputError(f"{name.replace('_', ' ')} file not found: {path}: check the path")
    job.check_outputs()
    preset_file = [("preset file", job.preset)] if job.preset and Path(job.preset).is_file() else []
    check_outputs_apart(_named(job, "input") + preset_file, _named(job, "output"))
    preset = load_preset(job.engine, job.preset)
    preset.check_needs(bool(job.fixed_segmentation and job.moving_segmentation))
    if job.piecewise:
        if not (job.fixed_segmentation and job.moving_segmentation):
            raise InputError("--piecewise needs segmentations: add --fixed-segmentation and --moving-segmentation")
        if not preset.is_linear:
            raise InputError(
                f"--piecewise starts from a linear global registration, not the {job.preset} preset: "
                "use --preset rigid or affine (the segments then move on their own)"
            )
    check_choices(job, preset.is_linear)
    spacing_given = dict.fromkeys(("fixed", "moving"), False)
    if job.prep:
        job.prep.check()
        for role in ("fixed", "moving"):  # jobs from a batch manifest or a script, not only mmreg register
            given, made = getattr(job, f"{role}_mask"), getattr(job.prep, f"mask_{role}")
            if given and made is not None:
                raise InputError(
                    f"two {role} masks are given: --{role}-mask {given} (for the registration) and --mask-{role} "
                    f"{made} (made by the preparation); give one {role} mask: --{role}-mask FILE, or --mask-{role} auto|FILE"
                )
        spacing_given = {"fixed": bool(job.prep.spacing_fixed), "moving": bool(job.prep.spacing_moving)}
    if job.initial_transform:  # a mirrored or singular start, refused before any engine
        from ..core.transform_checks import check_initial_transform
        from ..core.transforms import Transform

        start = Transform.read(job.initial_transform)
        check_initial_transform(start, job.initial_transform)
        if not start.is_linear:  # the result holds it: refused only after the engine had run (a helper's sweep)
            check_field_outputs(job, f"the initial transform {job.initial_transform} is nonlinear, and so is the "
                                     "result that holds it")  # fmt: skip
    check = check_image_file if data else read_image_file_info
    images = [check(getattr(job, name), role, spacing_given[name]) for name, role in IMAGES]
    for (name, role), info in zip(IMAGES, images):  # a spacing given (--spacing-fixed) replaces the header's
        too_small = grid_refusal(role, info.size, (1.0,) * 3 if spacing_given[name] else info.spacing)
        if too_small:
            raise too_small
    if Path(job.fixed).resolve() == Path(job.moving).resolve() and not (job.prep and job.prep.spacing_moving):
        raise InputError(  # a reviewer's walkthrough: it ran, and returned the identity with no word
            f"--fixed and --moving name the same file ({job.fixed}): there is nothing to register; give the other "
            "image as --moving"
        )
    checked = {name: check(getattr(job, name), role) for name, role in MASKS if getattr(job, name)}
    masks = [info for name, info in checked.items() if name not in SEGMENTATIONS]
    segmentations = [info for name, info in checked.items() if name in SEGMENTATIONS]
    check_run_memory(job, preset, images, masks, segmentations)
    return job
