"""Typed records read what 0.1.0 wrote (Testing/Python/data/records_v0_1/) and write the same keys back."""

import json
from pathlib import Path

import pytest
from MultimodalRegistrationLib.core.records import Record
from MultimodalRegistrationLib.registration.summary import Provenance, RegistrationSummary

OLD = Path(__file__).parent / "data" / "records_v0_1"
SUMMARIES = ["summary_anypose.json", "summary_guided.json", "summary_piecewise.json", "case_summary.json"]


def _keys(record: dict, prefix: str = "") -> set[str]:
    """Every key path of a JSON object, nested objects included ("provenance.engine")."""
    keys = set()
    for key, value in record.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _keys(value, f"{prefix}{key}.")
    return keys


@pytest.mark.parametrize("name", SUMMARIES)
def test_a_summary_written_before_the_change_reads_and_writes_the_same_keys(name):
    record = json.loads((OLD / name).read_text())
    summary = RegistrationSummary.from_dict(record)
    assert isinstance(summary.provenance, Provenance) and not isinstance(summary, dict)
    assert summary.metric_after == record["metric"]["after"] and summary.provenance.engine == record["provenance"]["engine"]
    written = summary.to_dict()
    # Every key 0.1.0 wrote is still written, with the same values; new keys may be added.
    assert _keys(record) <= _keys(written), sorted(_keys(record) - _keys(written))
    assert json.loads(json.dumps(written))["provenance"]["starts_tried"] == record["provenance"]["starts_tried"]
    assert written["transform"] == record["transform"] and written["metric"] == record["metric"]


def test_no_record_is_a_mapping_and_each_dumps_through_to_dict():
    from collections.abc import Mapping

    summary = RegistrationSummary.from_dict(json.loads((OLD / "summary_guided.json").read_text()))
    assert not isinstance(summary, Mapping) and not isinstance(summary.provenance, Mapping)
    assert not issubclass(Record, Mapping)
    with pytest.raises(TypeError):
        summary["metric"]  # noqa: B018  (read attributes, or to_dict())
    assert json.loads(json.dumps(summary.to_dict()))["provenance"]["guidance"] is not None
