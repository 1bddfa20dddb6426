"""A cohort inside Slicer, on files:

    Slicer --no-main-window --python-script Resources/Scripts/slicer_batch.py -- \
        manifest.csv --output-dir DIR [--workers N] [--timeout S] [--engine ...] [--preset ...]

Takes the same options as `mmreg batch` and writes the same files (one folder per case, batch.csv,
report.html). The warm workers run with Slicer's PythonSlicer. Exit codes as `mmreg batch`: 0 when
every case registered, 1 when any failed, 2 for a wrong manifest. From Slicer's Python console, the
same run is one call:

    from MultimodalRegistrationLib.process.batch import run_batch
    result = run_batch("manifest.csv", "DIR")
"""

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
for candidate in (HERE.parents[2] / "MultimodalRegistration", HERE.parents[1]):
    if (candidate / "MultimodalRegistrationLib").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))

from MultimodalRegistrationLib.cli.batch import add_batch_parser  # noqa: E402
from MultimodalRegistrationLib.core.errors import EXIT_INPUT, InputError  # noqa: E402


def main(argv) -> int:
    try:
        from MultimodalRegistration import MultimodalRegistrationLogic

        os.environ.setdefault("MMREG_PYTHON", MultimodalRegistrationLogic.workerPython())
    except ImportError:  # outside Slicer: the workers use this interpreter
        pass
    commands = argparse.ArgumentParser(prog="slicer_batch.py").add_subparsers(dest="command")
    parser = add_batch_parser(commands)
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv[1:] if argv[:1] == ["--"] else argv))
