"""``mmreg qa``: how good is a registration? Landmark errors, overlap, image agreement, Jacobian, stability, report."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..core.choices import DEFAULT_RESTARTS, DEFAULT_ROTATION_DEG, DEFAULT_SHIFT_MM, DEFAULT_THRESHOLD_MM
from ..core.errors import EXIT_OK
from ..engines.registry import DEFAULT_ENGINE, ENGINE_NAMES

if TYPE_CHECKING:  # building the parser imports neither numpy nor SimpleITK
    from ..qa.report_types import QAReport


def add_qa_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``qa`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    parser = subparsers.add_parser(
        "qa",
        help="measure a registration's quality: landmark FRE/TRE, Dice, MI, Jacobian, stability; HTML report",
    )
    parser.add_argument("--fixed", required=True, help="fixed (reference) image file")
    parser.add_argument("--moving", required=True, help="moving image file")
    parser.add_argument("--transform", required=True, help="the registration result (fixed -> moving), e.g. T.h5")
    parser.add_argument("--inverse", help="its inverse (mmreg register --output-inverse): inverse-consistency error")
    parser.add_argument(
        "--fixed-points",
        help="landmarks on the fixed image (.mrk.json, .fcsv, .csv label,x,y,z RAS); refused when all lie outside it",
    )
    parser.add_argument("--moving-points", help="the same landmarks on the moving image")
    parser.add_argument(
        "--fit-points",
        nargs="+",
        metavar="NAME",
        help="labels of the landmarks the transform was fitted to (reported as FRE; the rest as TRE); "
        "space- or comma-separated",
    )
    parser.add_argument("--fixed-labels", help="labelmap on the fixed image")
    parser.add_argument("--moving-labels", help="labelmap on the moving image (same label values)")
    parser.add_argument("--label-interpolation", choices=("nearest", "gaussian"), default="nearest")
    parser.add_argument("--fixed-mask", help="restrict image agreement and the Jacobian to this fixed-image mask")
    parser.add_argument("--moving-mask", help="moving mask, used by the stability restarts")
    parser.add_argument(
        "--stability",
        type=int,
        nargs="?",
        const=DEFAULT_RESTARTS,
        default=0,
        metavar="K",
        help=f"re-run the registration from K perturbed starts (default K={DEFAULT_RESTARTS}) and report the spread",
    )
    parser.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE, help="engine of the restarts")
    parser.add_argument(
        "--preset", help="preset of the restarts (default: rigid, affine or deformable, as the transform)"
    )
    parser.add_argument(
        "--stability-threshold",
        type=float,
        default=DEFAULT_THRESHOLD_MM,
        metavar="MM",
        help=f"flag 'unstable' above this 95th-percentile spread (default {DEFAULT_THRESHOLD_MM:g} mm)",
    )
    parser.add_argument(
        "--stability-shift",
        type=float,
        default=DEFAULT_SHIFT_MM,
        metavar="MM",
        help=f"shift of each perturbed start (default {DEFAULT_SHIFT_MM:g} mm)",
    )
    parser.add_argument(
        "--stability-rotation",
        type=float,
        default=DEFAULT_ROTATION_DEG,
        metavar="DEG",
        help=f"rotation of each perturbed start (default {DEFAULT_ROTATION_DEG:g} degrees)",
    )
    parser.add_argument("--stability-timeout", type=float, metavar="S", help="stop a restart after S seconds")
    parser.add_argument("--report", required=True, help="HTML report to write (pictures go beside it)")
    parser.add_argument("--json", dest="summary", help="also write the metrics as JSON")
    parser.set_defaults(handler=command_qa)
    return parser


def _fit_names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _print_summary(report: QAReport) -> None:
    landmarks = report.landmarks
    if landmarks is not None:
        for name, before, after in (
            ("FRE", landmarks.fre_before, landmarks.fre_after),
            ("TRE", landmarks.tre_before, landmarks.tre_after),
        ):
            if after is not None:
                print(
                    f"{name} ({after.count} points): mean {before.mean_mm:.2f} -> "
                    f"{after.mean_mm:.2f} mm, RMS {after.rms_mm:.2f} mm, max {after.max_mm:.2f} mm"
                )
    if report.segmentation is not None:
        for before, after in zip(report.segmentation.before, report.segmentation.after):
            hd95 = "-" if after.hausdorff95_mm is None else f"{after.hausdorff95_mm:.2f} mm"
            print(f"label {after.name}: Dice {before.dice:.3f} -> {after.dice:.3f}, HD95 {hd95}")

    def change(before: float | None, after: float | None) -> str:
        return " -> ".join("-" if number is None else f"{number:.3f}" for number in (before, after))

    before, after = report.images_before, report.images_after
    print(
        f"MI {change(before.mutual_information, after.mutual_information)} nats, "
        f"NMI {change(before.normalized_mutual_information, after.normalized_mutual_information)}, "
        f"NCC {change(before.normalized_cross_correlation, after.normalized_cross_correlation)}"
    )
    jacobian = report.jacobian
    print(
        f"Jacobian determinant: min {jacobian.minimum:.3f}, 1%-99% {jacobian.percentile_1:.3f}-"
        f"{jacobian.percentile_99:.3f}, folding {jacobian.folding_percent:.3g}%"
    )
    consistency = report.inverse_consistency
    if consistency.mean_mm is not None:
        print(f"inverse consistency: mean {consistency.mean_mm:.3f} mm, max {consistency.max_mm:.3f} mm")
    stability = report.stability
    if stability is not None:
        print(
            f"stability ({stability.restarts} restarts): spread {stability.spread_p95_mm:.2f} mm (p95), "
            f"{stability.spread_max_mm:.2f} mm (max): {stability.verdict}"
        )


def command_qa(arguments: argparse.Namespace) -> int:
    """Measure, write the report (and JSON) and print a summary; InputError and EngineError propagate."""
    from ..core.errors import InputError
    from ..core.file_checks import check_output_path

    check_output_path(arguments.report, "report", (".html", ".htm"))
    if arguments.summary:
        check_output_path(arguments.summary, "summary", (".json",))
    from ..core.images import read_image
    from ..core.transforms import Transform, lps_ras_points
    from ..landmarks.bounds import check_points_inside
    from ..landmarks.points_io import read_points_file
    from ..process.stability import assess_with_restarts
    from ..qa.assess import write_qa_outputs

    def optional(path, role):
        return read_image(path, role) if path else None

    fixed = read_image(arguments.fixed, "fixed image")
    moving = read_image(arguments.moving, "moving image")
    transform = Transform.read(arguments.transform)
    inverse = Transform.read(arguments.inverse) if getattr(arguments, "inverse", None) else None
    points = {}
    outside: list[str] = []  # points outside their image: all of a list refused here, before any work
    if bool(arguments.fixed_points) != bool(arguments.moving_points):
        raise InputError("landmarks need both --fixed-points and --moving-points")
    if arguments.fixed_points:
        for role, path, image in (
            ("fixed", arguments.fixed_points, fixed),
            ("moving", arguments.moving_points, moving),
        ):
            read = read_points_file(path)
            outside += check_points_inside(lps_ras_points(read.points_ras), image, read.labels, role, read.system)
            points[f"{role}_points_ras"], points[f"{role}_point_labels"] = read.points_ras, read.labels
    sources = {
        key: getattr(arguments, key, None)
        for key in (
            "fixed",
            "moving",
            "transform",
            "inverse",
            "fixed_points",
            "moving_points",
            "fixed_labels",
            "moving_labels",
            "fixed_mask",
            "moving_mask",
        )
    }
    stability_options = {
        "engine": arguments.engine,
        "preset": arguments.preset,
        "threshold_mm": arguments.stability_threshold,
        "shift_mm": arguments.stability_shift,
        "rotation_deg": arguments.stability_rotation,
        "timeout_s": arguments.stability_timeout,
    }
    progress = None
    if arguments.stability:
        from .run import ProgressPrinter

        progress = ProgressPrinter()
    fixed_labels = optional(arguments.fixed_labels, "fixed labelmap")
    fixed_mask = optional(arguments.fixed_mask, "fixed mask")
    report = assess_with_restarts(
        fixed,
        moving,
        transform,
        inverse=inverse,
        fit_labels=_fit_names(arguments.fit_points),
        fixed_labels=fixed_labels,
        moving_labels=optional(arguments.moving_labels, "moving labelmap"),
        label_interpolation=arguments.label_interpolation,
        fixed_mask=fixed_mask,
        moving_mask=optional(arguments.moving_mask, "moving mask"),
        stability_restarts=arguments.stability or 0,
        stability_options=stability_options,
        sources={key: value for key, value in sources.items() if value},
        progress=progress,
        **points,
    )
    report.warnings[:0] = outside
    outputs = write_qa_outputs(
        report,
        fixed,
        moving,
        transform,
        arguments.report,
        arguments.summary,
        fixed_labels=fixed_labels,
        fixed_mask=fixed_mask,
    )
    _print_summary(report)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for name, path in outputs.items():
        print(f"wrote {name}: {path}")
    return EXIT_OK
