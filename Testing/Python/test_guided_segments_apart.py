"""A guided result whose guiding segments still barely overlap is warned as probably wrong (issue 22's hard pairs).

Segmentations saved cropped to their segments (Slicer's .seg.nrrd default) on images that share one lattice (the
real TRUS pairs' geometry: same origin and spacing) cannot be told apart by their grids: given the wrong way round,
a helper's run ended 52 mm off with exit 0 and no warning, 'Dice 0.10 -> 0.10'."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.labels import label_names, set_label_names
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.register import register
from trus_data import trus_pair

APART = "the guiding segments overlap little after the guided registration"


def cropped(labels: sitk.Image) -> sitk.Image:
    """``labels`` cropped to its segments' box, named as before (as Slicer saves a .seg.nrrd)."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.Cast(labels != 0, sitk.sitkUInt8))
    box = statistics.GetBoundingBox(1)
    return set_label_names(sitk.RegionOfInterest(labels, box[3:], box[:3]), label_names(labels))


@pytest.fixture(scope="module")
def pair():
    return trus_pair(104)


def test_segmentations_given_the_wrong_way_round_and_cropped_are_warned(pair):
    fixed_labels, moving_labels = cropped(pair.fixed_labels), cropped(pair.moving_labels)
    right = register(pair.fixed, pair.moving, engine="elastix", preset="rigid",
                     guidance=Guidance(fixed_labels, moving_labels))  # fmt: skip
    assert np.median(pair.tre(right.transform)) < 5.0 and not [w for w in right.warnings if APART in w]
    swapped = register(pair.fixed, pair.moving, engine="elastix", preset="rigid",
                       guidance=Guidance(moving_labels, fixed_labels))  # fmt: skip
    error = float(np.median(pair.tre(swapped.transform)))
    (said,) = [w for w in swapped.warnings if APART in w]
    print(f"swapped: {error:.1f} mm off; {said[:90]}")
    assert error > 20.0 and "check that each segmentation was drawn on its own image" in said
