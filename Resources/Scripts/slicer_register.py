"""Batch registration inside Slicer, on files:

    Slicer --no-main-window --python-script Resources/Scripts/slicer_register.py -- \
        --fixed ct.nrrd --moving mr.nii.gz --output-transform T.h5 [--output-volume R.nrrd] [--json s.json] \
        [--engine elastix|ants] [--preset rigid|affine|deformable] [--fixed-mask FM] [--moving-mask MM] ...

Takes the same options as `mmreg register` (preparation steps, --output-inverse and --keep-log
included), loads the volumes into the scene, registers them with the module's logic (worker
process, PythonSlicer), saves the transform, its inverse and the resampled volume, prints the warnings
on standard error and the JSON summary on standard output (``--json FILE`` writes it there too), and exits
with the same codes: 0 success, 2 bad input (checked as ``mmreg register`` checks it, before any engine
runs), 1 engine failure.
It also runs with plain Python where `slicer-core` provides MRML (as the tests do).
"""

import argparse
import json
import os
import sys
from pathlib import Path

import slicer

HERE = Path(__file__).resolve()
for candidate in (HERE.parents[2] / "MultimodalRegistration", HERE.parents[1], HERE.parents[2]):  # source, installed
    if (candidate / "MultimodalRegistrationLib").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))

from MultimodalRegistrationLib.cli.json_output import file_or_none  # noqa: E402
from MultimodalRegistrationLib.cli.main import _add_register_arguments, job_from_arguments  # noqa: E402
from MultimodalRegistrationLib.cli.prep import prep_options, wants_prep  # noqa: E402
from MultimodalRegistrationLib.cli.register2d import wants_2d  # noqa: E402
from MultimodalRegistrationLib.core.errors import EXIT_INPUT, EXIT_OK, InputError  # noqa: E402
from MultimodalRegistrationLib.nodes import mrml  # noqa: E402
from MultimodalRegistrationLib.nodes.panel import panel_names  # noqa: E402
from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters  # noqa: E402
from MultimodalRegistrationLib.process.beside import log_beside, summary_beside  # noqa: E402
from MultimodalRegistrationLib.process.command import register_command  # noqa: E402
from MultimodalRegistrationLib.process.jobs import RegistrationJob, option_fields, option_flag  # noqa: E402
from MultimodalRegistrationLib.process.results import JobOutputs  # noqa: E402
from MultimodalRegistrationLib.process.worker import WorkerFailure  # noqa: E402


def worker_python():
    if os.environ.get("MMREG_PYTHON"):  # a worker interpreter given by the user
        return os.environ["MMREG_PYTHON"]
    try:
        from MultimodalRegistration import MultimodalRegistrationLogic

        return MultimodalRegistrationLogic.workerPython()
    except ImportError:  # outside Slicer
        return None


def _write_inverse(registration, transform, path: str) -> None:
    """The moving -> fixed transform: the engine's own for a nonlinear result, the exact inverse of a linear one."""
    if registration.inverse_transform_node is not None:
        mrml.transform_from_node(registration.inverse_transform_node).write(path)
    else:  # linear: job_from_arguments refused, before the run, an inverse the result would not have
        transform.inverse().write(path)


def panel_values(scene, arguments) -> dict:
    """The registration panel's parameter-node values for the options given: each input file of a
    RegistrationJob field the panel sets, read into a node of the field's kind (volume, mask, the start), and
    each choice as given; outputs are written from the result, the rest stays at the panel's defaults."""
    from MultimodalRegistrationLib.core.transforms import Transform

    readers = {
        "volume": lambda path: mrml.read_volume_node(scene, path),
        "mask": lambda path: mrml.read_volume_node(scene, path, labelmap=True),
        "transform": lambda path: mrml.transform_to_node(scene, Transform.read(path), name="initial"),
    }  # segmentations and landmarks: refused before (guidance)
    values = {}
    for field in RegistrationJob.panel_fields():
        value = getattr(arguments, field.name, None)
        if value is None or field.metadata.get("cli") is None or field.metadata.get("path") == "output":
            continue
        kind = field.metadata.get("node")
        values[panel_names(field)[-1]] = readers[kind](value) if kind else value
    return values


def main(argv):
    parser = argparse.ArgumentParser(prog="slicer_register.py", description=__doc__.splitlines()[0])
    _add_register_arguments(parser)
    arguments = parser.parse_args(argv)
    scene = getattr(slicer, "mrmlScene", None) or slicer.vtkMRMLScene()
    try:
        guidance = [option_flag(f) for f in option_fields(RegistrationJob) if f.metadata["cli"].get("group") ==
                    "guidance" and getattr(arguments, f.name) not in (None, f.default)]  # fmt: skip
        if guidance:  # parsed with mmreg register's options, but not loaded here: refused, never ignored
            raise InputError(f"{', '.join(guidance)}: guidance is not read by the Slicer batch script yet: run "
                             "mmreg register with the same options, or drop them")  # fmt: skip
        # The files as mmreg register checks them (outputs' formats, the preset, headers, an inverse it can
        # write), before anything is loaded or run; the job also gives the command line that repeats the run.
        job = None if wants_2d(arguments) else job_from_arguments(arguments)
        output_volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "registered") if arguments.output_volume else None
        parameters = registration_parameters(
            **panel_values(scene, arguments), outputVolume=output_volume,
            prep=prep_options(arguments) if wants_prep(arguments) else None,
            log=log_beside(arguments.output_transform) if arguments.keep_log else None,
        )  # fmt: skip
        registration = register_nodes(parameters, python=worker_python(), panel_words=False)
        transform = mrml.transform_from_node(registration.output_transform_node)
        transform.write(arguments.output_transform)
        summary = registration.summary
        if job is not None:  # the files given, not the scratch copies the scene was written to
            summary.provenance.command = register_command(job)
        for warning in summary.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if arguments.output_inverse:
            _write_inverse(registration, transform, arguments.output_inverse)
        if output_volume is not None:
            mrml.write_volume_node(scene, output_volume, arguments.output_volume)
        # The files written where asked, as mmreg register records them; not the worker's scratch copies (removed).
        summary.outputs = JobOutputs(transform=arguments.output_transform, inverse=arguments.output_inverse,
                                     volume=arguments.output_volume,
                                     log=(summary.outputs or {}).get("log")).to_dict()  # fmt: skip
        # --json FILE, and beside the transform as mmreg register writes it (T.h5 -> T.json); --json -: printed below
        for path in dict.fromkeys(p for p in (file_or_none(arguments.summary), job and summary_beside(job)) if p):
            Path(path).write_text(json.dumps(summary.to_dict(), indent=2))
        print(json.dumps(summary.to_dict()))
        return EXIT_OK
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except WorkerFailure as failure:
        print(f"error: {failure}", file=sys.stderr)  # message, hint and the engine log's place, one per line
        return failure.exit_code


if __name__ == "__main__":
    status = main([a for a in sys.argv[1:] if a != "--"])
    if hasattr(slicer, "app") and hasattr(slicer.util, "exit"):
        slicer.util.exit(status)
    sys.exit(status)
