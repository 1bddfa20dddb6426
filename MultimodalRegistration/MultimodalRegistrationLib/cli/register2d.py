"""Two 2D images (issue 23): histology, microscopy, photographs, one MR or CT slice.

``mmreg register2d`` registers them; ``mmreg register`` does the same when both ``--fixed`` and ``--moving``
are 2D (PNG, TIFF, JPEG, BMP, or NRRD/NIfTI/MHA with one slice). Any engine with a 2D runner
(``--engine elastix|ants``) and its 2D presets (rigid, similarity, affine: ``Presets/presets_2d.json``) run in
a worker process (:mod:`..process.register2d_job`), which writes a 2D ITK transform and its 3D embedding for
Slicer. In 2D, ``--fixed-points``/``--moving-points`` give the QA's landmark errors (they do not guide), and
``--fixed-labels``/``--moving-labels`` (else the masks) its Dice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import EXIT_OK, InputError, Terminated
from ..core.files import RASTER_SUFFIXES, suffix_of
from ..engines.registry import DEFAULT_ENGINE, ENGINE_NAMES
from .json_output import emit_json, file_or_none, human_stream

# Registration inputs a 2D job reads too: the images, their masks and the landmarks (measured, not guiding).
_ALSO_2D = ("fixed", "moving", "fixed_mask", "moving_mask", "guidance_fixed_points", "guidance_moving_points")


def _3d_only() -> dict[str, tuple[str, object]]:
    """Field -> (option, default) of the registration options 2D images cannot use: the other inputs (start,
    segmentations), the start search's choices, the guidance's segments, weight and metric, the piecewise segments
    and the inverse. Ignored, they would leave a user believing a 180-degree search was limited, say."""
    from dataclasses import fields

    from ..process.jobs import RegistrationJob, option_fields, option_flag

    flags = {field.name: option_flag(field) for field in option_fields(RegistrationJob)}
    defaults = {field.name: field.default for field in fields(RegistrationJob)}
    names = [name for name in RegistrationJob.paths("input") if name not in _ALSO_2D]
    names += ["init", "max_rotation_deg", "segments", "guidance_weight", "metric", "piecewise", "output_inverse"]
    return {name: (flags[name], defaults[name]) for name in names}


# The options only 2D images take: pixel sizes of files that do not state theirs, the QA's picture and regions.
TWO_D_OPTIONS = {
    "--fixed-pixel-size": {"type": float, "metavar": "MM", "help": "fixed pixel size in mm (default: the file's)"},
    "--moving-pixel-size": {"type": float, "metavar": "MM", "help": "moving pixel size in mm (default: the file's)"},
    "--checkerboard": {"metavar": "PNG", "help": "2D QA picture: checkerboards before (top) and after"},
    "--fixed-labels": {"metavar": "IMAGE", "help": "2D QA: a region on the fixed image (Dice)"},
    "--moving-labels": {"metavar": "IMAGE", "help": "2D QA: the same region on the moving image"},
}


def add_2d_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only 2D images take (:data:`TWO_D_OPTIONS`)."""
    group = parser.add_argument_group("2D images", "when both images are 2D (histology, microscopy, one slice)")
    for flag, keywords in TWO_D_OPTIONS.items():
        group.add_argument(flag, **keywords)


def add_register2d_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``register2d`` subcommand on ``subparsers``."""
    parser = subparsers.add_parser("register2d", help="register two 2D images (histology, microscopy, a slice)")
    parser.add_argument("--fixed", required=True, help="fixed 2D image (PNG, TIFF, JPEG, 2D NRRD/NIfTI/MHA)")
    parser.add_argument("--moving", required=True, help="moving 2D image; RGB becomes BT.601 luminance")
    parser.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE)
    parser.add_argument("--preset", default="rigid", help="rigid, similarity or affine (Presets/presets_2d.json)")
    parser.add_argument("--fixed-mask", help="2D mask on the fixed image: limits the metric")
    parser.add_argument("--moving-mask", help="2D mask on the moving image")
    parser.add_argument(
        "--fixed-points", dest="guidance_fixed_points", help="landmarks on the fixed image (QA: landmark errors)"
    )
    parser.add_argument("--moving-points", dest="guidance_moving_points", help="the same landmarks on the moving image")
    parser.add_argument("--seed", type=int, help="random seed (default: fixed, so runs repeat)")
    parser.add_argument("--threads", type=int, help="engine threads")
    parser.add_argument("--output-transform", required=True, help="2D ITK transform (.tfm, .txt, .h5); T_3d beside it")
    parser.add_argument("--output-volume", help="moving image resampled onto the fixed grid")
    parser.add_argument("--json", dest="summary", help="JSON summary with the QA (- : to standard output)")
    add_2d_arguments(parser)
    parser.set_defaults(handler=command_register_2d)
    return parser


def is_2d(path: str, role: str = "image") -> bool:
    """A picture (PNG, JPEG, BMP, a one-page TIFF) or a volume file holding one slice; a multi-page TIFF is a stack.
    A volume file no reader can read is refused (InputError naming what is wrong with it, as the 3D checks name
    it): an empty NRRD had been called 3D, and register2d then said to stack 2D sections."""
    raster = suffix_of(path) in RASTER_SUFFIXES
    if raster and suffix_of(path) not in (".tif", ".tiff"):
        return True
    from ..core.images2d import read_header_2d  # SimpleITK: not imported for the other commands

    header = read_header_2d(path)
    if header is None:
        if not raster:  # a TIFF nothing can read is taken as 2D, and its reader says why
            from ..core.file_checks import read_image_file_info

            read_image_file_info(path, role)
        return raster
    return len(header.size) == 2 or (len(header.size) == 3 and 1 in header.size)  # one slice along any axis


def wants_2d(arguments: argparse.Namespace) -> bool:
    """Whether both images are 2D; one 2D and one 3D is refused (InputError)."""
    if not (Path(arguments.fixed).is_file() and Path(arguments.moving).is_file()):
        return False  # the 3D checks say which file is missing
    fixed, moving = is_2d(arguments.fixed, "fixed image"), is_2d(arguments.moving, "moving image")
    if fixed != moving:
        flat = "fixed" if fixed else "moving"
        other = arguments.moving if fixed else arguments.fixed
        if suffix_of(other) in (".tif", ".tiff"):
            raise InputError(
                f"the {flat} image is 2D and {other} is a multi-page TIFF: a whole-slide pyramid (export its "
                "full-resolution page as a 2D image to register the two) or a volume (register it against a volume; "
                "stack 2D sections into one first with mmreg stack)"
            )
        from ..core.file_kind import DICOM_ADVICE, is_dicom

        slice_file = arguments.fixed if fixed else arguments.moving
        if is_dicom(slice_file):  # one file of a series, as a DICOM folder holds it (a helper's file-system sweep)
            raise InputError(f"the {flat} image {slice_file} is one DICOM slice: {DICOM_ADVICE}")
        raise InputError(
            f"the {flat} image is 2D and the other 3D: register two 2D images, or two volumes "
            "(stack 2D sections into a volume first with mmreg stack)"
        )
    return fixed


def refuse_2d_options(arguments: argparse.Namespace) -> None:
    """Refuse the options only 2D images take (pixel sizes, checkerboard, labels) for two volumes: ignored, they
    would leave a user waiting for a picture or a QA that never comes."""
    given = [flag for flag in TWO_D_OPTIONS if getattr(arguments, flag[2:].replace("-", "_"), None) is not None]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise InputError(f"{', '.join(given)} {verb} to 2D images only, and these are volumes: drop them (for a "
                         "volume's spacing, mmreg prep --spacing-fixed/--spacing-moving; for its QA, mmreg qa)")


def job_from_2d_arguments(arguments: argparse.Namespace):
    """The 2D job the arguments ask for; options that apply to volumes only are refused, naming them."""
    from ..core.choices import DEFAULT_SEED
    from ..process.beside import with_summary_beside
    from ..process.register2d_job import Registration2DJob
    from .prep import wants_prep

    given = [flag for name, (flag, default) in _3d_only().items()
             if getattr(arguments, name, None) not in (None, default)]  # fmt: skip
    given += ["--keep-log"] if getattr(arguments, "keep_log", False) else []
    given += ["prep options"] if hasattr(arguments, "prep") and wants_prep(arguments) else []
    if given:
        raise InputError(f"2D images: {', '.join(given)} apply to 3D volumes only: drop them")
    if not (Path(arguments.fixed).is_file() and Path(arguments.moving).is_file()):
        missing = arguments.fixed if not Path(arguments.fixed).is_file() else arguments.moving
        raise InputError(f"{missing} does not exist: check the path")
    wants_2d(arguments)
    job = Registration2DJob(
        fixed=arguments.fixed, moving=arguments.moving, engine=arguments.engine, preset=arguments.preset,
        fixed_pixel_mm=arguments.fixed_pixel_size, moving_pixel_mm=arguments.moving_pixel_size,
        fixed_mask=arguments.fixed_mask, moving_mask=arguments.moving_mask,
        fixed_points=arguments.guidance_fixed_points, moving_points=arguments.guidance_moving_points,
        fixed_labels=arguments.fixed_labels, moving_labels=arguments.moving_labels,
        seed=DEFAULT_SEED if arguments.seed is None else arguments.seed, threads=arguments.threads,
        output_transform=arguments.output_transform, output_volume=arguments.output_volume,
        summary=file_or_none(arguments.summary), checkerboard=arguments.checkerboard,
    ).resolved()  # fmt: skip
    return with_summary_beside(job)  # --json -: printed, and written beside as well


def command_register_2d(arguments: argparse.Namespace) -> int:
    """Check (exit 2 before any engine runs), register in a worker, print the result and the QA."""
    from ..process.beside import copy_summary_beside
    from ..process.register2d_job import Registration2DWorkerJob, inputs_2d
    from ..registration.describe import describe_2d
    from .run import worker_started_early

    with worker_started_early(arguments.engine) as warm:
        job = job_from_2d_arguments(arguments)
        inputs_2d(job)
        worker = Registration2DWorkerJob(job, warm=warm).start()
        try:
            result = worker.wait()
        except (KeyboardInterrupt, Terminated):
            worker.cancel()  # the worker stops within a second; its scratch folder and partial files go
            raise
    copy_summary_beside(job)
    summary, stream = result.summary, human_stream(arguments.summary)
    print(describe_2d(summary), file=stream)
    qa = summary.qa
    if qa.get("landmarks_after"):
        before, after = qa["landmarks_before"]["mean_mm"], qa["landmarks_after"]["mean_mm"]
        # three significant figures: a 0.4 um error on a 3.25 um slide had printed as 0.00 mm (a helper's sweep)
        pixels = qa.get("landmarks_after_pixels")
        in_pixels = f" ({pixels:.2g} fixed pixels)" if pixels is not None else ""
        print(f"landmarks: mean {before:.3g} mm before, {after:.3g} mm after{in_pixels}", file=stream)
    for warning in [*summary.warnings, *qa.get("warnings", [])]:
        print(f"warning: {warning}", file=sys.stderr)
    if qa.get("dice_after") is not None:
        print(f"mask Dice: {qa['dice_before']:.3f} before, {qa['dice_after']:.3f} after", file=stream)
    for name, path in result.outputs.items():
        print(f"wrote {name}: {path}", file=stream)
    emit_json(arguments.summary, summary.to_dict())
    sys.stdout.flush()
    return EXIT_OK
