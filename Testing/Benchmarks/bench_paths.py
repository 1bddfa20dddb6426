"""The benchmarks' one path rule: import this first. It puts MultimodalRegistration/ (the library) and
Testing/Python/ (the test-data makers) in front of sys.path, once per process (a module runs once).

The scripts run as ``python Testing/Benchmarks/<script>.py`` from any folder: Python puts the script's own
folder (this one) first on sys.path, which is how ``import bench_paths`` is found.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
LIBRARY = ROOT / "MultimodalRegistration"
TEST_DATA = ROOT / "Testing" / "Python"

sys.path[:0] = [str(LIBRARY), str(TEST_DATA)]
