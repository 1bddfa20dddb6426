"""Batch registration inside Slicer, on files:

    Slicer --no-main-window --python-script Resources/Scripts/slicer_register.py -- \
        --fixed ct.nrrd --moving mr.nii.gz --output-transform T.h5 [--output-volume R.nrrd] [--json s.json] \
        [--engine elastix|ants] [--preset rigid|affine|deformable] [--fixed-mask FM] [--moving-mask MM] ...

Takes the same options as `mmreg register` (guidance, preparation steps and two 2D images included) and runs
through mmreg's own entry point: the same checks before any engine runs, the same files, messages and exit codes
(0 success, 2 bad input, 1 engine failure, 130 on Ctrl-C, 143 on SIGTERM), the same result to the last digit.
Inside Slicer the worker runs with Slicer's PythonSlicer, and an engine that is not installed yet is installed
first (no question is asked without a main window). It also runs with plain Python (as the tests do).

It had loaded the files into a scene and registered the nodes: that path ignored the 2D options (a slide given
its pixel size ended 166 mm off, exit 0), read numbered files beside a 2D image as one stack, refused RGB
volumes, re-laid left-handed NIfTI files and differed from mmreg's own result by up to 1.9 mm (ANTs deformable,
from the scene's rounding of the origins). To register nodes already in a scene, use the module's logic
(``MultimodalRegistrationLogic().register``).
"""

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
for candidate in (HERE.parents[2] / "MultimodalRegistration", HERE.parents[1], HERE.parents[2]):  # source, installed
    if (candidate / "MultimodalRegistrationLib").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))

from MultimodalRegistrationLib.cli.main import main as mmreg  # noqa: E402
from MultimodalRegistrationLib.engines.registry import DEFAULT_ENGINE  # noqa: E402


def engine_asked(argv: list[str]) -> str:
    """The engine ``--engine`` names (as mmreg reads it: abbreviations too), else the default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    return parser.parse_known_args(argv)[0].engine


def in_slicer(engines: list[str]) -> None:
    """Inside Slicer: the workers run with PythonSlicer (a worker interpreter the user gave is kept), and the
    engines are installed on first use. Outside Slicer: nothing to do."""
    try:
        from MultimodalRegistration import MultimodalRegistrationLogic
    except ImportError:  # outside Slicer: the workers use this interpreter
        return
    if "MMREG_PYTHON" not in os.environ:
        os.environ["MMREG_PYTHON"] = MultimodalRegistrationLogic.workerPython()
    for engine in engines:
        try:
            MultimodalRegistrationLogic.ensureEngine(engine, confirm=False)
        except Exception as error:  # noqa: BLE001 - an unknown engine name is mmreg's to refuse, with its message
            print(f"warning: {engine} could not be installed ({error})", file=sys.stderr)


def main(argv: list[str]) -> int:
    in_slicer([engine_asked(argv)])
    return mmreg(["register", *argv])  # its checks, signal handlers, exit codes, messages and recorded command


if __name__ == "__main__":
    arguments = sys.argv[1:]
    status = main(arguments[1:] if arguments[:1] == ["--"] else arguments)
    try:
        import slicer

        if hasattr(slicer, "app") and hasattr(slicer.util, "exit"):
            slicer.util.exit(status)
    except ImportError:
        pass
    sys.exit(status)
