"""``mmreg``: the extension's registration workflow without Slicer.

Exit codes: 0 success, 2 bad input (with the message), 1 engine failure (with the engine's error and a hint).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
import threading
from pathlib import Path

from ..core.choices import DEFAULT_PRESET, FULL_ROTATION_DEG
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
from ..core.interruptible import STOP_SIGNAL_NAMES
from ..engines.registry import DEFAULT_ENGINE, ENGINE_NAMES
from ..process.beside import copy_summary_beside, log_beside, with_summary_beside
from ..process.jobs import RegistrationJob
from ..process.preflight import check_inverse_wanted, preflight_registration, rotation_limit_applies
from ..process.results import RegistrationJobResult
from ..process.worker import WorkerFailure
from ..registration.describe import describe_guidance, describe_piecewise, describe_result
from .batch import add_batch_parser
from .job_options import REPEAT_REFUSED, REPEATS, add_options, option_values
from .json_output import emit_json, file_or_none, human_stream
from .prealign import add_prealign_parser
from .prep import add_prep_arguments, add_prep_parser, prep_options, wants_prep
from .qa import add_qa_parser
from .register2d import add_2d_arguments, add_register2d_parser, command_register_2d, refuse_2d_options, wants_2d
from .run import run_registration, worker_started_early
from .stack import add_stack_parser
from .versions import VersionAction


def _add_register_arguments(parser: argparse.ArgumentParser) -> None:
    """:class:`RegistrationJob`'s options (the guidance ones in their group), ``--keep-log``, the preparation
    steps and the 2D pixel sizes."""
    guide = parser.add_argument_group(
        "guidance", "segmentations and landmarks that guide the registration beside the intensities"
    )
    add_options(parser, RegistrationJob, groups={"guidance": guide})
    parser.add_argument(
        "--keep-log", action="store_true",
        help="write the engine's log beside the output transform (T.h5 -> T.log), also when the engine fails",
    )  # fmt: skip
    add_prep_arguments(parser, for_register=True)
    add_2d_arguments(parser)


def job_from_arguments(arguments: argparse.Namespace) -> RegistrationJob:
    """The registration job the arguments ask for: each job field from the argument of the same name
    (``--fixed-mask`` is ``fixed_mask``), the rest at the job's defaults."""
    refuse_2d_options(arguments)
    values = option_values(RegistrationJob, arguments)
    values["prep"] = prep_options(arguments) if wants_prep(arguments) else None
    if getattr(arguments, "keep_log", False):
        values["log"] = log_beside(arguments.output_transform)
    values["summary"] = file_or_none(values.get("summary"))  # --json -: printed by the command, not the worker
    job = RegistrationJob(**values)
    job = preflight_registration(with_summary_beside(job))  # --json -: printed, and written beside as well
    check_inverse_wanted(job)
    refuse_unused_rotation_limit(job)
    return job


def refuse_unused_rotation_limit(job: RegistrationJob) -> None:
    """``--max-rotation-deg`` narrows the any-pose search: refused where none runs (it was accepted and ignored,
    while the summary recorded it). The panel greys its box out there instead."""
    if job.max_rotation_deg >= FULL_ROTATION_DEG or rotation_limit_applies(job):
        return
    guided = bool(job.fixed_segmentation and job.moving_segmentation) or bool(job.guidance_fixed_points)
    if job.init == "auto" and guided:  # any-pose would leave the guidance out of the start: not to be advised
        from ..registration.guided.start import MAX_DEG

        raise InputError("--max-rotation-deg narrows the any-pose search, which the guided start replaces: drop it "
                         f"(the guided start searches rotations within {MAX_DEG:g} degrees of the headers' "
                         "orientation, or of the initial transform's)")  # fmt: skip
    why = "the initial transform" if job.init == "auto" else f"--init {job.init}"
    raise InputError(f"--max-rotation-deg narrows the any-pose search, which {why} replaces: drop it, or use "
                     "--init any-pose")  # fmt: skip


def _print_result(result: RegistrationJobResult, stream=None) -> None:
    stream = stream or sys.stdout
    summary = result.summary
    print(describe_result(summary), file=stream)
    guidance = describe_guidance(summary.provenance.guidance)
    if guidance:
        print(guidance, file=stream)
    if summary.piecewise:
        print(describe_piecewise(summary.piecewise), file=stream)
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for name, path in result.outputs.items():
        print(f"wrote {name}: {path}", file=stream)


def command_register(arguments: argparse.Namespace) -> int:
    if wants_2d(arguments):
        return command_register_2d(arguments)
    with worker_started_early(arguments.engine) as warm:
        job = job_from_arguments(arguments)
        result = run_registration(job, warm=warm)
    copy_summary_beside(job)
    _print_result(result, human_stream(arguments.summary))
    emit_json(arguments.summary, result.summary.to_dict())
    return EXIT_OK


def command_presets(arguments: argparse.Namespace) -> int:
    from ..engines.presets import list_presets

    for preset in list_presets(arguments.engine, 2 if arguments.two_d else 3):
        # its files (to copy for a custom preset) and whether its result is linear (a .tfm, an exact inverse)
        kind = "linear" if preset.is_linear else "nonlinear: write it to .h5"
        files = ", ".join(str(Path(path).relative_to(Path(path).parents[1])) for path in preset.files)
        print(f"{preset.engine:8s} {preset.name:11s} {preset.description} [{kind}; {files}]")
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
    demo.add_argument("--output-dir", default="demo-output",
                      help="where the pair, the truth and the result go (default: %(default)s)")  # fmt: skip
    demo.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE, help="default: %(default)s")
    demo.add_argument("--preset", default=DEFAULT_PRESET, help="a preset name (mmreg presets; default: %(default)s)")
    demo.set_defaults(handler=command_demo)
    add_prep_parser(commands)
    presets = commands.add_parser("presets", help="list the presets")
    presets.add_argument("--engine", choices=ENGINE_NAMES)
    presets.add_argument("--2d", dest="two_d", action="store_true", help="the presets for two 2D images (register2d)")
    presets.set_defaults(handler=command_presets)
    add_prealign_parser(commands)
    add_qa_parser(commands)
    add_batch_parser(commands)
    add_stack_parser(commands)
    add_register2d_parser(commands)
    return parser


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


# A comma-separated list of numbers that starts with a minus sign (RAS corners: --roi -50,-50,10,50,50,40), which
# argparse would take for an option ("expected one argument").
_NEGATIVE_LIST = re.compile(r"^-[\d.]+(?:[eE][-+]?\d+)?(?:,[-+]?[\d.]+(?:[eE][-+]?\d+)?)+$")


def _with_negative_lists_attached(argv: list[str]) -> list[str]:
    """``--roi -50,-50,10,...`` as ``--roi=-50,-50,10,...``: a value argparse would otherwise refuse."""
    joined: list[str] = []
    for token in argv:
        previous = joined[-1] if joined else ""
        if _NEGATIVE_LIST.match(token) and previous.startswith("--") and "=" not in previous:
            joined[-1] = f"{previous}={token}"
        else:
            joined.append(token)
    return joined


def refuse_empty_values(argv: list[str]) -> None:
    """An option given an empty value (``--output-transform ""``: a script's unset variable) is refused, naming the
    option: left as if not given, a registration ran and wrote nothing, with exit 0 (audit)."""
    for index, token in enumerate(argv):
        if token == "":
            before = argv[index - 1] if index else ""
            option = before if before.startswith("-") else "an argument"
        elif token.startswith("--") and token.endswith("="):
            option = token[:-1]
        else:
            continue
        raise InputError(f"{option} is empty: give its value, or leave the option out (is a variable unset?)")


def refuse_repeated_options(arguments: argparse.Namespace) -> None:
    """One of :data:`.job_options.REPEAT_REFUSED` given twice with different values is refused: elastix's ``-p`` runs
    its files one after the other, and ANTs takes a list of transforms, but here only the last had counted, silently
    (helpers' preset and transform-file sweeps). Other options keep the usual rule, the last one counts, on which
    scripts that append their own options rely."""
    for flag, values in getattr(arguments, REPEATS, {}).items():
        if len(set(values)) > 1:
            fix = REPEAT_REFUSED[flag]
            raise InputError(f"{flag} is given {len(values)} times ({', then '.join(values)}), and only the last would "
                             f"count: give it once. {fix[0].upper()}{fix[1:]}")  # fmt: skip


def _what_was_written() -> str:
    """What a stopped command says it left: its outputs appear together, so either nothing or the whole set (a
    stop that came while they were moved into place is handled once they are all there)."""
    from ..core.files import committed

    # Files moved into place in a scratch folder since removed (QA's restarts) were no outputs (a sweep).
    written = [path for path in committed() if Path(path).exists()]
    if not written:
        return "nothing was written"
    return f"its outputs were written first ({', '.join(str(path) for path in written[:3])}{' ...' if len(written) > 3 else ''})"


def _disk_failure(error: Exception) -> WorkerFailure:
    """A write in this process that a full disk or a limit stopped, said as such (it had been a bare traceback, or
    "this is a bug"); re-raises any other error."""
    from ..core.write_trouble import disk_error

    disk = disk_error(error)
    if disk is None:
        raise error
    return WorkerFailure(disk.kind, str(disk), disk.hint, EXIT_ENGINE)


def _too_long(filename: str) -> str:
    """Which limit a name too long for the file system passed: one part's 255 bytes, or the whole path's."""
    from ..core.name_lengths import NAME_MAX_BYTES, name_length

    if any(name_length(part) > NAME_MAX_BYTES for part in Path(filename).parts):
        return (f"the name {filename} is too long, over the {NAME_MAX_BYTES} bytes a name a file system allows: "
                "choose a shorter name")  # fmt: skip
    # a path of short names can pass the system's limit on a whole path (4096 bytes on Linux; a helper's sweep)
    return (f"the path {filename} is too long for this system ({len(os.fsencode(filename))} bytes): write to a "
            "folder nearer the top of the disk, or with shorter names")  # fmt: skip


def _expanded_pattern(arguments, extra: list[str]) -> str:
    """Advice when the shell expanded an unquoted --sections pattern into files (a helper's sweep: none was given)."""
    if getattr(arguments, "command", None) != "stack" or not all(os.path.isfile(name) for name in extra):
        return ""
    pattern = f"{os.path.dirname(extra[0]) or '.'}/*{os.path.splitext(extra[0])[1]}"
    return f": the shell expanded --sections into files; quote the pattern (--sections '{pattern}') or give the folder"


def main(argv: list[str] | None = None) -> int:
    # A redirected stdout on Windows encodes with the ANSI code page, strictly: a path outside it would crash the
    # command after its work is done. Tests and Slicer may put a stream without reconfigure there.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    typed = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    arguments, extra = parser.parse_known_args(_with_negative_lists_attached(typed))
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}{_expanded_pattern(arguments, extra)}")
    arguments.argv = typed  # as typed, for the records that name it
    if threading.current_thread() is threading.main_thread():
        for name in STOP_SIGNAL_NAMES[1:]:
            # Started under nohup (SIGHUP ignored), a logout must not stop an overnight batch (a sweep: exit 143).
            if hasattr(signal, name) and signal.getsignal(getattr(signal, name)) is not signal.SIG_IGN:
                signal.signal(getattr(signal, name), _terminate)
        # Python leaves SIGINT ignored when the parent ignored it (a process started with SIGINT ignored
        # passes that on); Ctrl-C must still stop mmreg and its worker.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        refuse_empty_values(typed)
        refuse_repeated_options(arguments)
        return arguments.handler(arguments)
    except KeyboardInterrupt:
        failure = WorkerFailure("cancelled", f"interrupted; {_what_was_written()}", exit_code=EXIT_INTERRUPTED)
    except Terminated:
        failure = WorkerFailure("cancelled", f"terminated; {_what_was_written()}", exit_code=EXIT_TERMINATED)
    except WorkerFailure as error:
        failure = error
    except InputError as error:  # library errors raised in this process
        failure = WorkerFailure("input", str(error), exit_code=EXIT_INPUT)
    except EngineError as error:
        failure = WorkerFailure(error.kind, str(error), error.hint, EXIT_ENGINE, error.log_path)
    except BrokenPipeError:  # `mmreg presets | head`: the reader has what it wanted; no traceback (a sweep)
        from .json_output import stdout_to_nowhere

        stdout_to_nowhere()
        return EXIT_OK
    except OSError as error:  # a name no check saw (an input's, a demo folder's): a traceback, exit 1 (a sweep)
        # Windows' ERROR_FILENAME_EXCED_RANGE reaches Python as ENOENT, its own code in winerror (a Windows review)
        if error.errno == errno.ENAMETOOLONG or getattr(error, "winerror", None) == 206:
            failure = WorkerFailure("input", _too_long(error.filename or ""), exit_code=EXIT_INPUT)
        else:
            failure = _disk_failure(error)
    except RuntimeError as error:  # SimpleITK's writers in this process (mmreg prep and qa)
        failure = _disk_failure(error)
    print(f"error: {failure}", file=sys.stderr)  # the message, then its hint and log lines
    return failure.exit_code


if __name__ == "__main__":
    sys.exit(main())
