"""itk-elastix loaded directly (engines/itk_elastix.py): without ITK's other modules, with the lazy loader's results.

Each check runs in a fresh interpreter: what an import loads depends on what the process loaded before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from MultimodalRegistrationLib.process.worker import library_root

# Prints what loading elastix brought in, then registers a small masked phantom pair with the rigid preset
# from 20 degrees off and prints the fixed -> moving matrix (LPS, mm) and its mean error (mm); then how far
# a nonlinear start read back by itk_elastix.read_transform lands from the library's own (mm).
SCRIPT = """
import json, sys, tempfile
from pathlib import Path
from MultimodalRegistrationLib.engines import itk_elastix, loading
if sys.argv[1] == "lazy":
    def unavailable():
        raise ImportError("as if the wrapper modules had other names")
    itk_elastix._direct = itk_elastix._lazy
    itk_elastix._transform_reader = unavailable  # read_transform falls back to itk.transformread
loading.load("elastix")
loaded = {"direct": itk_elastix.classes().direct,
          "itk_modules": sorted(name for name in sys.modules if name.startswith("itk._ITK"))}
from MultimodalRegistrationLib.core.phantom import make_phantom_pair, mean_error_mm, rigid_transform
from MultimodalRegistrationLib.engines import elastix
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.engines.request import EngineRequest
pair = make_phantom_pair(ct_spacing=(2.0, 2.0, 3.0), mr_spacing=(2.5, 2.5, 2.5))
start = pair.truth @ rigid_transform(20.0, (0.2, 0.9, 0.3), (6.0, -4.0, 5.0))
with tempfile.TemporaryDirectory() as folder:
    output = elastix.run(EngineRequest(pair.fixed, pair.moving, load_preset("elastix", "rigid"), start, Path(folder),
                                       fixed_mask=pair.fixed > 20, seed=7, threads=2))
loaded["matrix"] = output.transform.matrix.tolist()
loaded["error_mm"] = mean_error_mm(output.transform, pair.truth, pair.head_points)

# A nonlinear start (a 3-degree turn sampled as a displacement field on the fixed grid, then the rigid start),
# written and read back as elastix gets it with guidance (engines/elastix.py _external_initial).
import numpy as np
from MultimodalRegistrationLib.core.transforms import Transform
turn = rigid_transform(3.0, (0.0, 0.3, 1.0), (1.0, 0.0, 0.0)).displacement_field(pair.fixed)
nonlinear = Transform.chain([start, Transform.from_displacement_field(turn)])
with tempfile.TemporaryDirectory() as folder:
    nonlinear.write(Path(folder) / "start.h5")
    read = itk_elastix.read_transform(Path(folder) / "start.h5")
    loaded["read_distance_mm"] = max(
        float(np.linalg.norm(np.array(read.TransformPoint([float(c) for c in point])) - expected))
        for point, expected in zip(pair.head_points, nonlinear.transform_points(pair.head_points))
    )
loaded["itk_modules_at_end"] = sorted(name for name in sys.modules if name.startswith("itk._ITK"))
loaded["distributed"] = "distributed" in sys.modules
print(json.dumps(loaded))
"""


def _start(how: str) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _report(how: str) -> dict:
    process = _start(how)
    try:
        return _result(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def direct() -> dict:
    """The script's report with the direct import."""
    return _report("direct")


@pytest.fixture(scope="module")
def lazy() -> dict:
    """The script's report with the lazy loader (its import alone takes 13-16 s: only the extended tier asks)."""
    return _report("lazy")


def test_direct_loading_skips_itks_other_modules_and_gives_the_lazy_loaders_transform(direct, lazy):

    assert direct["direct"] and not lazy["direct"]
    # The lazy loader initialises 29 ITK modules for elastix; the direct import needs ITKCommon's and ITKTransform's
    # wrappers and the numpy bridge. ITKImageIntensity alone costs the lazy loader 5 s.
    assert "itk._ITKImageIntensityPython" in lazy["itk_modules"]
    assert "itk._ITKImageIntensityPython" not in direct["itk_modules"]
    assert len(direct["itk_modules"]) <= 6, direct
    assert len(lazy["itk_modules"]) >= 20, lazy["itk_modules"]
    # Same C++ code, same seed: the same transform to the last bit, and a good one.
    assert np.array_equal(np.array(direct["matrix"]), np.array(lazy["matrix"]))
    assert direct["error_mm"] < 0.5, direct["error_mm"]
    # read_transform's fallback through itk.transformread gives ITK the same points.
    assert lazy["read_distance_mm"] < 1e-6, lazy["read_distance_mm"]


def test_a_nonlinear_start_is_read_directly(direct):
    # The .h5 reader comes with the HDF5 transform IO, not with the lazy loader's modules.
    assert "itk._ITKImageIntensityPython" not in direct["itk_modules_at_end"]
    # read_transform gives ITK the transform the library wrote: the same points.
    assert direct["read_distance_mm"] < 1e-6, direct["read_distance_mm"]


def test_direct_loading_leaves_dask_out(direct):
    pytest.importorskip("distributed", reason="dask.distributed is not installed: nothing for ITK to pull in")
    # ITK's NumPy bridge imports distributed (0.6 s) only to register a serializer the engine never uses.
    assert direct["distributed"] is False


WITHOUT_ELASTIX = """
import json, sys
from importlib import metadata
for name in ("itk.itkElastixRegistrationMethodPython", "itk.elxParameterObjectPython"):
    sys.modules[name] = None  # itk installed, itk-elastix not: its wrapper modules and its metadata are missing
found = metadata.version
def version(name):
    if name == "itk-elastix":
        raise metadata.PackageNotFoundError(name)
    return found(name)
metadata.version = version
from MultimodalRegistrationLib.engines import loading
try:
    loading.load("elastix")
    error = ""
except ImportError as raised:
    error = str(raised)
print(json.dumps({"error": error, "itk_modules": sorted(name for name in sys.modules if name.startswith("itk._ITK"))}))
"""


def test_itk_without_itk_elastix_fails_at_once_without_the_lazy_loader():
    """A warm worker preloads elastix; with itk but not itk-elastix installed (ANTs users who have ITK from another
    package) ITK's lazy loader initialised its 29 modules, 15-22 s, before failing. Now the missing distribution
    is named and no ITK module is initialised."""
    environment = dict(os.environ, PYTHONPATH=str(library_root()))
    run = subprocess.run([sys.executable, "-c", WITHOUT_ELASTIX], capture_output=True, text=True, env=environment,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["error"] == "itk-elastix is not installed"
    assert "itk._ITKImageIntensityPython" not in report["itk_modules"], report["itk_modules"]
