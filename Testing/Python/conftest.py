"""Shared fixtures: generated phantoms with exact truth, real engines, real MRML (slicer-core)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import traceback
from pathlib import Path

import pytest
from data_paths import ROOT, SHARED_DATA
from extended_tier import EXTENDED, is_extended
from file_order import longest_first

sys.path.insert(0, str(ROOT / "MultimodalRegistration"))

from MultimodalRegistrationLib.core.phantom import make_phantom_pair
from MultimodalRegistrationLib.registration.register import register

# A coarse phantom keeps the suite fast: CT 2 x 2 x 3 mm, MR 2.5 mm.
SMALL = dict(ct_spacing=(2.0, 2.0, 3.0), mr_spacing=(2.5, 2.5, 2.5))


def bulge(amplitude_mm: float):
    """A smooth displacement along L of up to ``amplitude_mm`` (Gaussian, 45 mm wide) over the phantom head: a
    nonlinear transform like a thin-plate landmark fit, stored as a displacement field on a 10 mm grid (LPS)."""
    import numpy as np
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.transforms import Transform

    z, y, x = np.meshgrid(np.arange(26), np.arange(26), np.arange(24), indexing="ij")
    displacement = amplitude_mm * np.exp(-((x - 12) ** 2 + (y - 13) ** 2 + (z - 13) ** 2) / 40.0)
    field = sitk.GetImageFromArray(np.stack([displacement, 0 * displacement, 0 * displacement], axis=-1), isVector=True)
    field.SetSpacing((10.0, 10.0, 10.0))
    field.SetOrigin((-115.0, -125.0, -140.0))
    return Transform.from_displacement_field(field)


def near_truth(pair):
    """8 degrees and 6 mm off ``pair``'s truth (fixed -> moving, LPS mm), as after a rigid run: a start that lands on
    the truth only when composed in the right order, and that needs no search for a start."""
    from MultimodalRegistrationLib.core.transforms import rigid_transform

    return pair.truth @ rigid_transform(8, (1, -1, 0.5), (6, 0, 0))


def pytest_collection_modifyitems(config, items):
    """Marks the tests extended_tier.py lists ``extended`` (make test leaves them out); stops on an entry whose test
    function its collected file does not hold (renamed or removed). Then orders the files longest first
    (file_order.py)."""
    entries = [entry for group in EXTENDED.values() for entry in group]
    modules = {}
    for item in items:
        test_id = item.nodeid.rsplit("Testing/Python/", 1)[-1]
        modules[test_id.split("::", 1)[0]] = getattr(item, "module", None)
        if any(is_extended(test_id, entry) for entry in entries):
            item.add_marker(pytest.mark.extended)
    stale = [entry for entry in entries if (module := modules.get(entry.split("::", 1)[0])) is not None
             and not hasattr(module, entry.split("::", 1)[1].split("[", 1)[0])]  # fmt: skip
    if stale:
        raise pytest.UsageError(f"extended_tier.py names tests that are not there: {stale}")
    items[:] = longest_first(items, lambda item: item.nodeid.rsplit("Testing/Python/", 1)[-1].split("::", 1)[0])


@pytest.fixture(scope="session")
def small_pair():
    """CT/MR phantom misaligned by 25 degrees and 31 mm (the default truth)."""
    return make_phantom_pair(**SMALL)


@pytest.fixture(scope="session")
def pair_files(small_pair, tmp_path_factory):
    """The small phantom pair as files: ct.nrrd (fixed) and mr.nrrd (moving)."""
    from MultimodalRegistrationLib.core.images import write_image

    folder = tmp_path_factory.mktemp("pair")
    write_image(small_pair.fixed, folder / "ct.nrrd")
    write_image(small_pair.moving, folder / "mr.nrrd")
    return folder


class _RigidResults(dict):
    """engine -> its rigid registration of the small pair, run when a test first asks for it."""

    def __init__(self, pair):
        super().__init__()
        self.pair = pair

    def __missing__(self, engine: str):
        self[engine] = register(self.pair.fixed, self.pair.moving, engine=engine, preset="rigid")
        return self[engine]


@pytest.fixture(scope="session")
def rigid_results(small_pair):
    """One rigid registration per engine, shared by the tests that inspect results; an engine's runs only where a
    test asks for it (the ANTs one takes 18 s)."""
    return _RigidResults(small_pair)


def _call_into(path: str, function, arguments: dict) -> None:
    try:
        outcome = ("result", function(**arguments))
    except BaseException as error:  # noqa: BLE001 (the parent re-raises it, with this traceback)
        outcome = ("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
    Path(path).write_bytes(pickle.dumps(outcome))


class Background:
    """``function(**arguments)`` (a library function, such as register) in a process of its own, started at once;
    :meth:`result` waits for it and returns what the call returned, or raises with the call's traceback.

    ANTs runs one thread (by default, so that its results repeat): an ANTs registration running there beside the
    tests here uses the core they leave idle. The call, its inputs, engine, preset and seed are those the test
    would make itself; only the process differs. (A process, not a thread: the engines hold the GIL, and ITK's
    file writers are not safe to use from two threads at once.)
    """

    def __init__(self, folder: Path, function, **arguments):
        self.path = Path(folder) / f"{function.__name__}-{id(self)}.pickle"
        # spawn: a fresh interpreter, like a worker, not a fork of this one with its engines' threads.
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(target=_call_into, args=(str(self.path), function, arguments), daemon=True)
        self.process.start()  # the arguments are handed over here, so the child does not wait for this process

    def result(self):
        self.process.join()
        if not self.path.exists():
            raise RuntimeError(f"the background call ended with exit code {self.process.exitcode} and no result")
        kind, value = pickle.loads(self.path.read_bytes())
        if kind == "error":
            raise RuntimeError(f"the background call failed: {value}")
        return value

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()


@pytest.fixture(scope="session", autouse=True)
def _warm_slot(request):
    """The session's warm worker slot for :func:`warm_elastix`: if any selected test uses one, its worker starts
    with the first test, so that its import of elastix (one thread) overlaps the tests before the first user.
    Under pytest-xdist each process collects every test but runs only some, so there it starts at first use."""
    from MultimodalRegistrationLib.process.warm_worker import WarmSlot

    slot = WarmSlot(engines=("elastix",))
    one_process = "PYTEST_XDIST_WORKER" not in os.environ
    if one_process and any("warm_elastix" in item.fixturenames for item in request.session.items):
        slot.take()
    yield slot
    slot.stop()


@pytest.fixture
def warm_elastix(_warm_slot):
    """A warm worker process with elastix imported, for register_nodes(warm=...): the node-level tests that
    register with elastix share one, as the Slicer module's Logic shares one per session (its warmSlot), instead
    of each paying the start of a new worker. A fresh one if the last stopped; None (a one-job worker then)
    if it is still busy. The one-job path of register_nodes is tested in test_nodes.py and test_batch.py."""
    return _warm_slot.take()


@pytest.fixture
def scene():
    """A real MRML scene from slicer-core, set as slicer.mrmlScene like inside Slicer."""
    slicer = pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -r Testing/requirements.txt")
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    yield scene
    scene.Clear(1)


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (it lives beside the project in ../shared/data)")
    return path


def mni_t1_grey_white() -> tuple:
    """MNI ICBM152's T1 and its grey- and white-matter maps (float32 SimpleITK images), or skip the test."""
    import SimpleITK as sitk

    name = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
    return tuple(sitk.ReadImage(str(shared_data("mni_icbm152", name.format(part))), sitk.sitkFloat32)
                 for part in ("t1", "gm", "wm"))  # fmt: skip


@pytest.fixture
def segment_rules():
    """Slicer's Segmentations module registers these converter rules at start-up; slicer-core does not."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


@pytest.fixture
def make_segmentation(scene, segment_rules):
    """Build a segmentation node from a labelmap image and {label value: segment name}, as a user would
    after importing a labelmap in Slicer's Segmentations module."""
    import slicer
    from MultimodalRegistrationLib.nodes import mrml

    def build(labels, names: dict[int, str], node_name: str):
        labelmap = mrml.volume_node_from_image(scene, labels, f"{node_name} labels", labelmap=True)
        segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", node_name)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
        inner = segmentation.GetSegmentation()
        for index in range(inner.GetNumberOfSegments()):
            segment = inner.GetSegment(inner.GetNthSegmentID(index))
            segment.SetName(names[segment.GetLabelValue()])
        return segmentation

    return build
