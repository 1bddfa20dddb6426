"""Shared fixtures: generated phantoms with exact truth, real engines, real MRML (slicer-core)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "MultimodalRegistration"))
SHARED_DATA = ROOT.parent / "shared" / "data"

from MultimodalRegistrationLib.core.phantom import make_phantom_pair  # noqa: E402
from MultimodalRegistrationLib.registration.register import register  # noqa: E402

# A coarse phantom keeps the suite fast: CT 2 x 2 x 3 mm, MR 2.5 mm.
SMALL = dict(ct_spacing=(2.0, 2.0, 3.0), mr_spacing=(2.5, 2.5, 2.5))


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


@pytest.fixture(scope="session")
def rigid_results(small_pair):
    """One rigid registration per engine, shared by the tests that inspect results."""
    return {
        engine: register(small_pair.fixed, small_pair.moving, engine=engine, preset="rigid")
        for engine in ("elastix", "ants")
    }


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
