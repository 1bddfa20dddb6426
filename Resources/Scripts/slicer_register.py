"""Batch registration inside Slicer, on files:

    Slicer --no-main-window --python-script Resources/Scripts/slicer_register.py -- \
        --fixed ct.nrrd --moving mr.nii.gz --output-transform T.h5 [--output-volume R.nrrd] [--json s.json] \
        [--engine elastix|ants] [--preset rigid|affine|deformable] [--fixed-mask FM] [--moving-mask MM] ...

Takes the same options as `mmreg register` (preparation steps, --output-inverse and --keep-log
included), loads the volumes into the scene, registers them with the module's logic (worker
process, PythonSlicer), saves the transform, its inverse and the resampled volume, prints the JSON
summary and exits with the same codes: 0 success, 2 bad input, 1 engine failure.
It also runs with plain Python where `slicer-core` provides MRML (as the tests do).
"""

import argparse
import json
import sys
from pathlib import Path

import slicer

HERE = Path(__file__).resolve()
for candidate in (HERE.parents[2] / "MultimodalRegistration", HERE.parents[1]):
    if (candidate / "MultimodalRegistrationLib").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))

from MultimodalRegistrationLib.cli.main import _add_register_arguments  # noqa: E402
from MultimodalRegistrationLib.cli.prep import prep_options, wants_prep  # noqa: E402
from MultimodalRegistrationLib.core.choices import DEFAULT_SEED  # noqa: E402
from MultimodalRegistrationLib.core.errors import EXIT_INPUT, EXIT_OK, InputError  # noqa: E402
from MultimodalRegistrationLib.nodes import mrml  # noqa: E402
from MultimodalRegistrationLib.nodes.registration import register_nodes, registration_parameters  # noqa: E402
from MultimodalRegistrationLib.process.jobs import RegistrationJob, log_beside  # noqa: E402
from MultimodalRegistrationLib.process.jobs import option_fields, option_flag  # noqa: E402
from MultimodalRegistrationLib.process.worker import WorkerFailure  # noqa: E402


def worker_python():
    try:
        from MultimodalRegistration import MultimodalRegistrationLogic

        return MultimodalRegistrationLogic.workerPython()
    except ImportError:  # outside Slicer
        return None


def _write_inverse(registration, transform, path: str, summary) -> None:
    """The moving -> fixed transform: the engine's own for a nonlinear result, the exact inverse of a linear one."""
    if registration.inverse_transform_node is not None:
        mrml.transform_from_node(registration.inverse_transform_node).write(path)
    elif transform.is_linear:
        transform.inverse().write(path)
    else:
        summary.warnings.append(f"no inverse written to {path}: this engine and preset give none (ANTs deformable does)")
        print(f"warning: {summary.warnings[-1]}", file=sys.stderr)
        return
    summary.outputs["inverse"] = path


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
        fixed = mrml.read_volume_node(scene, arguments.fixed)
        moving = mrml.read_volume_node(scene, arguments.moving)
        masks = [
            mrml.read_volume_node(scene, path, labelmap=True) if path else None
            for path in (arguments.fixed_mask, arguments.moving_mask)
        ]
        initial = None
        if arguments.initial_transform:
            from MultimodalRegistrationLib.core.transforms import Transform

            initial = mrml.transform_to_node(scene, Transform.read(arguments.initial_transform), name="initial")
        output_volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "registered") if arguments.output_volume else None
        parameters = registration_parameters(
            fixedVolume=fixed, movingVolume=moving, engine=arguments.engine, preset=arguments.preset,
            fixedMask=masks[0], movingMask=masks[1], initialTransform=initial, outputVolume=output_volume,
            init=arguments.init, maxRotationDeg=arguments.max_rotation_deg,
            seed=DEFAULT_SEED if arguments.seed is None else arguments.seed, threads=arguments.threads or 0,
            prep=prep_options(arguments) if wants_prep(arguments) else None,
            log=log_beside(arguments.output_transform) if arguments.keep_log else None,
        )  # fmt: skip
        registration = register_nodes(parameters, python=worker_python())
        transform = mrml.transform_from_node(registration.output_transform_node)
        transform.write(arguments.output_transform)
        summary = registration.summary
        if arguments.output_inverse:
            _write_inverse(registration, transform, arguments.output_inverse, summary)
        if output_volume is not None:
            mrml.write_volume_node(scene, output_volume, arguments.output_volume)
        if arguments.summary:
            Path(arguments.summary).write_text(json.dumps(summary.to_dict(), indent=2))
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
