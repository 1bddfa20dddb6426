"""``mmreg prealign``: fit a fixed -> moving transform to paired landmark files and report its quality."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path

from ..core.choices import LANDMARK_TRANSFORMS
from ..core.errors import EXIT_OK
from .json_output import emit_json, file_or_none, human_stream

TYPES = LANDMARK_TRANSFORMS  # the transform types a landmark fit offers


def add_prealign_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``prealign`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    parser = subparsers.add_parser(
        "prealign",
        help="fit a transform to paired landmarks (fixed -> moving), with residuals and leave-one-out error",
    )
    parser.add_argument("--fixed-points", required=True, help="landmarks on the fixed image (.mrk.json, .fcsv, .csv)")
    parser.add_argument("--moving-points", required=True, help="the same landmarks on the moving image")
    parser.add_argument("--type", choices=TYPES, default="rigid", help="transform type (default rigid)")
    parser.add_argument("--output-transform", required=True, help="ITK transform file to write; tps needs .h5")
    parser.add_argument("--reference-image", help="grid for the tps displacement field (default: the fixed image)")
    parser.add_argument(
        "--fixed-image", help="fixed image: refuse fixed points that all lie outside it, warn about some outside"
    )
    parser.add_argument(
        "--moving-image", help="moving image: refuse moving points that all lie outside it, warn about some outside"
    )
    parser.add_argument("--report", help="write the residual table as CSV (RAS mm)")
    parser.add_argument("--json", dest="summary", help="write a JSON summary of the fit (- : to standard output)")
    parser.set_defaults(handler=command_prealign)
    return parser


def command_prealign(arguments: argparse.Namespace) -> int:
    """Fit, write the outputs and print the residuals; an InputError propagates (cli.main exits 2)."""
    from ..core.errors import InputError
    from ..core.file_checks import TRANSFORM_SUFFIXES, check_output_path

    check_output_path(arguments.output_transform, "output transform", TRANSFORM_SUFFIXES)
    json_file = file_or_none(getattr(arguments, "summary", None))  # --json -: the fit goes to standard output
    for name, path, suffixes in (("report", getattr(arguments, "report", None), (".csv",)),
                                 ("summary", json_file, (".json",))):  # fmt: skip
        if path:
            check_output_path(path, name, suffixes)
    from ..core.output_safety import check_outputs_apart

    inputs = ("fixed_points", "moving_points", "reference_image", "fixed_image", "moving_image")
    check_outputs_apart(
        {f"--{name.replace('_', '-')}": getattr(arguments, name, None) for name in inputs},
        {"--output-transform": arguments.output_transform, "--report": getattr(arguments, "report", None),
         "--json": json_file},
    )  # fmt: skip
    from ..core.files import write_atomically
    from ..core.images import read_image
    from ..landmarks.fit import fit_landmarks
    from ..landmarks.points_io import read_points_file

    kind = getattr(arguments, "type", None) or "rigid"
    if kind == "tps" and not str(arguments.output_transform).lower().endswith((".h5", ".hdf5")):
        raise InputError(f"a tps result is a displacement field: write it to .h5, not {arguments.output_transform}")
    fixed = read_points_file(arguments.fixed_points)
    moving = read_points_file(arguments.moving_points)
    images = {}
    for key, role in (
        ("reference_image", "reference image"),
        ("fixed_image", "fixed image"),
        ("moving_image", "moving image"),
    ):
        path = getattr(arguments, key, None)
        images[key] = read_image(path, role) if path else None
    fit = fit_landmarks(  # refuses points that all lie outside their image, before anything is written
        fixed.points_ras,
        moving.points_ras,
        kind=kind,
        fixed_labels=fixed.labels,
        moving_labels=moving.labels,
        fixed_system=fixed.system,
        moving_system=moving.system,
        **images,
    )
    fit.transform.write(arguments.output_transform)
    outputs = {"transform": str(arguments.output_transform)}
    if getattr(arguments, "report", None):
        fit.residuals_csv(arguments.report)
        outputs["report"] = str(arguments.report)
    if getattr(arguments, "summary", None):
        summary = fit.summary()
        summary.inputs = {
            "fixed_points": str(arguments.fixed_points),
            "moving_points": str(arguments.moving_points),
            **{key: str(getattr(arguments, key)) if images[key] is not None else None for key in images},
        }
        summary.outputs = dict(outputs, summary=str(arguments.summary))
        if json_file:
            text = json.dumps(summary.to_dict(), indent=2)
            write_atomically(json_file, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
            outputs["summary"] = json_file
    with redirect_stdout(human_stream(getattr(arguments, "summary", None))):
        print(fit.report())
        for warning in fit.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for name, path in outputs.items():
            print(f"wrote {name}: {path}")
    if getattr(arguments, "summary", None):
        emit_json(arguments.summary, summary.to_dict())
    return EXIT_OK
