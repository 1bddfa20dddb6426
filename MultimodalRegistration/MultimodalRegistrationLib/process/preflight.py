"""The one check of a registration job before any work: every entry point (``mmreg``, the worker,
the node-level API, the Slicer batch script) calls :func:`preflight_registration` before an engine
is imported, so bad input is refused in about a second with exit code 2 and nothing is written.
"""

from __future__ import annotations

from ..core.errors import InputError
from .jobs import RegistrationJob

IMAGES = (("fixed", "fixed image"), ("moving", "moving image"))
MASKS = (
    ("fixed_mask", "fixed mask"),
    ("moving_mask", "moving mask"),
    ("fixed_segmentation", "fixed segmentation"),
    ("moving_segmentation", "moving segmentation"),
)


def preflight_registration(job: RegistrationJob, data: bool = True) -> RegistrationJob:
    """Refuse a job whose inputs, preset or outputs are wrong; return it with absolute paths.

    Checks, in order: every input file exists; every output can be written (extension, folder); the
    preset loads and names only parameters its engine knows; each image and mask file is sound as
    written (header spacing and direction, all its bytes present); and, unless the job prepares
    (and so may downsample) the images first, the run fits in the memory this machine has free.
    ``data=False`` checks the headers only: for the worker, whose reader checks every file's bytes
    anyway, so that a compressed file is not decompressed once more just to be checked.
    """
    # Imported here: SimpleITK is not needed to build a job, and the parent side stays light.
    from ..core.file_checks import check_image_file, check_images_fit_in_memory, read_image_file_info
    from ..engines.presets import load_preset

    job = job.resolved()
    for name, path in job.missing_inputs():
        raise InputError(f"{name.replace('_', ' ')} file not found: {path}: check the path")
    job.check_outputs()
    preset = load_preset(job.engine, job.preset)
    if job.piecewise:
        if not (job.fixed_segmentation and job.moving_segmentation):
            raise InputError("--piecewise needs segmentations: add --fixed-segmentation and --moving-segmentation")
        if not preset.is_linear:
            raise InputError(
                f"--piecewise starts from a linear global registration, not the {job.preset} preset: "
                "use --preset rigid or affine (the segments then move on their own)"
            )
    spacing_given = dict.fromkeys(("fixed", "moving"), False)
    if job.prep:
        spacing_given = {"fixed": bool(job.prep.spacing_fixed), "moving": bool(job.prep.spacing_moving)}
    check = check_image_file if data else read_image_file_info
    images = [check(getattr(job, name), role, spacing_given[name]) for name, role in IMAGES]
    masks = [check(getattr(job, name), role) for name, role in MASKS if getattr(job, name)]
    if not job.prep:
        check_images_fit_in_memory(images, masks=masks, deformable=not preset.is_linear)
    return job
