"""itk-elastix loaded directly (engines/itk_elastix.py): without ITK's other modules, with the lazy loader's results.

Each check runs in a fresh interpreter: what an import loads depends on what the process loaded before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from MultimodalRegistrationLib.process.worker import library_root

# Prints what loading elastix brought in, then registers a small masked phantom pair with the rigid preset
# from 20 degrees off and prints the fixed -> moving matrix (LPS, mm) and its mean error (mm).
SCRIPT = """
import json, sys, tempfile
from pathlib import Path
from MultimodalRegistrationLib.engines import itk_elastix, loading
if sys.argv[1] == "lazy":
    itk_elastix._direct = itk_elastix._lazy
loading.load("elastix")
loaded = {"direct": itk_elastix.classes().direct,
          "itk_modules": sorted(name for name in sys.modules if name.startswith("itk._ITK"))}
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm, rigid_transform
from MultimodalRegistrationLib.engines import elastix
from MultimodalRegistrationLib.engines.presets import load_preset
pair = make_phantom_pair(ct_spacing=(2.0, 2.0, 3.0), mr_spacing=(2.5, 2.5, 2.5))
start = pair.truth @ rigid_transform(20.0, (0.2, 0.9, 0.3), (6.0, -4.0, 5.0))
with tempfile.TemporaryDirectory() as folder:
    output = elastix.run(pair.fixed, pair.moving, load_preset("elastix", "rigid"), pair.fixed > 20, None, start,
                         7, 2, Path(folder), lambda *a, **k: None)
loaded["matrix"] = output.transform.matrix.tolist()
loaded["error_mm"] = mean_error_mm(output.transform, pair.truth, pair.head_points)
print(json.dumps(loaded))
"""


def _start(how: str) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_direct_loading_skips_itks_other_modules_and_gives_the_lazy_loaders_transform():
    direct_run, lazy_run = _start("direct"), _start("lazy")  # together: the lazy import takes 13-16 s
    direct, lazy = _result(direct_run), _result(lazy_run)

    assert direct["direct"] and not lazy["direct"]
    # The lazy loader initialises 29 ITK modules for elastix; the direct import needs ITKCommon's and ITKTransform's
    # wrappers and the numpy bridge. ITKImageIntensity alone costs the lazy loader 5 s.
    assert "itk._ITKImageIntensityPython" in lazy["itk_modules"]
    assert "itk._ITKImageIntensityPython" not in direct["itk_modules"]
    assert len(direct["itk_modules"]) <= 6 < 20 <= len(lazy["itk_modules"]), (direct, lazy["itk_modules"])
    # Same C++ code, same seed: the same transform to the last bit, and a good one.
    assert np.array_equal(np.array(direct["matrix"]), np.array(lazy["matrix"]))
    assert direct["error_mm"] < 0.5, direct["error_mm"]
