"""`mmreg batch` on a cluster: one line per finished case when standard output is not a terminal, a bar that
names the running cases, one word (check) for a case to look at, and a report with provenance that links
each case's own QA report."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

import pytest
from MultimodalRegistrationLib.cli.batch import CohortProgress
from MultimodalRegistrationLib.core.version import __version__
from MultimodalRegistrationLib.qa.cohort_provenance import cohort_provenance
from MultimodalRegistrationLib.qa.cohort_report import write_cohort_report
from MultimodalRegistrationLib.qa.triage import Verdict
from test_cli import mmreg


@dataclass
class Finished:
    """What CohortProgress reads of a CaseRecord."""

    case: str
    status: str
    verdict: Verdict | None
    seconds: float


CASES = [
    Finished("pose01", "ok", Verdict.from_dict({"verdict": "ok"}), 12.34),
    Finished("pose02", "ok", Verdict.from_dict({"verdict": "check"}), 8.0),
    Finished("broken", "failed", Verdict.from_dict({"verdict": "failed"}), 0.52),
]


def test_off_a_terminal_each_finished_case_is_one_line():
    lines = io.StringIO()
    progress = CohortProgress(3, stream=io.StringIO(), lines=lines)
    for record in CASES:
        progress.started(record.case)
        progress(record)
    progress.close()
    assert lines.getvalue().splitlines() == [
        "[1/3] pose01: ok (12.3 s)",
        "[2/3] pose02: check (8.0 s)",
        "[3/3] broken: failed (0.5 s)",
    ]
    assert progress.counts == {"failed": 1, "check": 1}


def test_on_a_terminal_the_bar_names_the_running_cases_and_says_check():
    screen = io.StringIO()
    progress = CohortProgress(3, stream=screen, lines=None)
    progress.started("pose01")
    progress.started("pose02")
    assert progress.bar.desc.startswith("pose01, pose02")
    progress(CASES[1])
    progress.bar.refresh()
    shown = screen.getvalue()
    assert "pose01" in shown.splitlines()[-1] or "pose01" in shown.split("\r")[-1]
    assert "check=1" in shown and "flagged" not in shown
    progress.close()


def test_the_report_carries_provenance_and_links_each_cases_qa_report(tmp_path):
    provenance = cohort_provenance(["elastix", "elastix"], ["rigid"], "mmreg batch m.csv --output-dir out", 2)
    assert provenance.versions["mmreg"] == __version__ and "itk-elastix" in provenance.versions
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", provenance.date)
    rows = [
        {"case": "a", "status": "ok", "verdict": "check", "reasons": "low gain", "seconds": 3.0,
         "metric_before": 0.2, "metric_after": 0.3, "tre_median_mm": None, "kind": "", "message": "", "attempts": 1,
         "dice_before": 0.197, "dice_after": 0.834},
        {"case": "b", "status": "failed", "verdict": "failed", "reasons": "", "seconds": 0.1, "metric_before": None,
         "metric_after": None, "tre_median_mm": None, "kind": "input", "message": "unreadable", "attempts": 1},
    ]  # fmt: skip
    outputs = {"a": {"qa": str(tmp_path / "a" / "qa.json"), "qa_report": str(tmp_path / "a" / "qa.html")}, "b": {}}
    write_cohort_report(tmp_path / "report.html", rows, outputs, provenance)
    page = (tmp_path / "report.html").read_text()
    for text in ("date (UTC)", provenance.date, f"mmreg {__version__}", "itk-elastix", "<th>engine</th><td>elastix",
                 "<th>preset</th><td>rigid", "mmreg batch m.csv --output-dir out"):  # fmt: skip
        assert text in page, text
    assert '<a href="a/qa.html">QA report</a>' in page and '<a href="a/qa.json">qa.json</a>' in page
    assert "failed 1, check 1, ok 0" in page and "to check" not in page
    # a: guided by segments, their mean Dice; b: none (no TRE, no Dice, 0.1 s)
    assert "<td>0.20 → 0.83</td><td>3.0</td>" in page and "<td></td><td></td><td>0.1</td>" in page


@pytest.mark.slow
def test_mmreg_batch_through_a_pipe_prints_one_line_per_case(pair_files, tmp_path):
    """`mmreg batch ... | cat`: standard output is a pipe, so each case is a line as it finishes."""
    (tmp_path / "broken.nrrd").write_bytes(b"not an image")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"case,fixed,moving\nphantom,{pair_files / 'ct.nrrd'},{pair_files / 'mr.nrrd'}\n"
                        "broken,broken.nrrd,broken.nrrd\n")  # fmt: skip
    run = mmreg("batch", manifest, "--output-dir", tmp_path / "out", "--workers", "1")
    assert run.returncode == 1, run.stderr  # one case failed
    case_lines = [line for line in run.stdout.splitlines() if line.startswith("[")]
    assert len(case_lines) == 2
    assert {re.sub(r" \(.*", "", line.split("] ", 1)[1]) for line in case_lines} == {"phantom: ok", "broken: failed"}
    assert re.search(r"phantom: ok \(\d+\.\d s\)", run.stdout)
    assert "2 cases: failed 1, check 0, ok 1" in run.stdout
    out = tmp_path / "out"
    assert (out / "phantom" / "qa.html").is_file() and (out / "phantom" / "qa_figures").is_dir()
    page = (out / "report.html").read_text()
    assert '<a href="phantom/qa.html">QA report</a>' in page
    assert f"mmreg batch {manifest}" in page and "itk-elastix" in page and "<th>preset</th><td>rigid" in page
    rows = {row["case"]: row for row in csv.DictReader(open(out / "batch.csv"))}
    assert rows["phantom"]["verdict"] == "ok" and rows["broken"]["verdict"] == "failed"
    summary = json.loads((out / "phantom" / "summary.json").read_text())
    assert summary["provenance"]["command"].startswith("mmreg register --fixed")
    # one "MI before": the QA measures it where the registration did (the image centres aligned here)
    qa = json.loads((out / "phantom" / "qa.json").read_text())
    before = summary["metric"]["before"]
    assert qa["images"]["before"]["mutual_information"] == pytest.approx(before, abs=1e-5)
    assert float(rows["phantom"]["metric_before"]) == before
    assert f"{before:.3f} →" in page


def test_without_tqdm_as_in_slicers_python_each_case_is_still_one_line(monkeypatch, capsys):
    """Slicer's Python has no tqdm, and the Slicer batch script had stopped on it with a traceback before any case
    (a helper's packaging sweep). Without it, even on a terminal, each finished case is one line."""
    import builtins
    import sys

    real_import = builtins.__import__

    def without_tqdm(name, *args, **kwargs):
        if name == "tqdm" or name.startswith("tqdm."):
            raise ImportError("No module named 'tqdm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tqdm)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    progress = CohortProgress(3, stream=io.StringIO())
    for record in CASES:
        progress.started(record.case)
        progress(record)
    progress.close()
    assert capsys.readouterr().out.splitlines() == [
        "[1/3] pose01: ok (12.3 s)", "[2/3] pose02: check (8.0 s)", "[3/3] broken: failed (0.5 s)"]
