"""``mmreg stack``: serial 2D sections aligned without drift and stacked into a volume (issue 23).

Every input is checked before any section is registered (exit 2 naming the fix). Damaged, blank, missing
or much smaller sections do not stop the run: each is reported (stderr, and in the JSON summary).
"""

from __future__ import annotations

import argparse
import sys

from ..core.errors import EXIT_OK


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
    parser.add_argument(
        "--reference", metavar="VOLUME",
        help="a volume of the same tissue (e.g. the MRI), resampled so that its third axis is the cutting direction: "
        "evenly spaced sections are also registered to their matching planes, which removes the slow drift and bend",
    )  # fmt: skip
    parser.add_argument(
        "--reference-every", type=int, default=None, metavar="N",
        help="register every N-th section to the reference (1: all; default: sections about 4 mm apart, and at "
        "least 6 over the stack)",
    )  # fmt: skip
    parser.add_argument(
        "--reference-offset", type=float, default=0.0, metavar="MM",
        help="depth of the first section in the reference, in mm from its first slice (default 0); section k lies "
        "at this plus k times the section spacing",
    )  # fmt: skip
    parser.add_argument("--json", dest="summary", help="write a JSON summary: each section's status, timings, outputs")
    parser.set_defaults(handler=command_stack)
    return parser


def command_stack(arguments: argparse.Namespace) -> int:
    """Check, align, write, report; an InputError propagates (cli.main exits 2)."""
    from ..core.errors import InputError
    from ..process.jobs import StackJob
    from ..process.stack_job import execute
    from ..stack.sections import USABLE

    if not arguments.reference and (arguments.reference_every is not None or arguments.reference_offset):
        given = "--reference-every" if arguments.reference_every is not None else "--reference-offset"
        raise InputError(f"{given} places sections on a reference volume: give --reference VOLUME too, or leave it out")
    job = StackJob(
        sections=arguments.sections, section_mm=arguments.section_spacing, output_volume=arguments.output_volume,
        output_transforms=arguments.output_transforms, pixel_mm=arguments.pixel_size, affine=arguments.affine,
        neighbours=arguments.neighbours, threads=arguments.threads, reference=arguments.reference,
        reference_offset_mm=arguments.reference_offset, reference_every=arguments.reference_every,
        summary=arguments.summary,
    )  # fmt: skip
    stream = sys.stderr

    def progress(items, **labels):
        from .bars import progress_over

        return progress_over(items, file=stream, disable=not stream.isatty(), dynamic_ncols=True, **labels)

    summary, pixel_mm = execute(job, progress)
    usable = sum(s.status in USABLE for s in summary.sections)
    print(f"stacked {len(summary.sections)} sections ({usable} aligned, {summary.pairs} pairs) at "
          f"{pixel_mm:g} x {pixel_mm:g} x {job.section_mm:g} mm"
          + (" with the reference" if job.reference else ""))  # fmt: skip
    for section in summary.problems():
        print(f"warning: section {section.section} ({section.file}): {section.status}: {section.note}", file=sys.stderr)
    for name, path in summary.outputs.items():
        print(f"wrote {name}: {path}")
    return EXIT_OK
