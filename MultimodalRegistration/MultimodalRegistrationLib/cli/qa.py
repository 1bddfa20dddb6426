"""``mmreg qa``: how good is a registration? Landmark errors, overlap, image agreement, Jacobian, stability, report."""

from __future__ import annotations

import argparse
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import EXIT_OK
from ..process.jobs import QAJob
from .job_options import add_options, option_values
from .json_output import emit_json, file_or_none, human_stream

if TYPE_CHECKING:  # building the parser imports neither numpy nor SimpleITK
    from ..qa.report_types import QAReport


def add_qa_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``qa`` subcommand on ``subparsers`` (from ``add_subparsers``): the options of :class:`QAJob`."""
    parser = subparsers.add_parser(
        "qa",
        help="measure a registration's quality: landmark FRE/TRE, Dice, MI, Jacobian, stability; HTML report",
    )
    add_options(parser, QAJob)
    # Not given: None, so that a --stability 0 typed (a check asked for, of no restart) is told from none asked.
    parser.set_defaults(handler=command_qa, stability=None)
    return parser


def qa_job(arguments: argparse.Namespace) -> QAJob:
    """The measurement the arguments ask for; ``--fit-points`` names split at commas too, where no label holds the
    comma (:func:`..qa.landmarks.fit_names`). Input paths are made
    absolute here, once: the stability restarts run in their own folders, and the report records where they were."""
    from dataclasses import replace

    from ..core.output_safety import resolved_path

    job = QAJob(**option_values(QAJob, arguments))
    job.fit_points = [name.strip() for name in job.fit_points or [] if name.strip()] or None
    job.segments = _fit_names(job.segments)
    absolute = {name: str(resolved_path(getattr(job, name), name.replace("_", " ")))
                for name in QAJob.paths("input") if getattr(job, name)}  # fmt: skip
    return replace(job, **absolute)


def _fit_names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _print_summary(report: QAReport) -> None:
    landmarks = report.landmarks
    if landmarks is not None:
        for name, before, after, forward in (
            ("FRE", landmarks.fre_before, landmarks.fre_after, landmarks.fre_forward),
            ("TRE", landmarks.tre_before, landmarks.tre_after, landmarks.tre_forward),
        ):
            if after is not None:
                print(
                    f"{name} ({after.count} points): mean {before.mean_mm:.2f} -> "
                    f"{after.mean_mm:.2f} mm, RMS {after.rms_mm:.2f} mm, max {after.max_mm:.2f} mm"
                )
            if after is not None and forward is not None and abs(forward.mean_mm - after.mean_mm) >= 0.005:
                print(f"  {name}, fixed landmarks mapped forward (moving space): mean {forward.mean_mm:.2f} mm, "
                      f"RMS {forward.rms_mm:.2f} mm, max {forward.max_mm:.2f} mm")  # fmt: skip
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
            # Which engine restarted matters: a transform file does not say which made it (a helper's ANTs result was
            # restarted with elastix by default).
            f"stability ({stability.counted} restarts of {stability.engine} {stability.preset} finished; --engine and "
            f"--preset choose them): spread {stability.spread_p95_mm:.2f} mm (p95), "
            f"{stability.spread_max_mm:.2f} mm (max): {stability.verdict}"
        )


RESTART_OPTIONS = ("engine", "preset", "stability_threshold", "stability_shift", "stability_rotation",
                   "stability_timeout", "moving_mask")  # they tune the stability restarts only


def _check_restart_options(job, typed: list[str] | None = None) -> None:
    """Refuse an option of the stability restarts given without --stability (it did nothing, silently); ``typed``:
    the command line, on which an option typed at its default value counts too."""
    from dataclasses import fields

    from .job_options import refuse_idle_tuning, set_by_user

    defaults = {f.name: f.default for f in fields(job)}
    flags = {name: "--" + name.replace("_", "-") for name in RESTART_OPTIONS} | {"stability": "--stability (or --stability K)"}
    changed = [name for name in RESTART_OPTIONS if set_by_user(flags[name], getattr(job, name), defaults[name], typed)]
    refuse_idle_tuning(job, changed, dict.fromkeys(RESTART_OPTIONS, ("stability",)), flags, "the stability restarts",
                       off=lambda restarts: not restarts)  # fmt: skip


def _check_restart_settings(job, asked: bool) -> None:
    """Refuse, before any file is read, restart settings that cannot give a verdict (``asked``: --stability was
    given, so 0 restarts is refused too): :meth:`..process.stability.StabilityOptions.check`."""
    if asked:
        from ..process.stability import StabilityOptions

        StabilityOptions(**job.stability_options()).check(job.stability)


def command_qa(arguments: argparse.Namespace) -> int:
    """Measure, write the report (and JSON) and print a summary; InputError and EngineError propagate."""
    from ..core.file_checks import check_output_path
    from ..qa.assess import check_report_path

    job = qa_job(arguments)
    _check_restart_settings(job, getattr(arguments, "stability", None) is not None)
    _check_restart_options(job, getattr(arguments, "argv", None))
    check_report_path(job.report)
    json_file = file_or_none(job.summary)  # --json -: the metrics go to standard output
    if json_file:
        check_output_path(json_file, "summary", (".json",))
    from ..core.output_safety import check_outputs_apart

    sources = {name: getattr(job, name) for name in QAJob.paths("input")}
    flags = QAJob.options("input")
    check_outputs_apart({flags[name]: path for name, path in sources.items()},
                        {"--report": job.report, "--json": json_file})  # fmt: skip
    from ..core.errors import InputError
    from ..core.images import read_image
    from ..core.made_by import made_by
    from ..core.transforms import Transform
    from ..process.preflight import read_target_points
    from ..process.stability import assess_with_restarts
    from ..qa.assess import TWO_D_QA, write_qa_outputs
    from ..qa.fits_in_memory import check_qa_fits_in_memory
    from .register2d import is_2d

    def optional(path, role):
        return read_image(path, role) if path else None

    if job.inverse and Path(job.inverse).resolve() == Path(job.transform).resolve():
        raise InputError(f"--inverse {job.inverse} is the --transform file itself: give the inverse the registration "
                         "wrote (its --output-inverse), or leave it out")  # fmt: skip
    if all(Path(path).is_file() and is_2d(path) for path in (job.fixed, job.moving)):
        raise InputError(f"{job.fixed} and {job.moving} are 2D images (one slice): {TWO_D_QA}")
    check_qa_fits_in_memory(job.fixed, job.moving, [(job.fixed_labels, "fixed labelmap"), (job.moving_labels,
                            "moving labelmap"), (job.fixed_mask, "fixed mask"), (job.moving_mask, "moving mask")])
    fixed = read_image(job.fixed, "fixed image")
    moving = read_image(job.moving, "moving image")
    transform = Transform.read(job.transform)
    inverse = Transform.read(job.inverse) if job.inverse else None
    # Points outside their image: all of a list refused here, before any work (as mmreg batch refuses a case's).
    points, outside = read_target_points(job.fixed_points, job.moving_points, fixed, moving)
    progress = None
    if job.stability:
        from .run import ProgressPrinter

        progress = ProgressPrinter()
    fixed_labels = optional(job.fixed_labels, "fixed labelmap")
    fixed_mask = optional(job.fixed_mask, "fixed mask")
    report = assess_with_restarts(
        fixed,
        moving,
        transform,
        inverse=inverse,
        fit_labels=job.fit_points,
        fixed_labels=fixed_labels,
        moving_labels=optional(job.moving_labels, "moving labelmap"),
        label_interpolation=job.label_interpolation,
        segment_pairs=job.segments,
        fixed_mask=fixed_mask,
        moving_mask=optional(job.moving_mask, "moving mask"),
        stability_restarts=job.stability or 0,
        stability_options=job.stability_options(),
        sources={key: value for key, value in sources.items() if value},
        progress=progress,
        **points,
    )
    report.warnings[:0] = outside
    report.made_by = made_by(arguments)  # the command line too, as prep.json and a stack's JSON record it
    outputs = write_qa_outputs(
        report, fixed, moving, transform, job.report, json_file, fixed_labels=fixed_labels, fixed_mask=fixed_mask
    )
    with redirect_stdout(human_stream(job.summary)):
        _print_summary(report)
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for name, path in outputs.items():
            print(f"wrote {name}: {path}")
    emit_json(job.summary, report.to_dict())
    return EXIT_OK
