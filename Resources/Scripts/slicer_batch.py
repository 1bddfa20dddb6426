"""A cohort inside Slicer, on files:

    Slicer --no-main-window --python-script Resources/Scripts/slicer_batch.py -- \
        manifest.csv --output-dir DIR [--workers N] [--timeout S] [--engine ...] [--preset ...]

Takes the same options as `mmreg batch` and writes the same files (one folder per case, batch.csv,
report.html). The warm workers run with Slicer's PythonSlicer. Exit codes and messages as `mmreg batch`
(it runs through mmreg's own entry point): 0 when every case registered and none was triaged failed, 1 when any
failed, 2 for a wrong manifest, 130 on Ctrl-C, 143 on SIGTERM or SIGHUP. From Slicer's Python console, the same run is one call:

    from MultimodalRegistrationLib.process.batch import run_batch
    result = run_batch("manifest.csv", "DIR")
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))  # slicer_register, beside it
for candidate in (HERE.parents[2] / "MultimodalRegistration", HERE.parents[1], HERE.parents[2]):  # source, installed
    if (candidate / "MultimodalRegistrationLib").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))

from MultimodalRegistrationLib.cli.main import main as mmreg  # noqa: E402
from MultimodalRegistrationLib.core.errors import EXIT_INPUT  # noqa: E402


def _local_dask(argv) -> str | None:
    """The ``--dask local:N`` value given (abbreviated too, as mmreg batch reads it: ``--das`` had got through),
    else None."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--dask")
    dask = parser.parse_known_args(argv)[0].dask
    return dask if dask and dask.startswith("local:") else None


def _engines(argv) -> list[str]:
    """The engines the cohort uses: ``--engine`` (or the default) and the manifest's engine column; only the
    default when the manifest cannot be read (mmreg batch then says why)."""
    from MultimodalRegistrationLib.process.manifest import read_manifest
    from slicer_register import engine_asked

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("manifest", nargs="?")
    parser.add_argument("--output-dir")
    known = parser.parse_known_args(argv)[0]
    engine = engine_asked(argv)
    try:
        jobs = read_manifest(known.manifest, known.output_dir or ".", {"engine": engine})
    except Exception:  # noqa: BLE001 - a wrong manifest is mmreg batch's to refuse, with its message
        return [engine]
    return list(dict.fromkeys(job.engine for job in jobs)) or [engine]


def main(argv) -> int:
    try:
        import MultimodalRegistration  # noqa: F401 - only inside Slicer
    except ImportError:  # outside Slicer: the workers use this interpreter
        return mmreg(["batch", *argv])
    local = _local_dask(argv)
    if local:  # Dask starts its local workers with sys.executable, which in Slicer is Slicer itself
        print(f"error: --dask {local} cannot start its workers inside Slicer: use --workers N, or a scheduler's "
              "address tcp://HOST:PORT", file=sys.stderr)  # fmt: skip
        return EXIT_INPUT
    from slicer_register import in_slicer

    in_slicer(_engines(argv))  # PythonSlicer for the workers, and the engines installed on first use
    return mmreg(["batch", *argv])  # its signal handlers, exit codes and messages, and the command it records


if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv[1:] if argv[:1] == ["--"] else argv))
