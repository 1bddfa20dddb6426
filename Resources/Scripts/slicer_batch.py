"""A cohort inside Slicer, on files:

    Slicer --no-main-window --python-script Resources/Scripts/slicer_batch.py -- \
        manifest.csv --output-dir DIR [--workers N] [--timeout S] [--engine ...] [--preset ...]

Takes the same options as `mmreg batch` and writes the same files (one folder per case, batch.csv,
report.html). The warm workers run with Slicer's PythonSlicer. Exit codes and messages as `mmreg batch`
(it runs through mmreg's own entry point): 0 when every case registered, 1 when any failed, 2 for a wrong
manifest, 130 on Ctrl-C, 143 on SIGTERM or SIGHUP. From Slicer's Python console, the same run is one call:

    from MultimodalRegistrationLib.process.batch import run_batch
    result = run_batch("manifest.csv", "DIR")
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
for candidate in (HERE.parents[2] / "MultimodalRegistration", HERE.parents[1]):
    if (candidate / "MultimodalRegistrationLib").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))

from MultimodalRegistrationLib.cli.main import main as mmreg  # noqa: E402


def main(argv) -> int:
    try:
        from MultimodalRegistration import MultimodalRegistrationLogic

        if "MMREG_PYTHON" not in os.environ:  # a worker interpreter given by the user is kept as it is
            os.environ["MMREG_PYTHON"] = MultimodalRegistrationLogic.workerPython()
    except ImportError:  # outside Slicer: the workers use this interpreter
        pass
    return mmreg(["batch", *argv])  # its signal handlers, exit codes and messages, and the command it records


if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv[1:] if argv[:1] == ["--"] else argv))
