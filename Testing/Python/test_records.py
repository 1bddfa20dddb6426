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


def test_a_worker_result_event_reads_as_named_outputs_and_writes_the_same_keys():
    from MultimodalRegistrationLib.process.results import CaseJobResult, JobOutputs, RegistrationJobResult

    summary = json.loads((OLD / "summary_piecewise.json").read_text())
    event = {"event": "result", "summary": summary, "outputs": summary["outputs"]}
    result = RegistrationJobResult.from_event(event)
    assert isinstance(result.outputs, JobOutputs) and result.outputs.transform == "/tmp/legacy/out/P.h5"
    assert result.outputs.segment_transforms["left_hip"] == "/tmp/legacy/out/P_left_hip.h5"
    assert result.outputs.inverse is None and result.summary.piecewise is not None
    assert result.outputs.to_dict() == summary["outputs"] and list(result.outputs.to_dict()) == list(summary["outputs"])
    relative = result.outputs.relative_to("/tmp/legacy")
    assert relative.transform == "out/P.h5" and relative.segment_transforms["sacrum"] == "out/P_sacrum.h5"
    assert result.event()["outputs"] == event["outputs"] and result.event()["summary"]["metric"] == summary["metric"]

    case = json.loads((OLD / "case.json").read_text())
    done = CaseJobResult.from_dict({key: case[key] for key in ("summary", "outputs", "qa", "verdict")})
    assert done.verdict.verdict == case["verdict"]["verdict"] and done.outputs.checkerboard == "checkerboard.png"
    assert done.to_dict()["verdict"] == case["verdict"] and done.to_dict()["outputs"] == case["outputs"]
