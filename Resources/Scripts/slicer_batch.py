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

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
for candidate in (HERE.parents[2] / "MultimodalRegistration", HERE.parents[1], HERE.parents[2]):  # source, installed
    if (candidate / "MultimodalRegistrationLib").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))

from MultimodalRegistrationLib.cli.main import main as mmreg  # noqa: E402
from MultimodalRegistrationLib.core.errors import EXIT_INPUT


def _local_dask(argv) -> str | None:
    """The ``--dask local:N`` value given, else None."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--dask")
    dask = parser.parse_known_args(argv)[0].dask
    return dask if dask and dask.startswith("local:") else None


def main(argv) -> int:
    try:
        from MultimodalRegistration import MultimodalRegistrationLogic
    except ImportError:  # outside Slicer: the workers use this interpreter
        return mmreg(["batch", *argv])
    local = _local_dask(argv)
    if local:  # Dask starts its local workers with sys.executable, which in Slicer is Slicer itself
        print(f"error: --dask {local} cannot start its workers inside Slicer: use --workers N, or a scheduler's "
              "address tcp://HOST:PORT", file=sys.stderr)  # fmt: skip
        return EXIT_INPUT
    if "MMREG_PYTHON" not in os.environ:  # a worker interpreter given by the user is kept as it is
        os.environ["MMREG_PYTHON"] = MultimodalRegistrationLogic.workerPython()
    return mmreg(["batch", *argv])  # its signal handlers, exit codes and messages, and the command it records


if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv[1:] if argv[:1] == ["--"] else argv))
