"""The registration worker: runs one :class:`.jobs.RegistrationJob` in a child process.

``python -m MultimodalRegistrationLib.process.registration_job`` reads the job on standard input
and streams the protocol of :mod:`.worker`. It reads the inputs (preparing them first when the job
asks), registers, writes the outputs atomically and returns the summary with its outputs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..core.errors import EngineError
from ..core.files import OutputSet, stem_of, write_text_atomically
from .command import register_command
from .jobs import RegistrationJob
from .preflight import preflight_registration
from .results import JobOutputs, RegistrationJobResult
from .worker_side import main as worker_main

# Of a registration job's progress, the registration's share; the rest is writing the outputs (a large output
# volume took 25-51 s after "100% done" on a 512 x 512 x 200 CT: the bar said done while the files were written).
REGISTERING_SHARE = 0.97


def _write_log(job: RegistrationJob, text: str) -> str | None:
    """The engine's log, where the job asks for it; returns its path."""
    if not (job.log and text):
        return None
    write_text_atomically(job.log, text)
    return job.log


def _write_segment_transforms(output_transform: str, piecewise, staged: OutputSet) -> dict[str, str]:
    """Each segment's rigid transform (fixed -> moving) beside the field: ``T.h5`` -> ``T_<segment>.h5``, with the
    run's other outputs (``staged``); returns segment -> file."""
    path = Path(output_transform)
    stem = stem_of(path)
    written: dict[str, str] = {}
    taken: set[str] = set()
    for name, segment in piecewise.segments.items():
        # names that differ only where _safe writes '_' ("hip(L)", "hip[L]") had shared one file, the second
        # segment's transform in it; a disk that ignores capitals takes "Hip" and "hip" for one name too
        safe, count = _safe(name), 1
        while (file_name := f"{stem}_{safe}{f'_{count}' if count > 1 else ''}.h5").lower() in taken:
            count += 1
        taken.add(file_name.lower())
        target = path.with_name(file_name)
        staged.write(target, segment.transform.write)
        written[name] = str(target)
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def run_registration_job(job: RegistrationJob, emit: Callable[[dict], None]) -> RegistrationJobResult:
    """Run one registration in this process and write its outputs; returns its summary and the files written."""
    from ..core.images import read_image, write_image
    from ..core.metric import mutual_information
    from ..core.transforms import Transform, resample
    from ..registration.register import register
    from ..registration.settings import RegistrationSettings
    from .guidance_inputs import guidance_from_job

    job = preflight_registration(job, data=False)  # read_image below checks the bytes
    read_started = time.perf_counter()
    initial = Transform.read(job.initial_transform) if job.initial_transform else None
    prepared = None
    if job.prep is not None:
        from ..prep.pipeline import prepare

        def prep_progress(fraction: float, stage: str) -> None:
            emit({"event": "progress", "fraction": 0.0, "stage": stage})

        prepared = prepare(job.fixed, job.moving, job.prep, initial_transform=initial, progress=prep_progress)
        fixed, moving = prepared.fixed, prepared.moving
    else:
        fixed = read_image(job.fixed, "fixed image")
        moving = read_image(job.moving, "moving image")
    fixed_mask = read_image(job.fixed_mask, "fixed mask") if job.fixed_mask else None
    moving_mask = read_image(job.moving_mask, "moving mask") if job.moving_mask else None
    if prepared is not None:  # one mask per image (preflight refuses both); a spacing fix carries over to a file's
        fixed_mask = prepared.registration_mask(fixed_mask, "fixed")
        moving_mask = prepared.registration_mask(moving_mask, "moving")
        fixed_mask = fixed_mask if fixed_mask is not None else prepared.fixed_mask
        moving_mask = moving_mask if moving_mask is not None else prepared.moving_mask
    guidance, guidance_warnings = guidance_from_job(job, fixed, moving)
    read_seconds = time.perf_counter() - read_started
    sources = job.sources()
    for role in ("fixed", "moving"):  # a mask the preparation made is named too (it had read null: a helper)
        if prepared is not None and not sources.get(f"{role}_mask") and getattr(prepared, f"{role}_mask") is not None:
            sources[f"{role}_mask"] = f"made by the preparation (--mask-{role} {getattr(job.prep, f'mask_{role}')})"

    def progress(fraction: float, stage: str, **details) -> None:
        shown = REGISTERING_SHARE * min(max(fraction, 0.0), 1.0)
        emit({"event": "progress", "fraction": round(shown, 4), "stage": stage, **details})

    settings = RegistrationSettings(
        engine=job.engine,
        preset=job.preset,
        fixed_mask=fixed_mask,
        moving_mask=moving_mask,
        initial_transform=initial,
        init=job.init,
        max_rotation_deg=float(job.max_rotation_deg),
        seed=int(job.seed),
        threads=job.threads,
        sources=sources,
    )
    piecewise = None
    try:
        if job.piecewise:  # the global registration, then each named segment on its own, blended
            from ..registration.piecewise.segments import PiecewiseSettings, register_piecewise

            piecewise = register_piecewise(
                fixed, moving, guidance, list(job.piecewise), PiecewiseSettings(settings),
                progress=progress, workdir=job.workdir,
            )  # fmt: skip
            result = piecewise.global_result
        else:
            result = register(fixed, moving, settings, progress=progress, workdir=job.workdir, guidance=guidance)
    except EngineError as error:
        error.log_path = _write_log(job, error.log)
        raise
    write_started = time.perf_counter()
    progress(1.0, "writing the results")
    final = piecewise.field if piecewise is not None else result.transform
    inverse = None if piecewise is not None else result.inverse
    outputs = JobOutputs()
    with OutputSet() as staged:  # every output appears at the end, together: a run stopped while writing leaves none
        if job.output_transform:
            staged.write(job.output_transform, final.write)
            outputs.transform = job.output_transform
            if piecewise is not None:
                outputs.segment_transforms = _write_segment_transforms(job.output_transform, piecewise, staged)
        if job.output_inverse and inverse is not None:
            staged.write(job.output_inverse, inverse.write)
            outputs.inverse = job.output_inverse
        if job.output_volume:
            volume = prepared.resample_moving(final) if prepared else resample(moving, fixed, final)
            staged.write(job.output_volume, lambda tmp: write_image(volume, tmp))
            outputs.volume = job.output_volume
        if job.log and result.log:
            staged.write(job.log, lambda tmp: Path(tmp).write_text(result.log, encoding="utf-8"))
            outputs.log = job.log
        summary = result.summary()
        summary.provenance.timings_s["read_s"] = round(read_seconds, 3)
        summary.provenance.timings_s["write_s"] = round(time.perf_counter() - write_started, 3)
        summary.outputs = outputs.to_dict()
        # elastix's result depends on its thread count: the command names the count it ran with (a helper: 0.27 mm
        # between two deformable runs of one command on 1 and 2 cores).
        summary.provenance.command = register_command(replace(job, threads=job.threads or summary.provenance.threads))
        summary.warnings = guidance_warnings + summary.warnings
        if piecewise is not None:
            summary.transform_kind, summary.matrix_lps, summary.has_inverse = final.kind, None, False
            summary.piecewise = piecewise.summary()
            summary.seconds = summary.piecewise.seconds  # the global run, the segments' and the blend (was the global's)
            # the field's own, as the transform written (it had been the global result's: 0.677 against 0.717)
            summary.metric_after = round(mutual_information(fixed, moving, final, fixed_mask), 6)
            summary.warnings = guidance_warnings + piecewise.warnings
        if prepared is not None:
            summary.prep = prepared.summary().to_dict()
            summary.warnings = prepared.warnings + summary.warnings
        summary.warnings = list(job.input_warnings or []) + summary.warnings
        if job.summary:
            text = json.dumps(summary.to_dict(), indent=2)
            staged.write(job.summary, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
            outputs.summary = job.summary
            summary.outputs = outputs.to_dict()  # the result names the summary file too; the file itself does not
    emit({"event": "progress", "fraction": 1.0, "stage": "done"})
    return RegistrationJobResult(summary, outputs)


# What a warm worker (:mod:`.warm_worker`) runs for a job of this module.
WORKER = (RegistrationJob, run_registration_job)


def main() -> int:
    return worker_main(RegistrationJob, run_registration_job)


if __name__ == "__main__":
    sys.exit(main())
