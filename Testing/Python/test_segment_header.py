"""One reader of a Slicer .seg.nrrd header's segment list (core/segment_header.py), and the three rules built on it:
preflight's names, a labelmap's names by value, a multi-layer segmentation's (layer, value, name)."""

from __future__ import annotations

import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.file_checks import _segment_names
from MultimodalRegistrationLib.core.labels import label_names
from MultimodalRegistrationLib.core.segment_header import header_segments
from MultimodalRegistrationLib.core.segment_layers import _layered_segments


def _header(**entries: str) -> sitk.Image:
    image = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    for key, value in entries.items():
        image.SetMetaData(key, value)
    return image


def test_the_entries_run_until_one_has_neither_name_nor_value():
    image = _header(Segment0_Name="gland", Segment0_LabelValue="1", Segment1_LabelValue="2", Segment1_Layer="1",
                    Segment3_Name="never read")  # fmt: skip
    entries = header_segments(image)
    assert [(e.index, e.name, e.label_value, e.layer) for e in entries] == [(0, "gland", "1", None), (1, None, "2", "1")]


def test_each_rule_reads_as_before():
    image = _header(Segment0_Name="gland", Segment0_LabelValue="1", Segment1_LabelValue="2", Segment1_Layer="1",
                    Segment2_Name="lesion", Segment2_LabelValue="x")  # fmt: skip
    assert _segment_names(image) == ("gland",)  # the names up to the first entry without one
    assert label_names(image) == {1: "gland"}
    with pytest.raises(InputError, match="segment 2 of the segmentation has a layer or label value"):
        _layered_segments(image)
    fine = _header(Segment0_Name="gland", Segment0_LabelValue="1", Segment1_LabelValue="2", Segment1_Layer="1")
    assert _layered_segments(fine) == [(0, 1, "gland"), (1, 2, "2")]
    assert header_segments(_header()) == [] and label_names(_header()) == {}
