"""The worker side of one cohort case (:class:`.jobs.CaseJob`): register, then measure the result.

The registration is :func:`.registration_job.run_registration_job`; the QA is
:func:`.stability.assess_with_restarts` on the same inputs, "before" measured where the registration
measured its metric before (:func:`before_pose`), written as JSON with one checkerboard PNG (before on top,
after below), and the case's own HTML QA report
(``qa.html``, as ``mmreg qa`` writes it) with its pictures in ``qa_figures/``. Progress: registration to
80%, QA after. The result event carries the QA report and the case's own triage verdict (:func:`..qa.triage.triage_case`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ..registration.summary import RegistrationSummary
from .jobs import CaseJob
from .registration_job import run_registration_job
from .results import CaseJobResult
from .worker_side import main as worker_main

REGISTRATION_SHARE = 0.8
# The progress stages a case reports before and after its registration: a failure in one is not the registration's.
STAGES = {"inputs": "input check", "quality": "quality check"}
# The cohort report's thumbnail: 2 mm pixels cost an eighth of a 1 mm montage and show a misregistration.
THUMBNAIL_PIXEL_MM = 2.0


def run_case_job(job: CaseJob, emit: Callable[[dict], None]) -> CaseJobResult:
    """Register and assess one case in this process; returns the registration's result with its QA and verdict."""
    from ..core.images import read_image
    from ..core.transforms import Transform
    from ..qa.assess import write_qa_outputs
    from ..qa.checkerboard import save_before_after
    from ..qa.triage import triage_case
    from .preflight import read_target_points
    from .stability import assess_with_restarts

    def scaled(event: dict) -> None:
        if event.get("event") == "progress":
            event = {**event, "fraction": round(REGISTRATION_SHARE * event["fraction"], 4)}
            event.pop("log", None)  # the case's progress comes from its stages, not the engine log
        emit(event)

    points, outside = {}, []
    if job.fixed_points or job.moving_points:  # the QA's points, refused before the registration as mmreg qa does
        emit({"event": "progress", "fraction": 0.0, "stage": "inputs"})
        headers = [
            _image_header(path, role) for path, role in ((job.fixed, "fixed image"), (job.moving, "moving image"))
        ]
        points, outside = read_target_points(job.fixed_points, job.moving_points, *headers)
        emit({"event": "progress", "fraction": 0.0, "stage": "registration"})  # a failure from here is not the check's
    result = run_registration_job(job, scaled)
    emit({"event": "progress", "fraction": REGISTRATION_SHARE, "stage": "quality"})
    fixed = read_image(job.fixed, "fixed image")
    moving = read_image(job.moving, "moving image")
    transform = Transform.read(job.output_transform)
    inverse = Transform.read(job.output_inverse) if result.outputs.inverse else None
    masks = {
        name: read_image(path, name.replace("_", " ")) if path else None
        for name, path in (("fixed_mask", job.fixed_mask), ("moving_mask", job.moving_mask))
    }
    labels = {}
    if job.fixed_segmentation and job.moving_segmentation:  # QA reports each guiding segment's overlap
        labels["fixed_labels"] = read_image(job.fixed_segmentation, "fixed segmentation")
        labels["moving_labels"] = read_image(job.moving_segmentation, "moving segmentation")
        labels["segment_pairs"] = job.segments  # gland=prostate: paired as the registration paired them
    sources = {
        name: getattr(job, name) for name in ("fixed", "moving", "fixed_points", "moving_points") if getattr(job, name)
    }
    before = before_pose(result.summary, job)
    # The restarts are intensity-only: a guided case (MR -> TRUS) read "unstable, 10.7 mm" against its own guided
    # result (a helper's batch sweep). Its guidance judges it; the restarts are left out and that is said.
    guided = result.summary.provenance.guidance is not None
    restarts = 0 if guided else job.stability
    report = assess_with_restarts(
        fixed, moving, transform, before=before, inverse=inverse, stability_restarts=restarts,
        stability_options={"engine": job.engine, "preset": job.preset},
        sources={**sources, "transform": job.output_transform}, **masks, **points, **labels,
    )  # fmt: skip
    report.warnings[:0] = outside
    if guided and job.stability:
        report.warnings.append("no stability restarts: they register on the intensities alone, and this case is "
                               "guided (its segments and landmarks judge it)")  # fmt: skip
    verdict = triage_case(result.summary, report)
    outputs = result.outputs
    if job.qa:  # the case's own QA report, as mmreg qa writes it, beside its JSON (qa.json -> qa.html)
        written = write_qa_outputs(
            report, fixed, moving, transform, qa_report_path(job.qa), job.qa, before=before,
            fixed_labels=labels.get("fixed_labels"), fixed_mask=masks["fixed_mask"],
        )  # fmt: skip
        outputs.qa, outputs.qa_report, outputs.qa_figures = written["json"], written["report"], written["figures"]
    if job.checkerboard:
        save_before_after(job.checkerboard, fixed, moving, before, transform, THUMBNAIL_PIXEL_MM)
        outputs.checkerboard = job.checkerboard
    emit({"event": "progress", "fraction": 1.0, "stage": "done"})
    return CaseJobResult(result.summary, outputs, qa=report, verdict=verdict)


def _image_header(path: str, role: str):
    """An image's grid from its header alone: an ITK reader answers GetSize, GetSpacing, GetOrigin and GetDirection
    as the image would, so points are checked against it without holding the voxels through the registration."""
    import SimpleITK as sitk

    from ..core.file_checks import read_image_file_info

    read_image_file_info(path, role)  # a missing or unreadable file, named as the registration would name it
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def failed_step(stage: str) -> str:
    """What a case was doing when it failed, from the last progress ``stage`` its worker reported."""
    return STAGES.get(stage, "registration")


def before_pose(summary: RegistrationSummary, job: CaseJob):
    """Where the case's QA measures "before": where the registration measured its metric before (the initial
    transform, else the image centres aligned), so that the summary, qa.json, batch.csv and the report show
    one "MI before". Identity for a record without that pose (a nonlinear initial transform: the transform)."""
    from ..core.transforms import Transform

    matrix = summary.provenance.before_matrix_lps
    if matrix is not None:
        return Transform.from_matrix(matrix)
    return Transform.read(job.initial_transform) if job.initial_transform else Transform.identity()


def qa_report_path(qa_json: str) -> str:
    """Where a case's HTML QA report goes: beside its QA JSON (``qa.json`` -> ``qa.html``)."""
    return str(Path(qa_json).with_suffix(".html"))


# What a warm worker (:mod:`.warm_worker`) runs for a job of this module.
WORKER = (CaseJob, run_case_job)


def main() -> int:
    return worker_main(CaseJob, run_case_job)


if __name__ == "__main__":
    sys.exit(main())
