"""``mmreg stack``: serial 2D sections aligned without drift and stacked into a volume (issue 23).

Every input is checked before any section is registered (exit 2 naming the fix). Damaged, blank, missing
or much smaller sections do not stop the run: each is reported (stderr, and in the JSON summary).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..core.errors import EXIT_OK, InputError


def add_stack_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``stack`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    parser = subparsers.add_parser(
        "stack", help="align ordered 2D sections (histology, microscopy) without drift and stack them into a volume"
    )
    parser.add_argument(
        "--sections", required=True,
        help="folder or glob ('dir/*.png') of 2D sections (PNG, TIFF, JPEG, NRRD, NIfTI, MHA), in name order",
    )  # fmt: skip
    parser.add_argument(
        "--pixel-size", type=float, metavar="MM", help="section pixel size in mm (default: from the files)"
    )
    parser.add_argument(
        "--section-spacing", type=float, required=True, metavar="MM", help="distance between sections (mm)"
    )
    parser.add_argument("--output-volume", required=True, help="the stacked volume (.nrrd)")
    parser.add_argument(
        "--output-transforms", required=True,
        help="CSV section,a11,a12,a21,a22,tx,ty: x_in = A x_out + t (mm), x_out in the volume plane, "
        "x_in in the section",
    )  # fmt: skip
    parser.add_argument("--affine", action="store_true", help="align with affine transforms instead of rigid ones")
    parser.add_argument("--neighbours", type=int, default=None, help="register each section to this many before it (3)")
    parser.add_argument("--threads", type=int, default=2, help="pairs registered at once (default 2)")
    parser.add_argument("--json", dest="summary", help="write a JSON summary: each section's status, timings, outputs")
    parser.set_defaults(handler=command_stack)
    return parser


def _checked(arguments: argparse.Namespace) -> tuple[list[Path], float]:
    """The section files and the pixel size, after every check that needs no registration."""
    from ..core.file_checks import check_output_path
    from ..core.images2d import check_pixel_size, pixel_size_mm
    from ..stack.sections import find_sections

    spacing = arguments.section_spacing
    if not (math.isfinite(spacing) and spacing > 0):
        raise InputError(f"--section-spacing {spacing} mm: give the distance between sections in mm, e.g. 0.05")
    neighbours = arguments.neighbours
    if neighbours is not None and not 1 <= neighbours <= 20:
        raise InputError(f"--neighbours {neighbours}: give 1 to 20 (default 3)")
    if arguments.threads < 1:
        raise InputError(f"--threads {arguments.threads}: give 1 or more")
    check_output_path(arguments.output_volume, "output volume", (".nrrd",))
    check_output_path(arguments.output_transforms, "output transforms", (".csv",))
    if arguments.summary:
        check_output_path(arguments.summary, "summary", (".json",))
    paths = find_sections(arguments.sections)
    if arguments.pixel_size is not None:
        return paths, check_pixel_size(arguments.pixel_size)
    import SimpleITK as sitk

    for path in paths:  # the first section that reads states the pixel size
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError:
            continue
        size = pixel_size_mm(path, image)
        if size is None:
            raise InputError(f"{path.name} does not state its pixel size: give it with --pixel-size MM")
        return paths, check_pixel_size(size, f"the pixel size in {path.name}")
    raise InputError(f"--sections {arguments.sections}: no section can be read: check the files (PNG, TIFF, NRRD)")


def command_stack(arguments: argparse.Namespace) -> int:
    """Check, align, write, report; an InputError propagates (cli.main exits 2)."""
    paths, pixel_mm = _checked(arguments)
    from ..core.files import write_atomically
    from ..stack.align import NEIGHBOURS, stack_sections

    stream = sys.stderr

    def progress(items, **labels):
        from tqdm import tqdm

        return tqdm(items, file=stream, disable=not stream.isatty(), dynamic_ncols=True, **labels)

    summary = stack_sections(
        paths, pixel_mm, arguments.section_spacing, arguments.output_volume, arguments.output_transforms,
        affine=arguments.affine, neighbours=arguments.neighbours or NEIGHBOURS, threads=arguments.threads,
        progress=progress,
    )  # fmt: skip
    if arguments.summary:
        summary.outputs["summary"] = str(arguments.summary)
        text = json.dumps(summary.to_dict(), indent=2)
        write_atomically(arguments.summary, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    usable = sum(s.status in ("ok", "small") for s in summary.sections)
    print(f"stacked {len(summary.sections)} sections ({usable} aligned, {summary.pairs} pairs) at "
          f"{pixel_mm:g} x {pixel_mm:g} x {arguments.section_spacing:g} mm")  # fmt: skip
    for section in summary.problems():
        print(f"warning: section {section.section} ({section.file}): {section.status}: {section.note}", file=sys.stderr)
    for name, path in summary.outputs.items():
        print(f"wrote {name}: {path}")
    return EXIT_OK
