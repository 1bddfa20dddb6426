"""Registration QA for one case: every measure that applies to the inputs given, in one :class:`.QAReport`.

The parts live in their own modules: :mod:`.landmarks` (FRE/TRE), :mod:`.overlap` (Dice and
surface distances), :mod:`.images` (MI, NMI, NCC), :mod:`.jacobian` (Jacobian determinant,
inverse consistency), :mod:`.stability` (perturbed restarts), :mod:`.pictures` and
:mod:`.report` (PNG pictures and the HTML report). ``transform`` always maps fixed to moving
points (LPS mm); ``before`` (default identity) is the pose the "before" numbers use.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.field_reach import field_edge_warnings
from ..core.file_checks import STAGED_CHARS, check_output_path, check_windows_path_room
from ..core.files import OutputSet, partial_folder, signals_held
from ..core.folding import SAMPLING_SPACING_MM
from ..core.images import colour_as_grey, validate_image, validate_mask
from ..core.metric import METRIC_SPACING_MM
from ..core.outliers import clip_outliers
from ..core.pairs import check_pair
from ..core.removal import remove_entry
from ..core.replaced import replace_path
from ..core.transforms import Transform
from ..registration.working_scale import working_scale
from .image_doubts import image_doubts
from .images import image_agreement
from .jacobian import INVERSE_MISS_MM, InverseConsistency, inverse_consistency, jacobian_statistics
from .landmarks import landmark_errors, paired_landmarks
from .overlap import prepared_labels, same_labelmap_warning, segmentation_overlap
from .pictures import KINDS, write_qa_pictures
from .placement import labels_outside_warning, no_overlap_warning, sliver_warning
from .point_frames import other_frame_warning
from .report import render_html
from .report_types import QAReport, TransformDescription
from .stability import StabilityResult, foreground_points
from .worse import worse_or_wrong_way


def measuring_grids(fixed: sitk.Image, moving: sitk.Image, options: QAOptions) -> tuple[float, float]:
    """The image metrics' and the Jacobian's grid spacings (mm): the options', or the defaults divided by the
    registration's working scale (:mod:`..registration.working_scale`), so that small anatomy (a mouse brain 10 mm
    across) is sampled as finely as a head and its MI is the number its registration summary reports."""
    k = working_scale(fixed, moving)
    return (options.metric_spacing_mm or METRIC_SPACING_MM / k, options.jacobian_spacing_mm or SAMPLING_SPACING_MM / k)


Progress = Callable[[float, str], None]


# Two single-slice images are a 2D registration's: QA here is for 3D; where its own QA lives.
TWO_D_QA = (
    "this QA measures 3D registrations; a 2D registration reports its own QA: its status and summary, and the "
    "landmark errors, Dice and checkerboard of mmreg register2d (docs/microscopy.md)"
)

def _inverse_consistency(transform: Transform, inverse: Transform | None, fixed: sitk.Image) -> InverseConsistency:
    if inverse is None and not transform.is_linear and transform.has_exact_inverse():
        inverse = transform.inverse()  # the engine's own inverse (ANTs SyN), not a numerical one
    if inverse is None:
        reason = (
            "exact: a linear transform's inverse is its matrix inverse"
            if transform.is_linear
            else "no inverse given: pass the inverse the registration wrote (mmreg register --output-inverse, which "
            "ANTs deformable runs write; an elastix B-spline has no exact inverse) to measure it"
        )
        return InverseConsistency(None, reason=reason)
    return inverse_consistency(transform, inverse, foreground_points(fixed))


@dataclass
class QAOptions:
    """What :func:`assess_registration` measures besides the images and the transform: the pose ``before``
    (default identity) and the ``inverse``; landmarks (world RAS mm, labels, the ``fit_labels`` among them);
    labelmaps and their interpolation; masks (LPS images); the grids (mm) of the image metrics and the
    Jacobian; and the input files' names (``sources``)."""

    before: Transform | None = None
    inverse: Transform | None = None
    fixed_points_ras: np.ndarray | None = None
    moving_points_ras: np.ndarray | None = None
    fixed_point_labels: Sequence[str] | None = None
    moving_point_labels: Sequence[str] | None = None
    fit_labels: Sequence[str] | None = None
    fixed_labels: sitk.Image | None = None
    moving_labels: sitk.Image | None = None
    label_interpolation: str = "nearest"
    segment_pairs: Sequence[str] | None = None  # "FIXED=MOVING": segments named apart, paired as --segments pairs them
    fixed_mask: sitk.Image | None = None
    moving_mask: sitk.Image | None = None
    metric_spacing_mm: float | None = None  # None: METRIC_SPACING_MM, divided by the working scale
    jacobian_spacing_mm: float | None = None  # None: core.folding's SAMPLING_SPACING_MM, the same
    sources: dict | None = None


def check_qa_inputs(fixed: sitk.Image, moving: sitk.Image, options: QAOptions) -> sitk.Image | None:
    """Every check of :func:`assess_registration`'s inputs that needs no measurement, so that a caller can refuse
    bad input before any work (the stability restarts): the images, landmarks and labelmaps each given on both
    sides, the landmark lists (:func:`.landmarks.paired_landmarks`: empty, NaN, unpairable, unknown fit labels), the
    labelmaps (:func:`.overlap.prepared_labels`: empty, interpolation) and the masks. Raises :class:`InputError`;
    returns the validated fixed mask (or None)."""
    o = options
    validate_image(colour_as_grey(fixed)[0], "fixed image")
    validate_image(colour_as_grey(moving)[0], "moving image")
    check_pair(o.fixed_points_ras, o.moving_points_ras, "landmark error", "the fixed points", "the moving points")
    check_pair(o.fixed_labels, o.moving_labels, "segmentation overlap", "the fixed labels", "the moving labels")
    if o.fit_labels and o.fixed_points_ras is None:
        raise InputError("fit points were named but no landmarks given: add fixed and moving points")
    if o.fixed_points_ras is not None:
        paired_landmarks(o.fixed_points_ras, o.moving_points_ras, o.fixed_point_labels, o.moving_point_labels,
                         o.fit_labels)  # fmt: skip
    if o.fixed_labels is not None:
        prepared_labels(o.fixed_labels, o.moving_labels, o.label_interpolation, o.segment_pairs)
    fixed_mask = validate_mask(o.fixed_mask, fixed, "fixed mask") if o.fixed_mask is not None else None
    if o.moving_mask is not None:  # checked here; only the restarts use it
        validate_mask(o.moving_mask, moving, "moving mask")
    return fixed_mask


# How far the mutual information may fall from "before" (nats) without a warning. A correct affine or deformable
# result can end a little below a "before" the registration never compared with (headers already aligned: 0.674 ->
# 0.657 at 0.6 mm from the truth, review); the mistakes this catches fall by 0.1 to 0.4 (a hardened result: 0.642 ->
# 0.263).
AGREEMENT_FALL_NATS = 0.05
AGREEMENT_FELL = "the images agree less after the transform than before"  # how that warning starts


def agreement_fell(before: float | None, after: float | None) -> list[str]:
    """A warning when the images agree less after the transform than before (mutual information, nats, beyond the
    registration's own tolerance): a registration raises it, so the transform is not measured on what it was made
    for, or failed."""
    if before is None or after is None or after >= before - AGREEMENT_FALL_NATS:
        return []
    return [(f"{AGREEMENT_FELL} (mutual information {before:.3f} -> {after:.3f} nats; a registration raises it): the "
            "transform may be applied twice (the moving image already resampled or hardened with it), given the wrong "
            "way round (inverted), the fixed and moving images swapped, or the registration failed: measure the "
            "images the transform was computed from, fixed as fixed, with the transform as the registration wrote "
            "it")]  # fmt: skip


def assess_registration(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    options: QAOptions | None = None,
    stability: StabilityResult | None = None,
    progress: Progress | None = None,
) -> QAReport:
    """Measure the quality of ``transform`` (fixed -> moving, LPS) and return the :class:`.QAReport`.

    Landmarks (world RAS mm) give FRE for ``fit_labels`` and TRE for the others; labelmaps give Dice,
    mean surface distance and HD95 per label (a segment an image's field of view cuts: only where both images see
    it); the images give MI (nats, the registration summary's number), NMI and NCC; the transform gives Jacobian
    determinant statistics and, with an inverse, the inverse-consistency error (mm). ``stability`` is the outcome
    of the perturbed restarts (:func:`..process.stability.stability_check`), reported with its verdict when given.
    ``sources`` names the input files.
    """
    notify = progress or (lambda fraction, stage: None)
    o = options or QAOptions()
    (fixed, grey_fixed), (moving, grey_moving) = colour_as_grey(fixed, "fixed image"), colour_as_grey(moving, "moving image")
    fixed_mask = check_qa_inputs(fixed, moving, o)
    before = o.before or Transform.identity()
    timings: dict[str, float] = {}
    warnings: list[str] = [note for note in (grey_fixed, grey_moving) if note]
    landmarks = overlap = other_frame = None
    # The registration measured its MI on images with hot voxels clipped (core.outliers): so does QA, or the two
    # would disagree (a 1e6 voxel reads MI 0 before and after) and QA would warn that the result was not the one made.
    fixed, clipped_fixed = clip_outliers(fixed, "fixed image")
    moving, clipped_moving = clip_outliers(moving, "moving image")
    warnings += [warning for warning in (clipped_fixed, clipped_moving) if warning]

    @contextmanager
    def step(name: str, fraction: float):
        notify(fraction, name)
        started = time.perf_counter()
        yield
        timings[f"{name}_s"] = round(time.perf_counter() - started, 3)

    if o.fixed_points_ras is not None:
        with step("landmarks", 0.0):
            landmarks = landmark_errors(
                o.fixed_points_ras,
                o.moving_points_ras,
                transform,
                o.fixed_point_labels,
                o.moving_point_labels,
                o.fit_labels,
                before,
            )
        warnings += landmarks.warnings
        other_frame = other_frame_warning(landmarks, transform)
        warnings += [other_frame] if other_frame else []
    if o.fixed_labels is not None:
        with step("segmentation", 0.05):
            overlap = segmentation_overlap(o.fixed_labels, o.moving_labels, transform, before, o.label_interpolation,
                                           fixed, moving, o.segment_pairs)  # a cut segment: where both images see it
        sources = o.sources or {}
        same = same_labelmap_warning(o.fixed_labels, o.moving_labels, sources.get("fixed_labels"),
                                     sources.get("moving_labels"))  # fmt: skip
        warnings += ([same] if same else []) + overlap.warnings
        warnings += labels_outside_warning(o.fixed_labels, fixed, "fixed")
        warnings += labels_outside_warning(o.moving_labels, moving, "moving")
    metric_spacing, jacobian_spacing = measuring_grids(fixed, moving, o)
    with step("images", 0.15):
        images = [image_agreement(fixed, moving, pose, fixed_mask, metric_spacing) for pose in (before, transform)]
    warnings += agreement_fell(images[0].mutual_information, images[1].mutual_information)
    warnings += no_overlap_warning(images[1]) + sliver_warning(fixed, moving, transform, images[1])
    if landmarks is None and overlap is None:  # the images alone judge: do they confirm it?
        with step("image_doubts", 0.2):
            warnings += image_doubts(fixed, moving, transform, fixed_mask, images[0].mutual_information,
                                     images[1].mutual_information)  # fmt: skip
    judged = None if other_frame else landmarks  # points in the other frame say nothing of the transform
    warnings += worse_or_wrong_way(transform, judged, overlap, o.fixed_labels, o.moving_labels)
    with step("jacobian", 0.25):
        jacobian = jacobian_statistics(transform, fixed, jacobian_spacing, fixed_mask)
    if jacobian.folding_percent > 0 and transform.is_linear:  # no preset folds a matrix: it came mirrored
        warnings.append(
            f"the transform mirrors (determinant {jacobian.minimum:.3g}): anatomy comes out left-right reversed; "
            "check the landmarks it was fitted to (pairs, the LPS/RAS coordinate system) or the file's direction"
        )
    elif jacobian.folding_percent > 0:
        warnings.append(
            f"the transform folds: {jacobian.folding_percent:.3g}% of the fixed image has a Jacobian determinant "
            "<= 0: use a stiffer preset (stronger bending penalty, coarser grid) or check the inputs"
        )
    warnings += field_edge_warnings(transform, fixed, "transform")  # a step at its grid's edge reads as a fold
    with step("inverse_consistency", 0.3):
        consistency = _inverse_consistency(transform, o.inverse, fixed)
    if o.inverse is not None and consistency.mean_mm is not None and consistency.mean_mm > INVERSE_MISS_MM:
        warnings.append(f"the inverse given does not undo the transform: a round trip misses by {consistency.mean_mm:.1f} "
                        "mm on average (a registration's own inverse: a few hundredths): give the inverse written with "
                        "this transform (the same run's --output-inverse), or leave it out")  # fmt: skip
    if stability is not None:
        timings["stability_s"] = round(stability.wall_seconds, 3)
        warnings += stability.warnings
        if stability.unstable:
            warnings.append(
                f"unstable: restarts from perturbed starts disagree by {stability.spread_p95_mm:.1f} mm "
                f"(95th percentile, threshold {stability.threshold_mm:g} mm): the result may be a wrong optimum; "
                "prealign with landmarks, mask the anatomy or try the other engine"
            )
    notify(1.0, "measured")
    return QAReport(
        transform=TransformDescription.of(transform),
        images_before=images[0],
        images_after=images[1],
        jacobian=jacobian,
        inverse_consistency=consistency,
        landmarks=landmarks,
        segmentation=overlap,
        stability=stability,
        inputs=dict(o.sources or {}),
        warnings=warnings,
        timings=timings,
    )


def figures_folder(report_path: str | os.PathLike) -> Path:
    """Where a report's pictures go: ``<report name without .html>_figures`` beside it (``run.1.html``:
    ``run.1_figures``; the name was cut at its first dot, so ``run.1`` and ``run.2`` shared one folder)."""
    path = Path(report_path)
    name = path.stem if path.suffix.lower() in (".html", ".htm") else path.name
    return path.parent / f"{name or 'report'}_figures"


def check_report_path(report_path: str | os.PathLike) -> None:
    """Refuse, before any work, a report that cannot be written: not .html/.htm, an unwritable folder, or a file
    where its pictures' folder goes."""
    check_output_path(report_path, "report", (".html", ".htm"))
    folder = figures_folder(report_path)
    # its pictures are staged two folders deep there, beyond what the report's own room allows (a Windows review)
    longest = max((f"{kind}_{stage}.png" for kind in KINDS for stage in ("before", "after")), key=len)
    check_windows_path_room(folder / longest, "report's pictures", 259 - 2 * STAGED_CHARS)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file, where the report's pictures go: move it or name the report otherwise")
    if folder.is_dir():  # a new report replaces the folder: only when it holds nothing but an earlier report's pictures
        ours = {f"{kind}_{stage}.png" for kind in KINDS for stage in ("before", "after")}
        system = {"Thumbs.db", "desktop.ini"}  # what file browsers leave, with dot files such as .DS_Store
        others = sorted(path.name for path in folder.iterdir()
                        if not (path.is_file() and (path.name in ours | system or path.name.startswith("."))))  # fmt: skip
        if others:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            raise InputError(f"{folder}, where the report's pictures go, holds files mmreg did not write ({shown}): "
                             "the report would replace the folder; name the report otherwise, or move them")  # fmt: skip


def write_qa_outputs(
    report: QAReport,
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: Transform,
    report_path: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    before: Transform | None = None,
    fixed_labels: sitk.Image | None = None,
    fixed_mask: sitk.Image | None = None,
) -> dict[str, str]:
    """Write the report as JSON (:meth:`.QAReport.to_dict`) and/or as HTML with its pictures; returns what
    was written. The pictures go to ``<report name>_figures/`` beside the report and are also embedded in it.
    The report, its pictures and the JSON appear together or not at all (a run stopped between them left a new
    report beside the earlier JSON).
    """
    fixed, moving = colour_as_grey(fixed)[0], colour_as_grey(moving)[0]  # the pictures show what was measured
    outputs: dict[str, str] = {}
    staged = OutputSet()
    partial = None
    try:
        if report_path is not None:
            report_path = Path(report_path)
            check_report_path(report_path)
            folder = figures_folder(report_path)
            # named by this process, so a worker killed while drawing has its pictures removed with its other
            # partial files (a batch stopped then had left a hidden folder until the case was resumed)
            staged.make_folder(folder.parent)
            with signals_held():
                partial = partial_folder(folder.parent, f"{folder.name}-")
            drawn = write_qa_pictures(partial, fixed, moving, transform, before, fixed_labels, fixed_mask)
            pictures = {kind: {stage: folder / Path(path).relative_to(partial) for stage, path in stages.items()}
                        for kind, stages in drawn.items()}  # fmt: skip
            html = render_html(report, pictures, base=report_path.parent, read_from=drawn)
            # relative to the JSON that names them (they had been relative to the report's folder, which the JSON
            # does not name: from another folder they did not resolve; a helper's QA sweep)
            named_from = Path(os.path.abspath(json_path)).parent if json_path is not None else report_path.parent
            report.pictures = {
                kind: {stage: _as_named_from(path, named_from) for stage, path in stages.items()}
                for kind, stages in pictures.items()
            }
            staged.write(report_path, lambda tmp: Path(tmp).write_text(html, encoding="utf-8"))
            outputs["report"], outputs["figures"] = str(report_path), str(folder)
        if json_path is not None:
            text = json.dumps(report.to_dict(), indent=2)
            staged.write(json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
            outputs["json"] = str(json_path)
        if partial is None:
            staged.commit()
        else:  # the pictures appear with the report or not at all (a stopped run left half of them)
            _swap_in(partial, figures_folder(report_path), staged)
    finally:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        staged.discard()  # after the pictures: it removes the folders it made once they are empty
    return outputs


def _as_named_from(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder``, or whole where no relative path leads: on Windows, a JSON on another drive
    than the report had stopped QA with a traceback after its measuring (a Windows review)."""
    try:
        return os.path.relpath(path, folder)
    except ValueError:
        return os.path.abspath(path)


def _swap_in(partial: Path, folder: Path, staged: OutputSet) -> None:
    """The drawn pictures' folder (``partial``) in place of ``folder`` and the staged files moved into place, in one
    step; an earlier pictures folder is put back if that fails, and removed once it succeeded."""
    with signals_held():
        earlier = folder.with_name(f".{folder.name}.earlier") if folder.exists() else None
        if earlier is not None:
            remove_entry(earlier, ignore_errors=True)  # Windows: read-only pictures too (a review)
            replace_path(folder, earlier, folder)  # Windows: refused while a picture in it is open elsewhere
        swapped = False
        try:
            replace_path(partial, folder)
            swapped = True
            staged.commit()
        except (OSError, InputError):
            if swapped:  # the report could not move in: its pictures go back out
                os.replace(folder, partial)
            if earlier is not None:
                os.replace(earlier, folder)
            raise
        if earlier is not None:  # within the hold: a stop raised as it ends had left the earlier pictures behind
            remove_entry(earlier, ignore_errors=True)
