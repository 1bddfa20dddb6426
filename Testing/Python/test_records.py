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


@pytest.mark.parametrize("name", SUMMARIES)
def test_the_provenance_parts_of_an_old_summary_read_as_records(name):
    from MultimodalRegistrationLib.registration.summary import AnyPoseSearch, GuidanceRecord, StartOffset, StartRun

    record = json.loads((OLD / name).read_text())["provenance"]
    provenance = Provenance.from_dict(record)
    assert all(isinstance(run, StartRun) for run in provenance.starts_tried)
    after = [run.get("metric_after") for run in record["starts_tried"]]
    assert [run.metric_after for run in provenance.starts_tried] == after
    offset = provenance.start_offset
    assert isinstance(offset, StartOffset) and offset.from_ == record["start_offset"]["from"] == "image centres"
    assert offset.rotation_deg == record["start_offset"]["rotation_deg"] and offset.scale is None
    if record["any_pose"] is not None:
        search = provenance.any_pose
        assert isinstance(search, AnyPoseSearch) and search.candidates == record["any_pose"]["candidates"] == 810
        assert search.mirror.verdict == "proper" and search.mirror.needed == record["any_pose"]["mirror"]["needed"]
    if record["guidance"] is not None:
        guidance = provenance.guidance
        assert isinstance(guidance, GuidanceRecord)
        assert guidance.segments[0].name == record["guidance"]["segments"][0]["name"]
        assert guidance.score_result.mean_dice == record["guidance"]["score_result"]["mean_dice"]
        assert guidance.engine_terms.channels[0].weight == record["guidance"]["engine_terms"]["channels"][0]["weight"]
        assert guidance.start_candidates[0].dice == record["guidance"]["start_candidates"][0]["dice"]
    written = json.loads(json.dumps(provenance.to_dict()))
    assert provenance.fixed.spacing_mm == record["fixed"]["spacing_mm"] and provenance.moving.pixel_type
    for part in ("starts_tried", "any_pose", "start_offset", "fixed", "moving"):
        assert written[part] == record[part], part
    assert _keys(record) <= _keys(written), sorted(_keys(record) - _keys(written))
    if record["guidance"] is not None:  # 0.1.0's guidance gains only keys its version lacked (start_choice: null)
        old = record["guidance"]
        assert {key: written["guidance"][key] for key in old if key != "start_candidates"} == {
            key: value for key, value in old.items() if key != "start_candidates"
        }
        candidates = written["guidance"]["start_candidates"]
        assert [{key: c[key] for key in ("name", "dice")} for c in candidates] == old["start_candidates"]


def test_the_start_line_reads_the_typed_parts():
    from MultimodalRegistrationLib.registration.describe import describe_guidance, describe_start

    summary = RegistrationSummary.from_dict(json.loads((OLD / "summary_anypose.json").read_text()))
    assert describe_start(summary) == (
        "started from the pose search (25 deg and 25 mm from the image centres; search 1.0 s over 810 poses)"
    )
    guided = RegistrationSummary.from_dict(json.loads((OLD / "summary_guided.json").read_text()))
    assert describe_guidance(guided.provenance.guidance) == "guidance: Dice 0.85 -> 0.88, landmarks 2.0 -> 1.9 mm RMS"


def test_a_piecewise_summary_reads_its_segments_as_records():
    from MultimodalRegistrationLib.registration.describe import describe_piecewise
    from MultimodalRegistrationLib.registration.summary import PiecewiseRecord

    record = json.loads((OLD / "summary_piecewise.json").read_text())
    piecewise = RegistrationSummary.from_dict(record).piecewise
    assert isinstance(piecewise, PiecewiseRecord) and isinstance(piecewise.global_summary, RegistrationSummary)
    sacrum = piecewise.segments[0]
    assert sacrum.name == "sacrum" and sacrum.qa.after.mean_dice == 0.9205 and sacrum.from_global.shift_mm == 1.821
    assert sacrum.registration.starts_tried[0].metric_after == sacrum.metric.after == 0.74663
    assert piecewise.blend["grid_spacing_mm"] == 2.0
    assert piecewise.minimum_jacobian == record["piecewise"]["minimum_jacobian"]
    written = json.loads(json.dumps(piecewise.to_dict()))
    assert written["segments"] == record["piecewise"]["segments"] and written["field"] == record["piecewise"]["field"]
    assert list(written) == list(record["piecewise"])
    assert describe_piecewise(piecewise).splitlines()[0] == (
        "sacrum: Dice 0.887 -> 0.920, surface 1.55 -> 1.12 mm; 2.6 deg, 1.8 mm from global"
    )


def test_a_prep_json_written_before_the_change_reads_as_a_prep_summary():
    from MultimodalRegistrationLib.prep.options import PrepOptions
    from MultimodalRegistrationLib.prep.summary import PrepStep, PrepSummary

    record = json.loads((OLD / "prep.json").read_text())
    summary = PrepSummary.from_dict(record)
    crop, mask = summary.steps[0], summary.steps[2]
    assert isinstance(crop, PrepStep) and (crop.step, crop.image) == ("crop", "fixed")
    assert crop.details["size"] == [73, 79, 75]
    assert mask.step == "mask" and mask.details["coverage"] == 0.2207 and mask.why.startswith("automatic foreground")
    assert summary.fixed.spacing_mm == [3.0, 3.0, 3.0] and summary.moving_mask is None
    assert isinstance(summary.options, PrepOptions) and summary.options.crop_common
    assert summary.options.margin_mm == 10.0 and summary.inputs["initial_transform"] is None
    assert summary.outputs["fixed_mask"] == "/tmp/legacy/out/prep/fixed_mask.nrrd"
    written = json.loads(json.dumps(summary.to_dict()))
    assert written == record and list(written) == list(record)
    assert list(written["steps"][2]) == list(record["steps"][2])


def test_a_prealign_json_written_before_the_change_reads_as_a_prealign_summary():
    from MultimodalRegistrationLib.landmarks.summary import PrealignSummary

    record = json.loads((OLD / "prealign.json").read_text())
    summary = PrealignSummary.from_dict(record)
    assert summary.kind == "rigid" and summary.paired_by == "label" and summary.transform.kind == "linear"
    assert summary.transform.matrix_ras[0][3] == record["transform"]["matrix_ras"][0][3]
    assert summary.fre_mm.rms == record["fre_mm"]["rms"] and summary.loo_rms_mm == record["loo_rms_mm"]
    first = summary.points[0]
    assert first.label == "calcification-1" and first.error_mm == 1.3582 and first.loo_error_mm == 3.3561
    assert summary.outputs["transform"] == "/tmp/legacy/out/L.h5" and summary.inputs["reference_image"] is None
    written = json.loads(json.dumps(summary.to_dict()))
    assert written == record and list(written) == list(record)


def test_a_case_json_written_before_the_change_reads_as_typed_parts():
    from MultimodalRegistrationLib.process.manifest import CaseRecord
    from MultimodalRegistrationLib.qa.report_types import QAReport
    from MultimodalRegistrationLib.qa.triage import Verdict

    record = json.loads((OLD / "case.json").read_text())
    case = CaseRecord.from_dict(record)
    assert isinstance(case.summary, RegistrationSummary) and isinstance(case.qa, QAReport)
    assert isinstance(case.verdict, Verdict) and case.verdict.verdict == record["verdict"]["verdict"]
    assert case.summary.metric_after == record["summary"]["metric"]["after"] and case.outputs.qa == "qa.json"
    assert case.qa.images_after.mutual_information == record["qa"]["images"]["after"]["mutual_information"]
    assert case.qa.jacobian.minimum_at_ras == record["qa"]["jacobian"]["minimum_at_ras_mm"]
    written = json.loads(json.dumps(case.to_dict()))
    assert list(written) == list(record) and _keys(record) <= _keys(written)
    for part in ("qa", "verdict", "outputs", "worker", "hash", "seconds"):
        assert written[part] == record[part], part
    for name in ("qa.json", "case_qa.json"):
        report = json.loads((OLD / name).read_text())
        assert QAReport.from_dict(report).to_dict() == report


def test_a_qa_report_with_landmarks_overlap_and_restarts_reads_back_the_same():
    from MultimodalRegistrationLib.core.transforms import Transform
    from MultimodalRegistrationLib.qa.images import ImageAgreement
    from MultimodalRegistrationLib.qa.jacobian import InverseConsistency, JacobianStatistics
    from MultimodalRegistrationLib.qa.landmarks import ErrorStatistics, LandmarkErrors, LandmarkRow
    from MultimodalRegistrationLib.qa.overlap import LabelOverlap, SegmentationOverlap
    from MultimodalRegistrationLib.qa.report_types import QAReport, TransformDescription
    from MultimodalRegistrationLib.qa.stability import StabilityResult, StabilityRun

    images = ImageAgreement(0.41, 1.2, 0.5, 0.9, 1000, 2.0, 32)
    row = LandmarkRow("tip", "target", [1.0, 2.0, 3.0], [1.5, 2.0, 3.0], [0, 0, 0], [1.2, 2.0, 3.0], 4.0, 0.3, 1e-5)
    tre = ErrorStatistics(1, 0.3, 0.3, 0.3, 0.3)
    landmarks = LandmarkErrors([row], None, None, ErrorStatistics(1, 4.0, 4.0, 4.0, 4.0), tre, "label", ["few"])
    gland = LabelOverlap(1, "gland", 0.91, 0.8, 2.1, 30.0, 29.5)
    overlap = SegmentationOverlap([gland], [gland], "nearest")
    runs = [StabilityRun(0, 7, 3.2, 0.4, 0.6), StabilityRun(1, 8, 3.3, None, None, "engine failed")]
    stability = StabilityResult("elastix", "rigid", 2, 5.0, 5.0, 1.0, 0.5, 0.7, False, runs, 500, 2, 1, 7.0)
    report = QAReport(
        TransformDescription.of(Transform.identity()), images, images,
        JacobianStatistics(1, 1, 1, 0, 1, 1, [0.0, 0.0, 0.0], 1, None), InverseConsistency(0.01, 0.02, 0.03, 10),
        landmarks=landmarks, segmentation=overlap, stability=stability, inputs={"fixed": "f.nrrd"},
        timings={"all": 1.0},
    )  # fmt: skip
    record = json.loads(json.dumps(report.to_dict()))
    again = QAReport.from_dict(record)
    assert again.to_dict() == record
    assert again.landmarks.tre_after.median_mm == 0.3 and again.landmarks.rows[0].label == "tip"
    assert again.segmentation.after[0].dice == 0.91 and again.stability.runs[1].error == "engine failed"
    assert again.stability.verdict == "stable" and again.stability.shift_mm == 5.0
