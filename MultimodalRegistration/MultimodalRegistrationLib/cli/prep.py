"""``mmreg prep``: crop, mask, bias-correct and fix the spacing of a pair, writing new images and a JSON record.

The same step options switch on ``mmreg register --prep``, which prepares the pair on the fly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import EXIT_OK
from ..prep.options import DEFAULT_MARGIN_MM, MODALITIES, N4_CHOICES, PrepOptions


def add_prep_arguments(parser: argparse.ArgumentParser, for_register: bool = False) -> None:
    """The preparation steps' options (shared by ``mmreg prep`` and ``mmreg register --prep``)."""
    group = parser.add_argument_group("preparation" if for_register else "steps")
    if for_register:
        group.add_argument(
            "--prep", action="store_true", help="prepare the pair first (step options imply it; alone: --crop-common)"
        )
    group.add_argument("--crop-common", action="store_true",
                       help="crop both images to the physical region both cover (placed by --initial-transform, "
                            "else by their own coordinates)")  # fmt: skip
    group.add_argument("--margin", type=float, default=DEFAULT_MARGIN_MM,
                       help=f"margin around the common region, mm (default {DEFAULT_MARGIN_MM:g})")  # fmt: skip
    group.add_argument("--roi", help="crop to a box in fixed space: R1,A1,S1,R2,A2,S2 (two opposite corners, RAS mm)")
    for role in ("fixed", "moving"):
        group.add_argument(f"--mask-{role}", metavar="auto|FILE", help=f"{role} mask: automatic, or a labelmap file")
    group.add_argument("--modality-fixed", choices=MODALITIES, default="auto", help="ct or mr (default: guessed)")
    group.add_argument("--modality-moving", choices=MODALITIES, default="auto", help="ct or mr (default: guessed)")
    group.add_argument("--exclude-above", type=float, metavar="HU", help="leave CT voxels above HU (metal) out")
    group.add_argument("--exclude-margin", type=float, default=3.0, help="and this many mm around them (default 3)")
    group.add_argument("--n4", choices=N4_CHOICES, help="N4 bias-field correction of the MR image(s)")
    group.add_argument("--n4-shrink", type=int, help="N4 shrink factor (default: voxels of about 6 mm)")
    for role in ("fixed", "moving"):
        group.add_argument(f"--spacing-{role}", metavar="SX,SY,SZ", help=f"set the {role} spacing, mm (no resampling)")
    group.add_argument("--downsample-to", metavar="MM|auto",
                       help="downsample images finer than MM (anti-aliased, streamed from NRRD/MHA/NIfTI/TIFF); "
                            "auto: the finer image toward the coarser when they differ 4x or more")  # fmt: skip


def add_prep_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``prep`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    parser = subparsers.add_parser(
        "prep", help="crop to the common region, mask, bias-correct and fix spacing; writes new images and prep.json"
    )
    parser.add_argument("--fixed", required=True, help="fixed (reference) image file")
    parser.add_argument("--moving", required=True, help="moving image file")
    parser.add_argument("--initial-transform", help="ITK transform file (fixed -> moving) placing the images")
    add_prep_arguments(parser)
    parser.add_argument("--output-dir", required=True, help="folder for fixed.nrrd, moving.nrrd, masks and prep.json")
    parser.set_defaults(handler=command_prep)
    return parser


def wants_prep(arguments: argparse.Namespace) -> bool:
    """True when ``mmreg register`` was asked to prepare: --prep or any step option."""
    return bool(getattr(arguments, "prep", False)) or bool(_options(arguments).steps_on())


def prep_options(arguments: argparse.Namespace) -> PrepOptions:
    """The parsed step options (for a worker job's ``prep``)."""
    options = _options(arguments)
    if getattr(arguments, "prep", False) and not options.steps_on():
        options.crop_common = True  # --prep alone: the step that needs no choices
    return options


def _options(arguments: argparse.Namespace) -> PrepOptions:
    roi = None
    if arguments.roi:
        from ..prep.pipeline import roi_from_ras_corners

        roi = roi_from_ras_corners(arguments.roi.split(","))
    return PrepOptions(
        crop_common=bool(arguments.crop_common),
        margin_mm=float(arguments.margin),
        roi_lps=roi,
        mask_fixed=_mask_option(arguments.mask_fixed),
        mask_moving=_mask_option(arguments.mask_moving),
        modality_fixed=arguments.modality_fixed,
        modality_moving=arguments.modality_moving,
        exclude_above=arguments.exclude_above,
        exclude_margin_mm=float(arguments.exclude_margin),
        n4=arguments.n4,
        n4_shrink=arguments.n4_shrink,
        spacing_fixed=_spacing(arguments.spacing_fixed),
        spacing_moving=_spacing(arguments.spacing_moving),
        downsample_to=_downsample(arguments.downsample_to),
    )


def _mask_option(value: str | None) -> str | None:
    if value is None or value == "auto":
        return value
    path = Path(value)
    if not path.exists():
        from ..core.errors import InputError

        raise InputError(f"mask file not found: {value}: give a labelmap file or 'auto'")
    return str(path.resolve())  # the worker runs in another folder


def _spacing(value: str | None):
    if value is None:
        return None
    from ..prep.spacing import parse_spacing

    return list(parse_spacing(value))


def _downsample(value: str | None):
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        from ..core.errors import InputError

        raise InputError(f"--downsample-to '{value}' is neither a size in mm nor auto") from None


def _file_given(mask: str | None) -> str | None:
    """A mask option's file (None for 'auto' or none)."""
    return None if mask in (None, "auto") else mask


def command_prep(arguments: argparse.Namespace) -> int:
    """Prepare, write the images, masks and prep.json; an InputError propagates (cli.main exits 2)."""
    from ..core.file_checks import check_output_path
    from ..core.files import write_atomically

    check_output_path(Path(arguments.output_dir) / "prep.json", "prepared images")
    from ..core.output_safety import check_outputs_apart
    from ..core.transforms import Transform
    from ..prep.pipeline import prepare, write_prepared

    options = _options(arguments)
    inputs = {"--fixed": arguments.fixed, "--moving": arguments.moving, "--initial-transform": arguments.initial_transform,
              "--mask-fixed": _file_given(options.mask_fixed), "--mask-moving": _file_given(options.mask_moving)}  # fmt: skip
    names = ("fixed.nrrd", "moving.nrrd", "fixed_mask.nrrd", "moving_mask.nrrd", "prep.json")
    outputs = {f"prepared {name}": Path(arguments.output_dir) / name for name in names}
    check_outputs_apart(inputs, outputs, "choose another --output-dir (prep writes fixed.nrrd, moving.nrrd, masks and "
                        "prep.json there)")  # fmt: skip
    initial = Transform.read(arguments.initial_transform) if arguments.initial_transform else None

    def progress(fraction: float, stage: str) -> None:
        print(f"{fraction:4.0%} {stage}", file=sys.stderr, flush=True)

    pair = prepare(arguments.fixed, arguments.moving, options, initial_transform=initial, progress=progress)
    output_dir = Path(arguments.output_dir)
    written = write_prepared(pair, output_dir)
    summary = pair.summary()
    summary.inputs = {key: getattr(arguments, key) for key in ("fixed", "moving", "initial_transform")}
    summary.options = options
    summary.outputs = dict(written, summary=str(output_dir / "prep.json"))
    text = json.dumps(summary.to_dict(), indent=2)
    write_atomically(output_dir / "prep.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    for step in pair.steps:
        print(f"{step['step']} ({step['image']}): {step['why']}")
    for warning in pair.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for name, path in summary.outputs.items():
        print(f"wrote {name}: {path}")
    return EXIT_OK
