"""antspyx's antsRegistration loaded by its compiled library (engines/ants_library.py), without the package.

Runs in a fresh interpreter: what an import loads depends on what the process loaded before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from MultimodalRegistrationLib.process.worker import library_root

pytest.importorskip("ants", reason="antspyx is not installed")

SCRIPT = """
import json, sys
from MultimodalRegistrationLib.engines import ants_library, loading
loading.load("ants")
direct = ants_library.ants_registration()
report = {"package_imported": "ants" in sys.modules, "matplotlib": "matplotlib" in sys.modules}
from ants.internal import get_lib_fn  # the package's own way, now
report["same_function"] = get_lib_fn("antsRegistration") is direct
print(json.dumps(report))
"""


def test_ants_registration_loads_without_the_package_and_is_the_packages_own_function():
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True, env=environment, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    # The package's __init__ (matplotlib, pandas, scikit-learn: 3.5-6 s) never ran for the engine.
    assert report["package_imported"] is False
    assert report["matplotlib"] is False
    # One extension per process: the function the engine calls is the one `import ants` gives.
    assert report["same_function"] is True
