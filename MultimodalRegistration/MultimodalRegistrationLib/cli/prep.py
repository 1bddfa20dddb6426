"""``mmreg prep``: crop, mask, bias-correct and fix the spacing of a pair, writing new images and a JSON record.

The same step options switch on ``mmreg register --prep``, which prepares the pair on the fly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import EXIT_OK, InputError
from ..prep.options import TUNES, PrepOptions
from ..process.jobs import PrepJob, option_fields, option_flag
from .job_options import add_options, option_values, refuse_idle_tuning, set_by_user


def add_prep_arguments(parser: argparse.ArgumentParser, for_register: bool = False) -> None:
    """The preparation steps' options (shared by ``mmreg prep`` and ``mmreg register --prep``): the fields of
    :class:`PrepOptions` that have a command-line option."""
    group = parser.add_argument_group("preparation" if for_register else "steps")
    if for_register:
        group.add_argument(
            "--prep", action="store_true", help="prepare the pair first (step options imply it; alone: --crop-common)"
        )
    add_options(group, PrepOptions)


def add_prep_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``prep`` subcommand on ``subparsers`` (from ``add_subparsers``): :class:`PrepJob`'s options."""
    parser = subparsers.add_parser(
        "prep", help="crop to the common region, mask, bias-correct and fix spacing; writes new images and prep.json"
    )
    add_options(parser, PrepJob)
    add_prep_arguments(parser)
    parser.set_defaults(handler=command_prep)
    return parser


def wants_prep(arguments: argparse.Namespace) -> bool:
    """True when ``mmreg register`` was asked to prepare: --prep or any step option."""
    return bool(getattr(arguments, "prep", False)) or bool(prep_options(arguments).steps_on())


def prep_options(arguments: argparse.Namespace) -> PrepOptions:
    """The step options given (for a worker job's ``prep``); --prep alone crops. A tuning option without its
    step is refused (it would do nothing), and so is a value no step can use (:meth:`PrepOptions.check`), before
    any file is read."""
    given = option_values(PrepOptions, arguments)
    options = PrepOptions(**given)
    if getattr(arguments, "prep", False) and not options.steps_on():
        options.crop_common = True  # --prep alone: the step that needs no choices
    flags = {f.name: option_flag(f) for f in option_fields(PrepOptions)}
    typed = getattr(arguments, "argv", None)  # as typed: a tuning option given at its default value counts too
    changed = [f.name for f in option_fields(PrepOptions)
               if f.name in given and set_by_user(flags[f.name], given[f.name], f.default, typed)]  # fmt: skip
    refuse_idle_tuning(options, changed, TUNES, flags)
    options.check()
    return options


def _file_given(mask: str | None) -> str | None:
    """A mask option's file (None for 'auto' or none)."""
    return None if mask in (None, "auto") else mask


def command_prep(arguments: argparse.Namespace) -> int:
    """Prepare, write the images, masks and prep.json; an InputError propagates (cli.main exits 2)."""
    from ..core.file_checks import check_output_path
    from ..core.files import OutputSet
    from ..core.made_by import made_by

    names = ("fixed.nrrd", "moving.nrrd", "fixed_mask.nrrd", "moving_mask.nrrd", "prep.json")
    # before the inputs are read: a folder named as an output had stopped the run with a traceback after every step
    # (a helper's prep sweep)
    folder = next((Path(arguments.output_dir) / n for n in names if (Path(arguments.output_dir) / n).is_dir()), None)
    if folder is not None:
        raise InputError(f"cannot write the prepared images to {arguments.output_dir}: {folder} is a folder, where "
                         "prep writes a file of that name; move it away or choose another --output-dir")  # fmt: skip
    check_output_path(Path(arguments.output_dir) / "prep.json", "prepared images")
    from ..core.output_safety import check_outputs_apart
    from ..core.transforms import Transform
    from ..prep.pipeline import prepare, write_prepared
    from ..prep.summary import step_line

    # Absolute paths: prep.json names its inputs and outputs so (they were recorded as typed, relative to a folder
    # the record did not name).
    job = PrepJob(**option_values(PrepJob, arguments), prep=prep_options(arguments)).resolved()
    if not job.prep.steps_on():
        steps = ", ".join(option_flag(f) for f in option_fields(PrepOptions) if f.metadata.get("step"))
        raise InputError(f"no preparation step is given: choose one or more of {steps}")
    options, output_dir = job.prep, Path(job.output_dir)
    flags = PrepJob.options("input")
    inputs = {flags[name]: getattr(job, name) for name in PrepJob.paths("input")}
    inputs |= {option_flag(f): _file_given(getattr(options, f.name)) for f in option_fields(PrepOptions)
               if f.name.startswith("mask_")}  # fmt: skip
    outputs = {f"prepared {name}": output_dir / name for name in names}
    check_outputs_apart(inputs, outputs, "choose another --output-dir (prep writes fixed.nrrd, moving.nrrd, masks and "
                        "prep.json there)")  # fmt: skip
    initial = Transform.read(job.initial_transform) if job.initial_transform else None

    def progress(fraction: float, stage: str) -> None:
        print(f"{fraction:4.0%} {stage}", file=sys.stderr, flush=True)

    pair = prepare(job.fixed, job.moving, options, initial_transform=initial, progress=progress)
    with OutputSet() as staged:  # the images, masks and prep.json appear together (a stop between mixed runs)
        written = write_prepared(pair, output_dir, staged=staged)
        summary = pair.summary()
        summary.inputs = {name: getattr(job, name) for name in PrepJob.paths("input")}
        summary.options = options
        summary.outputs = dict(written, summary=str(output_dir / "prep.json"))
        summary.made_by = made_by(arguments)
        text = json.dumps(summary.to_dict(), indent=2)
        staged.write(output_dir / "prep.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    for step in pair.steps:
        print(step_line(step))
    for warning in pair.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for name, path in summary.outputs.items():
        print(f"wrote {name}: {path}")
    return EXIT_OK
