"""The stack job: serial sections checked, aligned and stacked (:func:`..stack.align.stack_sections`).

:func:`check_stack_job` holds every check that needs no registration (``mmreg stack`` and the Slicer call run
it before anything starts: exit 2 / InputError naming the fix); :func:`run_stack_job` runs the job in a worker
process with the registration worker's protocol (:mod:`.worker`), its progress the share of sections done.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ..core.errors import InputError
from .jobs import StackJob
from .results import JobOutputs, JobResult
from .worker import WorkerJob
from .worker_side import main as worker_main

ALIGN_SHARE = 0.85  # of the progress bar; writing the volume takes the rest
MAX_NEIGHBOURS = 20
# Sections farther apart than this (mm) and than they are wide are a spacing in micrometres (brain slabs: 10 mm).
MAX_SPARSE_SPACING_MM = 10.0
# Pixels this many times the section spacing are a unit typed wrong (slide thumbnails: 0.1 mm pixels, 5 um sections).
MAX_PIXEL_PER_SPACING = 100.0


def _one_pixel_type(headers: list) -> None:
    """Refuse sections of several pixel types (8-bit and 16-bit): the volume takes the first one's, and a 16-bit
    section written into an 8-bit volume had become white (a helper's sweep). Floats of two widths are one."""
    kinds: dict[str, Path] = {}
    for header in headers:
        if header.component_type is not None:
            kinds.setdefault(header.component_type.replace("64-bit float", "32-bit float"), header.path)
    if len(kinds) > 1:
        named = " and ".join(f"{kind} ({path.name})" for kind, path in list(kinds.items())[:2])
        raise InputError(f"the sections hold pixels of {len(kinds)} types: {named}: the volume holds one; save every "
                         "section at one bit depth (e.g. all 8-bit PNG), scaled as you want them to look")  # fmt: skip


def _pixel_mm(job: StackJob, paths: list[Path]) -> float:
    """The sections' pixel size (mm), given or as their files state it, checked against the sections' sizes."""
    from ..core.images2d import read_header_2d
    from ..core.slide_memory import check_sections_fit

    headers = list(filter(None, map(read_header_2d, paths)))
    for header in headers:  # it had been aligned as 'missing' and stacked as glass, exit 0 (a helper's sweep)
        if sum(n > 1 for n in header.size) > 2:
            raise InputError(f"section {header.path.name} holds several pages ({' x '.join(map(str, header.size))} "
                             "pixels): give one 2D image per section; split its pages into files (Fiji: Image, "
                             "Stacks, Stack to Images)")  # fmt: skip
    _one_pixel_type(headers)
    check_sections_fit(headers)
    pixel_mm = _stated_pixel_mm(job, headers)
    _check_units(job, headers, pixel_mm)
    return pixel_mm


def _check_units(job: StackJob, headers: list, pixel_mm: float) -> None:
    """Refuse a pixel size or section spacing in micrometres typed as mm: a section wider than any body, or
    sections over MAX_SPARSE_SPACING_MM apart and farther apart than they are wide. Micrometres typed as mm had
    stacked for 14 minutes without a word (a helper's sweep); whole-body cryosections (the Visible Human's, 676 mm)
    and a cord cut every 2.5 mm into 2 mm sections are stacks."""
    from ..core.plausible_spacing import MAX_PLAUSIBLE_EXTENT_MM

    if not headers:
        return

    def width(header) -> float:  # its two longest sides are the section's (a one-slice volume: (1, rows, columns))
        return max([n for n in header.size[:3] if n > 1] or [1]) * pixel_mm

    widest = max(((width(header), header.path) for header in headers), key=lambda pair: pair[0])
    source = "as given" if job.pixel_mm is not None else "as their files state"
    if widest[0] > MAX_PLAUSIBLE_EXTENT_MM:
        fix = (f"if it is in micrometres, give --pixel-size {pixel_mm / 1000:g}" if job.pixel_mm is not None else
               "their files state a wrong one: give the true size with --pixel-size MM")  # fmt: skip
        raise InputError(f"{widest[1].name} is {widest[0]:.4g} mm wide at {pixel_mm:g} mm pixels ({source}), wider "
                         f"than any body ({MAX_PLAUSIBLE_EXTENT_MM:g} mm): pixel sizes are in mm ({fix})")  # fmt: skip
    if pixel_mm > MAX_PIXEL_PER_SPACING * job.section_mm:  # 1 um pixels typed as 1 mm, 5 um sections as 0.005 mm
        fix = (f"if it is in micrometres, give --pixel-size {pixel_mm / 1000:g}" if job.pixel_mm is not None else
               "their files may state a wrong one: give the true size with --pixel-size MM")  # fmt: skip
        raise InputError(f"the pixels ({pixel_mm:g} mm, {source}) are over {MAX_PIXEL_PER_SPACING:g} times the section "
                         f"spacing ({job.section_mm:g} mm): one of them is in the wrong unit; both are in mm ({fix})")
    if job.section_mm > max(widest[0], MAX_SPARSE_SPACING_MM):
        raise InputError(f"--section-spacing {job.section_mm:g} mm is more than the sections are wide ({widest[0]:.4g} "
                         f"mm at {pixel_mm:g} mm pixels, {source}): the distance between sections is in mm (in "
                         f"micrometres, give --section-spacing {job.section_mm / 1000:g})")  # fmt: skip


def _stated_pixel_mm(job: StackJob, headers: list) -> float:
    from ..core.images2d import check_pixel_size

    if job.pixel_mm is not None:
        return check_pixel_size(job.pixel_mm)
    first = None
    for header in headers:
        # the first section that reads states the pixel size; the others must not state another
        path, size = header.path, header.stated_mm
        if not header.square:  # read at one pixel size, a section with oblong pixels was stretched silently
            raise InputError(f"{path.name} states pixels that are not square: the sections are read at one square "
                             "pixel size: resample it to square pixels, or give --pixel-size if its sizes are wrong")
        if first is None:
            if size is None:
                raise InputError(f"{path.name} does not state its pixel size: give it with --pixel-size MM")
            first = (path, check_pixel_size(size, f"the pixel size in {path.name}"))
        elif size is not None and abs(size / first[1] - 1) > 0.01:
            raise InputError(
                f"{path.name} states {size:g} mm pixels and {first[0].name} {first[1]:g} mm: the sections are read "
                "at one pixel size: rescale the sections that differ to it (--pixel-size reads every file at the size "
                "given, so use it only when the files' own sizes are wrong)"
            )
    if first is None:
        raise InputError(f"--sections {job.sections}: no section can be read: check the files (PNG, TIFF, NRRD)")
    return first[1]


def check_stack_job(job: StackJob):
    """The section files, the pixel size (mm) and the reference (or None), after every check that needs no
    registration; InputError naming the fix otherwise."""
    from ..core.choices import check_threads
    from ..core.output_safety import check_outputs_apart
    from ..stack.reference import read_reference
    from ..stack.sections import check_outputs_beside_sections, find_sections

    spacing = job.section_mm
    if not (isinstance(spacing, int | float) and math.isfinite(spacing) and spacing > 0):
        raise InputError(f"--section-spacing {spacing} mm: give the distance between sections in mm, e.g. 0.05")
    if job.neighbours is not None and not 1 <= job.neighbours <= MAX_NEIGHBOURS:
        raise InputError(f"--neighbours {job.neighbours}: give 1 to {MAX_NEIGHBOURS} (default 3)")
    if job.reference_every is not None and job.reference_every < 1:
        raise InputError(f"--reference-every {job.reference_every}: give 1 or more (1: every section), or leave it out")
    check_threads(job.threads, "2 pairs at once")
    job.check_outputs()
    if not job.output_volume:
        raise InputError("no output volume: give --output-volume (.nrrd)")
    paths = find_sections(str(job.sections))
    outputs = {"--output-volume": job.output_volume, "--output-transforms": job.output_transforms,
               "--json": job.summary}  # fmt: skip
    check_outputs_beside_sections(str(job.sections), outputs)
    # the reference and the sections are inputs too: a volume written over the reference MR had replaced it
    check_outputs_apart([("--reference", job.reference), *((f"section {path.name}", path) for path in paths)],
                        outputs)  # fmt: skip
    pixel_mm = _pixel_mm(job, paths)
    reference = None
    if job.reference:
        reference = read_reference(job.reference, spacing, job.reference_offset_mm, len(paths))
    return paths, pixel_mm, reference


def stage_progress(emit: Callable[[dict], None]) -> Callable:
    """A ``progress`` for :func:`..stack.align.stack_sections` that emits progress events: aligning takes
    ALIGN_SHARE of the bar, writing the volume the rest. Both stages pass one item per section."""

    def progress(items: Iterable, desc: str = "", **_) -> Iterable:
        low, high = (0.0, ALIGN_SHARE) if desc.startswith("align") else (ALIGN_SHARE, 1.0)
        items = list(items)
        count = len(items)
        for done, item in enumerate(items):
            fraction = low + (high - low) * done / max(count, 1)
            emit({"event": "progress", "fraction": round(fraction, 4), "stage": f"{desc}: {done + 1} of {count}"})
            yield item

    return progress


def execute(job: StackJob, progress: Callable):
    """Check and run the job in this process, write its JSON summary if asked; returns the summary
    (:class:`..stack.align.StackSummary`) and the pixel size used (mm). ``progress`` wraps an iterable."""
    from ..core.files import OutputSet
    from ..stack.align import NEIGHBOURS, stack_sections

    paths, pixel_mm, reference = check_stack_job(job)
    with OutputSet() as staged:  # the volume, the CSV and the summary appear together (a stop between mixed runs)
        summary = stack_sections(
            paths, pixel_mm, job.section_mm, job.output_volume, job.output_transforms, affine=job.affine,
            neighbours=job.neighbours or NEIGHBOURS, threads=job.threads, progress=progress, reference=reference,
            reference_every=job.reference_every, staged=staged,
        )  # fmt: skip
        if job.summary:
            summary.outputs["summary"] = str(job.summary)
            text = json.dumps(summary.to_dict(), indent=2)
            staged.write(job.summary, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return summary, pixel_mm


def run_stack_job(job: StackJob, emit: Callable[[dict], None]) -> JobResult:
    """The worker's run: :func:`execute` with progress events; returns the summary and the files written."""
    summary, _ = execute(job, stage_progress(emit))
    return JobResult(summary.to_dict(), JobOutputs.from_dict(summary.outputs))


# What a warm worker (:mod:`.warm_worker`) runs for a job of this module.
WORKER = (StackJob, run_stack_job)


def main() -> int:
    """Entry point of the stack worker process."""
    return worker_main(StackJob, run_stack_job)


class StackWorkerJob(WorkerJob):
    """One stack running in a child process; progress, wait and cancel as :class:`.worker.WorkerJob`."""

    def __init__(self, job: StackJob | dict, python: str | None = None, on_progress=None):
        super().__init__(job, python=python, on_progress=on_progress, job_type=StackJob)


if __name__ == "__main__":
    sys.exit(main())
