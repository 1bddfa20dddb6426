"""``mmreg``: the extension's registration workflow without Slicer.

Exit codes: 0 success, 2 bad input (with the message), 1 engine failure (with the engine's error and a hint).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path

from ..core.choices import DEFAULT_INIT, DEFAULT_PRESET, FULL_ROTATION_DEG, GUIDANCE_METRICS, INIT_METHODS
from ..core.errors import (
    EXIT_ENGINE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EngineError,
    InputError,
    Terminated,
)
from ..engines.registry import DEFAULT_ENGINE, ENGINE_NAMES
from ..process.jobs import RegistrationJob, log_beside
from ..process.preflight import preflight_registration
from ..process.results import RegistrationJobResult
from ..process.worker import WorkerFailure
from ..registration.describe import describe_piecewise, describe_result
from .batch import add_batch_parser
from .json_output import emit_json, file_or_none, human_stream
from .prealign import add_prealign_parser
from .prep import add_prep_arguments, add_prep_parser, prep_options, wants_prep
from .qa import add_qa_parser
from .register2d import add_2d_arguments, command_register_2d, wants_2d
from .run import run_registration
from .stack import add_stack_parser
from .versions import VersionAction


def _add_register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fixed", required=True, help="fixed (reference) image file")
    parser.add_argument("--moving", required=True, help="moving image file, resampled onto the fixed one")
    parser.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE)
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="rigid, affine, deformable, or a preset file path")
    parser.add_argument("--fixed-mask", help="label image: nonzero voxels of the fixed image drive the metric")
    parser.add_argument("--moving-mask", help="label image for the moving image")
    parser.add_argument("--initial-transform", help="ITK transform file (fixed -> moving), e.g. from mmreg prealign")
    parser.add_argument(
        "--init", choices=INIT_METHODS, default=DEFAULT_INIT,
        help="how to find the starting pose: auto (default) searches all poses, unless --initial-transform is given",
    )  # fmt: skip
    parser.add_argument(
        "--max-rotation-deg", type=float, default=FULL_ROTATION_DEG,
        help="search only rotations up to this angle (degrees) from the start: faster for images known to be close",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, help="random seed (default: fixed, so runs repeat)")
    parser.add_argument("--threads", type=int, help="engine threads (ANTs repeats results only with 1)")
    parser.add_argument("--output-transform", required=True, help="ITK transform file to write (.h5, .tfm, .txt)")
    parser.add_argument("--output-inverse", help="also write the inverse transform (.h5)")
    parser.add_argument("--output-volume", help="moving image resampled onto the fixed grid")
    parser.add_argument(
        "--json", dest="summary",
        help="write a JSON summary of the result and its provenance (- : to standard output, messages to stderr)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-log", action="store_true",
        help="write the engine's log beside the output transform (T.h5 -> T.log), also when the engine fails",
    )  # fmt: skip
    _add_guidance_arguments(parser)
    add_prep_arguments(parser, for_register=True)
    add_2d_arguments(parser)


def _add_guidance_arguments(parser: argparse.ArgumentParser) -> None:
    guide = parser.add_argument_group(
        "guidance", "segmentations and landmarks that guide the registration beside the intensities"
    )
    guide.add_argument("--fixed-segmentation", help="labelmap on the fixed image (.nrrd, .seg.nrrd, .nii.gz)")
    guide.add_argument("--moving-segmentation", help="labelmap on the moving image: segments pair by name, else value")
    guide.add_argument("--segments", metavar="A,B", help="only these segments guide (names or label values)")
    guide.add_argument(
        "--fixed-points", dest="guidance_fixed_points", help="landmarks on the fixed image (.mrk.json, .fcsv, .csv)"
    )
    guide.add_argument(
        "--moving-points", dest="guidance_moving_points", help="the same landmarks on the moving image, paired by label"
    )
    guide.add_argument(
        "--guidance-weight", type=float, metavar="W",
        help="weight of the segment and landmark terms against the image term (1); default: Presets/guidance.json",
    )  # fmt: skip
    guide.add_argument(
        "--piecewise", metavar="A,B",
        help="after the global registration, register these segments (bones) rigidly on their own; the output "
        "transform becomes their blended displacement field and each segment's transform goes beside it (T_A.h5)",
    )  # fmt: skip
    guide.add_argument(
        "--metric", choices=GUIDANCE_METRICS, default="intensity",
        help="intensity (default): mutual information plus the guidance; segments: the guidance only, "
        "for images whose intensities do not correspond (ultrasound, histology)",
    )  # fmt: skip


def job_from_arguments(arguments: argparse.Namespace) -> RegistrationJob:
    """The registration job the arguments ask for: each job field from the argument of the same name
    (``--fixed-mask`` is ``fixed_mask``), the rest at the job's defaults."""
    given = {f.name: getattr(arguments, f.name, None) for f in fields(RegistrationJob)}
    values = {name: value for name, value in given.items() if value is not None}
    values["prep"] = prep_options(arguments) if wants_prep(arguments) else None
    if getattr(arguments, "keep_log", False):
        values["log"] = log_beside(arguments.output_transform)
    values["summary"] = file_or_none(values.get("summary"))  # --json -: printed by the command, not the worker
    job = RegistrationJob(**values)
    return preflight_registration(job)


def _print_result(result: RegistrationJobResult, stream=None) -> None:
    stream = stream or sys.stdout
    summary = result.summary
    print(describe_result(summary), file=stream)
    if summary.piecewise:
        print(describe_piecewise(summary.piecewise), file=stream)
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for name, path in result.outputs.items():
        print(f"wrote {name}: {path}", file=stream)


def command_register(arguments: argparse.Namespace) -> int:
    if wants_2d(arguments):
        return command_register_2d(arguments)
    result = run_registration(job_from_arguments(arguments))
    _print_result(result, human_stream(arguments.summary))
    emit_json(arguments.summary, result.summary.to_dict())
    return EXIT_OK


def command_presets(arguments: argparse.Namespace) -> int:
    from ..engines.presets import list_presets

    for preset in list_presets(arguments.engine):
        print(f"{preset.engine:8s} {preset.name:11s} {preset.description}")
    return EXIT_OK


def command_demo(arguments: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(arguments.output_dir), engine=arguments.engine, preset=arguments.preset)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmreg", description="Multimodal image registration (CT, MR, histology).")
    parser.add_argument("--version", action=VersionAction, help="print the versions of mmreg, its engines and Python")
    commands = parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser("register", help="register a moving image to a fixed image")
    _add_register_arguments(register)
    register.set_defaults(handler=command_register)
    demo = commands.add_parser("demo", help="register a generated CT/MR phantom pair and report the error in mm")
    demo.add_argument("--output-dir", default="demo-output")
    demo.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE)
    demo.add_argument("--preset", default=DEFAULT_PRESET)
    demo.set_defaults(handler=command_demo)
    add_prep_parser(commands)
    presets = commands.add_parser("presets", help="list the presets")
    presets.add_argument("--engine", choices=ENGINE_NAMES)
    presets.set_defaults(handler=command_presets)
    add_prealign_parser(commands)
    add_qa_parser(commands)
    add_batch_parser(commands)
    add_stack_parser(commands)
    return parser


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    arguments.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for the records that name it
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), _terminate)
    try:
        return arguments.handler(arguments)
    except KeyboardInterrupt:
        failure = WorkerFailure("cancelled", "interrupted; nothing was written", exit_code=EXIT_INTERRUPTED)
    except Terminated:
        failure = WorkerFailure("cancelled", "terminated; nothing was written", exit_code=EXIT_TERMINATED)
    except WorkerFailure as error:
        failure = error
    except InputError as error:  # library errors raised in this process
        failure = WorkerFailure("input", str(error), exit_code=EXIT_INPUT)
    except EngineError as error:
        failure = WorkerFailure("engine", str(error), error.hint, EXIT_ENGINE, error.log_path)
    print(f"error: {failure}", file=sys.stderr)  # the message, then its hint and log lines
    return failure.exit_code


if __name__ == "__main__":
    sys.exit(main())
