"""Serial 2D sections aligned into a volume without drift (issue 23): the library entry point.

:func:`align_sections` reads the sections once in order, keeping only the working images of the last
``neighbours`` sections (memory: a few sections), registers each to the ``neighbours`` sections before it
(pairs run in ``threads`` parallel workers), and, given a reference volume (:mod:`.reference`), registers evenly
spaced sections (the anchors, :mod:`.anchors`) to their matching planes, then solves all poses together
(:mod:`.solve`; the reference is one more node). A section laid face down on its slide (mirrored) is turned
back before its pairs run (:mod:`.mirror`: each section waits until the next one is read). Sections that are
missing or blank get poses interpolated from their neighbours; every section's fate is reported.
:func:`stack_sections` also writes the CSV and the volume (:mod:`.output`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..core.errors import InputError
from ..core.files import OutputSet
from ..core.made_by import made_by
from ..core.records import Record
from .anchors import AnchorPicker, anchor_every
from .frame import plane_frame, shifted
from .mirror import MirrorCheck
from .output import write_transforms_csv, write_volume
from .pairs import PairResult, register_pair, register_to_reference
from .polarity import StackPolarity
from .reference import Reference
from .sections import OFF_SIZE, USABLE, SectionReport, WorkingSection, mark_size, read_section
from .small_tissue import in_mm, stack_scale
from .solve import fill_missing, pair_residuals, sequential_poses, solve_affine, solve_rigid

NEIGHBOURS = 3
OFF_SIZE_WEIGHT = 0.25  # a small or large section's pairs count this much
MIN_CORRELATION = 0.05
REFERENCE_WEIGHT = 0.5  # per section: an anchor's pair to the reference counts this times the sections it stands for
REJECT_MM, REJECT_FACTOR = 5.0, 5.0  # a pair this far (mm) off the solution, and this many median pairs, is left out
MIN_CONTRADICTIONS = 2  # a section's pairs left out against its one kept, beyond which that one is not trusted
DISTANCE_POWER = 1.0  # a pair k sections apart counts 1 / k**DISTANCE_POWER: farther sections differ more;
# 2 let one bad neighbour pair outweigh every other pair across its gap (test_stack: 10 mm off), 0 and 1 tie


def _no_progress(items: Iterable, **_) -> Iterable:
    return items


@dataclass
class StackSummary(Record):
    """What ``mmreg stack`` did: per-section reports, counts, timings (s) and the outputs."""

    sections: list[SectionReport] = field(default_factory=list)
    pixel_mm: float = 0.0
    section_mm: float = 0.0
    affine: bool = False
    neighbours: int = NEIGHBOURS
    pairs: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    reference: dict | None = None  # the reference's file, first-section depth (mm), anchor spacing and anchors
    reference_from_volume: list[list[float]] | None = None  # 3x3, x_ref = M x_out (mm), when a reference was given
    # 4x4, the volume's LPS points -> the reference image's (mm): the volume placed on the reference
    volume_to_reference_lps: list[list[float]] | None = None
    made_by: dict | None = None  # versions (core.made_by); None in older records

    def problems(self) -> list[SectionReport]:
        return [s for s in self.sections if s.status != "ok"]


@dataclass
class StackAlignment:
    """Poses (N, 3, 3, ``x_in = poses[k] @ x_out``), the section reports and the pairs measured."""

    poses: np.ndarray
    sections: list[SectionReport]
    pairs: list[PairResult]
    center: np.ndarray  # the canvas centre (mm): the solve's rotation centre
    bright: bool = True
    timings_s: dict[str, float] = field(default_factory=dict)
    reference_pose: np.ndarray | None = None  # x_ref = reference_pose @ x_out, when a reference was given
    reference_every: int = 0  # positions between anchors (0: no reference)
    reference_sections: list[int] = field(default_factory=list)  # the sections registered to the reference
    rejected: list[PairResult] = field(default_factory=list)  # pairs measured but left out of the solve
    plane_size: list[int] | None = None  # the volume's plane (pixels) when the sections' images differ in size


def _pair_weight(pair: PairResult, reports: list[SectionReport], reference_weight: float) -> float:
    sections = [k for k in (pair.i, pair.j) if k < len(reports)]  # pair.i == len(reports): the reference
    if len(sections) == 1:
        weight = reference_weight
    else:
        weight = max(pair.correlation, MIN_CORRELATION) ** 2 / abs(pair.j - pair.i) ** DISTANCE_POWER
    if any(reports[k].status in OFF_SIZE for k in sections):
        weight *= OFF_SIZE_WEIGHT
    return weight


def solve_rejecting(
    count: int, pairs: list[PairResult], reports: list[SectionReport], center: np.ndarray, affine: bool,
    reference_every: int = 1,
) -> tuple[np.ndarray, list[PairResult]]:  # fmt: skip
    """Poses of the sections and the reference (index ``count``) from the pairs; pairs that disagree with the
    solution by more than REJECT_MM (and REJECT_FACTOR times the median pair) are left out, the rest solved again,
    and each rejection noted on its sections' reports. A reference pair weighs REFERENCE_WEIGHT times
    ``reference_every`` (the sections each anchor stands for: the reference's total pull does not depend on
    the anchors' spacing). Returns the poses and the pairs kept."""
    solve = solve_affine if affine else solve_rigid
    gauge = list(range(count))
    weights = np.array([_pair_weight(p, reports, REFERENCE_WEIGHT * reference_every) for p in pairs])
    poses = solve(count + 1, pairs, weights, center, gauge)
    residual = pair_residuals(poses, pairs, center)
    bad = residual > max(REJECT_MM, REJECT_FACTOR * float(np.median(residual)))
    if not bad.any():
        return _tied_together(count, poses, pairs, bad, weights, reports, center, solve)
    for pair, off in zip([p for p, b in zip(pairs, bad) if b], residual[bad]):
        for section, other in ((pair.i, pair.j), (pair.j, pair.i)):
            if section < count:
                name = "the reference" if other == count else f"section {other}"
                note = f"its registration to {name} was {off:.1f} mm off the others and left out"
                reports[section].note = "; ".join(n for n in (reports[section].note, note) if n)
    # A section that most of its registrations place elsewhere rests on the one left, which nothing confirms: a
    # 26 mm fragment kept its one pair of six and was placed 15 mm off, reported as registered (a helper's sweep).
    # It is placed between its neighbours instead, as unaligned.
    left_out = [section for section in range(count) if _contradicted(section, pairs, bad)]
    for section in left_out:
        note = "the one registration left for it is contradicted by its others: not trusted"
        reports[section].note = "; ".join(n for n in (reports[section].note, note) if n)
    bad |= np.array([p.i in left_out or p.j in left_out for p in pairs])
    kept = [p for p, b in zip(pairs, bad) if not b]
    return _tied_together(count, solve(count + 1, kept, weights[~bad], center, gauge), pairs, bad, weights, reports,
                          center, solve)  # fmt: skip


def _groups(nodes: int, pairs: list[PairResult]) -> np.ndarray:
    """Each node's group: the sections (and the reference) that ``pairs`` tie together."""
    graph = coo_matrix((np.ones(len(pairs)), ([p.i for p in pairs], [p.j for p in pairs])), shape=(nodes, nodes))
    return connected_components(graph, directed=False)[1]


def _tied_together(
    count: int, poses: np.ndarray, pairs: list[PairResult], bad: np.ndarray, weights: np.ndarray,
    reports: list[SectionReport], center: np.ndarray, solve: Callable,
) -> tuple[np.ndarray, list[PairResult]]:  # fmt: skip
    """The ``poses`` and the pairs kept (not ``bad``) when those tie every section they reach into one group (the
    reference, index ``count``, is one more node); else the largest group alone, solved again, and the sections of
    the others noted and left without a pose (placed between their neighbours, as unaligned). A kept pair that
    alone ties two groups while MIN_CONTRADICTIONS pairs across them were left out ties nothing. Otherwise the
    solve places the groups anywhere: a tear whose pairs across were left out, all but one or all, put sections
    32-380 mm off, each reported 'ok' (a helper's sweep)."""
    nodes, keep = count + 1, ~bad
    rejected = [p for p, b in zip(pairs, bad) if b]
    for k in np.flatnonzero(keep) if rejected else ():
        label = _groups(nodes, [p for p, kept in zip(pairs, keep) if kept and p is not pairs[k]])
        if label[pairs[k].i] != label[pairs[k].j]:  # it alone ties its two sides
            sides = {label[pairs[k].i], label[pairs[k].j]}
            across = sum({label[p.i], label[p.j]} == sides for p in rejected)
            keep[k] = across < MIN_CONTRADICTIONS
    kept = [p for p, k in zip(pairs, keep) if k]
    label = _groups(nodes, kept)
    reached = sorted({p.i for p in kept} | {p.j for p in kept})
    sizes = np.bincount(label[reached], minlength=label.max() + 1)
    if np.count_nonzero(sizes) <= 1:
        return poses, kept
    largest = int(np.argmax(sizes - 0.5 * (np.arange(len(sizes)) != label[count])))  # a tie: the reference's group
    members = [k for k in reached if label[k] == largest and k < count]
    for section in (k for k in reached if label[k] != largest and k < count):
        reports[section].note = "; ".join(filter(None, [reports[section].note, (
            f"no registration kept ties it to sections {members[0]}-{members[-1]}, the largest group that holds "
            "together (a tear, or sections too unlike their neighbours): not trusted")]))  # fmt: skip
    chosen = keep & np.array([label[p.i] == largest for p in pairs])
    kept = [p for p, k in zip(pairs, chosen) if k]
    return solve(nodes, kept, weights[chosen], center, list(range(count))), kept


def _contradicted(section: int, pairs: list[PairResult], bad: np.ndarray) -> bool:
    """Whether ``section``'s pairs left out number MIN_CONTRADICTIONS or more against one kept."""
    mine = [b for p, b in zip(pairs, bad) if section in (p.i, p.j)]
    return sum(mine) >= MIN_CONTRADICTIONS and len(mine) - sum(mine) == 1


def align_sections(
    paths: list[Path], pixel_mm: float, affine: bool = False, neighbours: int = NEIGHBOURS, threads: int = 2,
    sequential: bool = False, progress: Callable = _no_progress, reference: Reference | None = None,
    reference_every: int | None = None,
) -> StackAlignment:  # fmt: skip
    """Align ordered 2D sections (see the module notes). ``progress`` wraps an iterable (e.g. tqdm);
    ``sequential`` chains neighbouring pairs instead of solving (the drifting baseline, for benchmarks);
    ``reference_every``: positions between the reference's anchors (None: :func:`.anchors.anchor_every`)."""
    count = len(paths)
    picker = None
    if reference is not None and not sequential:
        picker = AnchorPicker(reference_every or anchor_every(count, reference.section_mm))

    def place(working: WorkingSection, report: SectionReport) -> None:  # decided: its pairs, its anchor
        nonlocal window
        for earlier in window[-(1 if sequential else neighbours) :]:
            jobs.append(pool.submit(register_pair, earlier, working, affine))
        if picker is not None and picker.candidate(report):
            anchor(working, report)
        window = (window + [working])[-neighbours:]

    def anchor(working: WorkingSection, report: SectionReport) -> None:
        plane = reference.working_plane(working.index, scale)
        if plane is None:
            note = "its reference plane holds no tissue: aligned to its neighbours only"
            report.note = "; ".join(n for n in (report.note, note) if n)
            return
        jobs.append(pool.submit(register_to_reference, plane, working, count, affine))
        picker.taken(working.index)

    def take(report: SectionReport, working: WorkingSection | None) -> None:  # its slide's polarity decided
        nonlocal canvas
        if working is None:
            return
        working.gray = None
        canvas = canvas or report.size
        bright_votes.append(working.bright)
        for decided in turning.add(working, report):
            place(*decided)

    started = time.perf_counter()
    reports: list[SectionReport] = []
    window: list[WorkingSection] = []
    jobs: list[Future] = []
    pairs: list[PairResult] = []
    canvas = None
    bright_votes = []
    scale = stack_scale(paths, pixel_mm)
    turning = MirrorCheck(pixel_mm, scale)
    polarity = StackPolarity()
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for index in progress(range(len(paths)), desc="aligning sections", unit="section"):
            report, working = read_section(Path(paths[index]), index, pixel_mm, scale)
            reports.append(report)
            for report_k, working_k in polarity.add(report, working):
                take(report_k, working_k)
            while len(jobs) > 4 * max(1, threads):  # bounded: finished pairs free their images
                pairs.append(in_mm(jobs.pop(0).result(), scale))
        for report_k, working_k in polarity.finish():
            take(report_k, working_k)
        for decided in turning.finish():
            place(*decided)
        last = window[-1] if window else None  # the last usable section
        open_end = picker is not None and last is not None and last.index not in picker.anchors
        if open_end and picker.last(reports[last.index]):
            anchor(last, reports[last.index])
        pairs += [in_mm(job.result(), scale) for job in jobs]
    registered = time.perf_counter()
    mark_size(reports)
    usable = [r.status in USABLE for r in reports]
    if sum(usable) < 2:
        kinds = ", ".join(sorted({r.status for r in reports if r.status not in USABLE}))
        raise InputError(f"only {sum(usable)} of {len(reports)} sections hold tissue (the others: {kinds}): "
                         "check the files and the order, or give the right folder")  # fmt: skip
    usable.append(True)  # the reference
    pairs = [p for p in pairs if usable[p.i] and usable[p.j]]
    center = (np.asarray(canvas or (1, 1), float) - 1) * pixel_mm / 2
    reference_pose, measured = None, pairs
    if sequential:
        poses = sequential_poses(count, pairs)
    elif pairs:
        poses, pairs = solve_rejecting(count, pairs, reports, center, affine, picker.every if picker else 1)
        poses, reference_pose = poses[:count], (None if np.isnan(poses[count, 0, 0]) else poses[count])
    else:
        poses = np.full((count, 3, 3), np.nan)
    for report in reports:
        if report.status in USABLE and np.isnan(poses[report.section, 0, 0]):
            report.status = "unaligned"
            report.note = "; ".join(filter(None, ["no registration to a neighbour: placed between its neighbours",
                                                  report.note]))
    for report in reports:
        if report.status not in USABLE:
            report.note += "; its pose (CSV row) is interpolated from its neighbours'"
    poses = fill_missing(poses, center)
    poses = np.array([turning.mirrors.get(k, np.eye(3)) @ pose for k, pose in enumerate(poses)])  # x_in = F x_stacked
    # a large section's image (another magnification?) would widen every plane of the volume
    sizes = {r.section: r.size for r in reports if r.status in USABLE and r.status != "large" and r.size}
    frame = plane_frame(poses, sizes, pixel_mm)
    plane_size = None
    if frame is not None:
        low, plane_size = frame
        poses = np.array([shifted(pose, low) for pose in poses])
        reference_pose = None if reference_pose is None else shifted(reference_pose, low)
    bright = bool(np.mean(bright_votes) >= 0.5) if bright_votes else True
    timings = {"register_s": registered - started, "solve_s": time.perf_counter() - registered}
    kept = {id(p) for p in pairs}
    rejected = [p for p in measured if id(p) not in kept]
    every, anchors = (picker.every, picker.anchors) if picker is not None else (0, [])
    return StackAlignment(poses, reports, pairs, center, bright, timings, reference_pose, every, anchors, rejected,
                          plane_size)  # fmt: skip


def stack_sections(
    paths: list[Path], pixel_mm: float, section_mm: float, output_volume: str | Path | None = None,
    output_transforms: str | Path | None = None, affine: bool = False, neighbours: int = NEIGHBOURS,
    threads: int = 2, progress: Callable = _no_progress, reference: Reference | None = None,
    reference_every: int | None = None, staged: OutputSet | None = None,
) -> StackSummary:  # fmt: skip
    """Align the sections and write the CSV and the volume (each optional), together (into ``staged`` when given:
    the caller moves them into place with its other files); the summary says what happened."""
    alignment = align_sections(paths, pixel_mm, affine, neighbours, threads, progress=progress, reference=reference,
                               reference_every=reference_every)  # fmt: skip
    outputs = {}
    timings = dict(alignment.timings_s)
    with OutputSet() if staged is None else nullcontext(staged) as files:
        if output_volume:
            clock = time.perf_counter()
            written = [r.status != "missing" for r in alignment.sections]
            if any(written):
                files.write(output_volume, lambda tmp: write_volume(
                    tmp, list(paths), alignment.poses, written, pixel_mm, section_mm, alignment.bright,
                    progress=lambda items: progress(items, desc="writing volume", unit="section"),
                    plane_size=alignment.plane_size))  # fmt: skip
                outputs["volume"] = str(output_volume)
            timings["volume_s"] = time.perf_counter() - clock
        if output_transforms:
            files.write(output_transforms, lambda tmp: write_transforms_csv(alignment.poses, tmp))
            outputs["transforms"] = str(output_transforms)
    return StackSummary(
        sections=alignment.sections, pixel_mm=pixel_mm, section_mm=section_mm, affine=affine, neighbours=neighbours,
        pairs=len(alignment.pairs), timings_s={k: round(v, 3) for k, v in timings.items()}, outputs=outputs,
        reference=None if reference is None else {
            "path": reference.path, "offset_mm": reference.offset_mm, "every": alignment.reference_every,
            "sections": alignment.reference_sections, "flipped_axes": list(reference.flipped_axes),
            "axes_swapped": reference.axes_swapped,
        },
        made_by=made_by(),
        reference_from_volume=None if alignment.reference_pose is None else alignment.reference_pose.tolist(),
        volume_to_reference_lps=None if alignment.reference_pose is None
        else np.round(reference.volume_to_lps(alignment.reference_pose), 9).tolist(),
    )  # fmt: skip
