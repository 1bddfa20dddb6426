"""``mmreg register`` on two 2D images (issue 23): histology, microscopy, photographs, one MR or CT slice.

When both ``--fixed`` and ``--moving`` are 2D (PNG, TIFF, JPEG, BMP, or NRRD/NIfTI/MHA with one slice),
``mmreg register`` runs :func:`registration.two_d.register_2d` here instead of the 3D workflow, and writes a
2D ITK transform (AffineTransform_double_2_2, fixed -> moving, mm). Only the rigid and affine presets apply;
masks, guidance and prep options are refused with the reason.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..core.errors import EXIT_OK, InputError
from ..core.files import RASTER_SUFFIXES, suffix_of


def _3d_only() -> dict[str, str]:
    """Field -> option of the registration options 2D images cannot use: every input besides the two images
    (masks, start, segmentations, landmarks), the piecewise segments and the inverse."""
    from ..process.jobs import RegistrationJob, option_fields, option_flag

    flags = {field.name: option_flag(field) for field in option_fields(RegistrationJob)}
    names = [name for name in RegistrationJob.paths("input") if name not in ("fixed", "moving")]
    return {name: flags[name] for name in [*names, "piecewise", "output_inverse"]}


def add_2d_arguments(parser: argparse.ArgumentParser) -> None:
    """The pixel sizes of 2D inputs that do not state theirs."""
    group = parser.add_argument_group("2D images", "when both images are 2D (histology, microscopy, one slice)")
    group.add_argument(
        "--fixed-pixel-size", type=float, metavar="MM", help="fixed pixel size in mm (default: the file's)"
    )
    group.add_argument(
        "--moving-pixel-size", type=float, metavar="MM", help="moving pixel size in mm (default: the file's)"
    )


def _is_2d(path: str) -> bool:
    if suffix_of(path) in RASTER_SUFFIXES:
        return True
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return False  # the 3D checks name the problem
    size = reader.GetSize()
    return len(size) == 2 or (len(size) == 3 and size[2] == 1)


def wants_2d(arguments: argparse.Namespace) -> bool:
    """Whether both images are 2D; one 2D and one 3D is refused (InputError)."""
    if not (Path(arguments.fixed).is_file() and Path(arguments.moving).is_file()):
        return False  # the 3D checks say which file is missing
    fixed, moving = _is_2d(arguments.fixed), _is_2d(arguments.moving)
    if fixed != moving:
        flat = "fixed" if fixed else "moving"
        raise InputError(
            f"the {flat} image is 2D and the other 3D: register two 2D images, or two volumes "
            "(stack 2D sections into a volume first with mmreg stack)"
        )
    return fixed


def command_register_2d(arguments: argparse.Namespace) -> int:
    """Check, register, write; an InputError propagates (cli.main exits 2)."""
    from ..core.file_checks import check_output_path
    from ..core.images2d import read_image_2d

    preset = arguments.preset
    if preset not in ("rigid", "affine"):
        raise InputError(f"2D images: --preset {preset} is not available in 2D: use rigid or affine")
    from .prep import wants_prep

    given = [flag for name, flag in _3d_only().items() if getattr(arguments, name, None)]
    given += ["prep options"] if wants_prep(arguments) else []
    if given:
        raise InputError(f"2D images: {', '.join(given)} apply to 3D volumes only: drop them")
    check_output_path(arguments.output_transform, "output transform", (".tfm", ".txt", ".h5"))
    if arguments.output_volume:
        check_output_path(arguments.output_volume, "output volume", (".nrrd", ".nii", ".nii.gz", ".mha"))
    if arguments.summary:
        check_output_path(arguments.summary, "summary", (".json",))
    fixed = read_image_2d(arguments.fixed, arguments.fixed_pixel_size, "fixed image")
    moving = read_image_2d(arguments.moving, arguments.moving_pixel_size, "moving image")
    import SimpleITK as sitk

    from ..core.files import write_atomically
    from ..registration.two_d import register_2d

    result = register_2d(fixed, moving, preset, threads=arguments.threads or 2)
    transform = result.transform()
    write_atomically(arguments.output_transform, lambda tmp: sitk.WriteTransform(transform, tmp))
    outputs = {"transform": str(arguments.output_transform)}
    if arguments.output_volume:
        warped = sitk.Resample(moving.gray, fixed.gray, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        write_atomically(arguments.output_volume, lambda tmp: sitk.WriteImage(warped, tmp, True))
        outputs["volume"] = str(arguments.output_volume)
    if arguments.summary:
        outputs["summary"] = str(arguments.summary)
        summary = {
            "dimension": 2, "preset": preset, "engine": "SimpleITK (2D)", "matrix": result.matrix.tolist(),
            "mutual_information": result.mutual_information, "seconds": round(result.seconds, 3),
            "pixel_mm": {"fixed": fixed.pixel_mm, "moving": moving.pixel_mm},
            "pixel_source": {"fixed": fixed.pixel_source, "moving": moving.pixel_source}, "outputs": outputs,
        }  # fmt: skip
        text = json.dumps(summary, indent=2)
        write_atomically(arguments.summary, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    angle = float(np.degrees(np.arctan2(result.matrix[1, 0], result.matrix[0, 0])))
    print(f"2D {preset}: rotation {angle:.1f} deg, MI {result.mutual_information:.3f}, {result.seconds:.1f} s")
    for name, path in outputs.items():
        print(f"wrote {name}: {path}")
    return EXIT_OK
