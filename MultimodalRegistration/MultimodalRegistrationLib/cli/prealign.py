"""``mmreg prealign``: fit a fixed -> moving transform to paired landmark files and report its quality."""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import redirect_stdout

from ..core import command_line
from ..core.choices import LANDMARK_TRANSFORMS
from ..core.errors import EXIT_OK
from ..process.jobs import PrealignJob
from .job_options import add_options, option_values
from .json_output import emit_json, file_or_none, human_stream

TYPES = LANDMARK_TRANSFORMS  # the transform types a landmark fit offers


def add_prealign_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``prealign`` subcommand on ``subparsers`` (from ``add_subparsers``): :class:`PrealignJob`'s options."""
    parser = subparsers.add_parser(
        "prealign",
        help="fit a transform to paired landmarks (fixed -> moving), with residuals and leave-one-out error",
    )
    add_options(parser, PrealignJob)
    parser.set_defaults(handler=command_prealign)
    return parser


def command_prealign(arguments: argparse.Namespace) -> int:
    """Fit, write the outputs and print the residuals; an InputError propagates (cli.main exits 2)."""
    from ..core.errors import InputError
    from ..core.file_checks import check_output_path

    job = PrealignJob(**option_values(PrealignJob, arguments))
    json_file = file_or_none(job.summary)  # --json -: the fit goes to standard output
    outputs_given = {name: getattr(job, name) for name in PrealignJob.paths("output")} | {"summary": json_file}
    for name, path in outputs_given.items():
        if path:
            check_output_path(path, name.replace("_", " "), PrealignJob.suffixes(name))
    from ..core.output_safety import check_outputs_apart

    flags = PrealignJob.options("input") | PrealignJob.options("output")
    check_outputs_apart({flags[name]: getattr(job, name) for name in PrealignJob.paths("input")},
                        {flags[name]: path for name, path in outputs_given.items()})  # fmt: skip
    from ..core.files import write_text_atomically
    from ..core.images import read_image
    from ..landmarks.bounds import PointBounds
    from ..landmarks.fit import fit_landmarks
    from ..landmarks.points_io import read_point_lists

    if job.type == "tps" and not str(job.output_transform).lower().endswith((".h5", ".hdf5")):
        raise InputError(f"a tps result is a displacement field: write it to .h5, not {job.output_transform}")
    if job.reference_image and job.type != "tps":  # it had been ignored without a word (a helper's QA sweep)
        raise InputError(f"--reference-image is the grid of a tps field, and a {job.type} fit has none: leave it "
                         "out, or use --type tps")  # fmt: skip
    fixed, moving, skipped = read_point_lists(job.fixed_points, job.moving_points)
    images = {key: read_image(getattr(job, key), key.replace("_", " ")) if getattr(job, key) else None
              for key in PrealignJob.paths("input") if key.endswith("_image")}  # fmt: skip
    for key, image in images.items():  # a 2D image's check of the points had been skipped without a word
        if image is not None and image.GetDimension() != 3:
            raise InputError(
                f"{flags[key]} {getattr(job, key)} is a {image.GetDimension()}D image: prealign fits landmarks in "
                "3D; give the 3D volume the points were placed on, or register two 2D images with mmreg register2d "
                "--fixed-points/--moving-points"
            )
    bounds = PointBounds(images["fixed_image"], images["moving_image"], fixed.system, moving.system)
    # Refuses points that all lie outside their image, before anything is written.
    fit = fit_landmarks(fixed.points_ras, moving.points_ras, job.type, fixed.labels, moving.labels,
                        images["reference_image"], bounds)  # fmt: skip
    fit.warnings[:0] = skipped
    fit.transform.write(job.output_transform)
    outputs = {"transform": str(job.output_transform)}
    if job.report:
        fit.residuals_csv(job.report)
        outputs["report"] = str(job.report)
    if job.summary:
        summary = fit.summary()
        summary.command = command_line.join(["mmreg", *map(str, getattr(arguments, "argv", sys.argv[1:]))])
        summary.working_folder = os.getcwd()  # the command's relative paths are relative to it (audit)
        summary.inputs = {name: os.path.abspath(getattr(job, name)) if getattr(job, name) else None
                          for name in PrealignJob.paths("input")}  # fmt: skip
        summary.points_systems = {f"{role}_points": {"system": read.system.system, "declared": read.system.declared}
                                  for role, read in (("fixed", fixed), ("moving", moving))}  # fmt: skip
        summary.outputs = dict(outputs, summary=str(job.summary))
        if json_file:
            text = json.dumps(summary.to_dict(), indent=2)
            write_text_atomically(json_file, text)
            outputs["summary"] = json_file
    with redirect_stdout(human_stream(job.summary)):
        print(fit.report())
        for warning in fit.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for name, path in outputs.items():
            print(f"wrote {name}: {path}")
    if job.summary:
        emit_json(job.summary, summary.to_dict())
    return EXIT_OK
