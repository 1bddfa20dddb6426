"""The 2D registration worker: one :class:`Registration2DJob` (two 2D images) in a child process.

The same protocol as :mod:`.worker` (job JSON on standard input, JSON lines out, exit 0 / 2 / 1). The
inputs are checked by :func:`inputs_2d` in the caller before the worker starts (exit 2 names the fix)
and again in the worker. Outputs, each written atomically:

* ``output_transform``: the 2D ITK transform (``AffineTransform_double_2_2``, fixed -> moving mm), for ITK,
  SimpleITK and elastix/ANTs 2D tools;
* beside it, ``<stem>_3d<suffix>``: the same transform embedded in 3D (``AffineTransform_double_3_3``, z kept).
  Slicer's converter treats every "AffineTransform" as 3D: on the 2D file it reads the in-plane numbers right
  and the z row from elsewhere (slicer-core 5.13, tested), so load the embedding in Slicer. Both map the files'
  own LPS mm, as ITK and Slicer place them (origin and direction; a PNG, TIFF or JPEG: origin 0, no turn): the
  registration runs in the pixel frames ``(i px, j px)`` (the summary's ``matrix``) and is taken through each
  file's origin and direction (``matrix_files``). A fixed MR slice at origin (-120, -120) put the moving image
  170 mm off in Slicer when the files' geometry was dropped;
* ``output_volume``: the moving image (one channel) resampled onto the fixed grid, at the fixed file's origin (a
  one-slice volume file: a one-slice volume where that file lies in 3D);
* ``summary`` (JSON) and ``checkerboard`` (PNG; before: the images as given, after: registered).
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..core.choices import DEFAULT_PRESET, DEFAULT_SEED
from ..core.digest import file_sha256
from ..core.files import OutputSet, stem_of, suffix_of
from ..core.images import write_image
from ..core.records import Record
from ..core.version import __version__
from ..engines.registry import DEFAULT_ENGINE
from ..prep.options import option_text
from .command import PROGRAM
from .jobs import Job, _path
from .results import JobOutputs, JobResult
from .worker import WorkerJob
from .worker_side import main as worker_main

TRANSFORM_SUFFIXES_2D = (".tfm", ".txt", ".h5")


@dataclass
class Summary2D(Record):
    """How a 2D result was made and how good it is: matrix (3x3, fixed -> moving mm), rotation (degrees),
    scales (singular values), the start, engine, preset (and its files) and version, threads, pixel sizes (mm)
    and their source, the pixel sizes registered, seconds, QA, outputs, the input files and the library's
    version."""

    matrix: list
    angle_deg: float
    scales: list
    start: dict
    engine: str
    preset: str
    version: str
    seed: int
    pixel_mm: dict
    pixel_source: dict
    timings: dict
    qa: dict
    outputs: dict = field(default_factory=dict)
    dimension: int = 2
    preset_files: list = field(default_factory=list)
    preset_sha256: list = field(default_factory=list)  # each preset file's, so an edited shipped preset shows
    threads: int = 1
    mmreg_version: str = ""
    sources: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    working_pixel_mm: dict = field(default_factory=dict)  # the pixel sizes registered, after averaging down (mm)
    # The transform between the files' own LPS mm (origin and direction, as T.tfm holds it), and each file's.
    matrix_files: list = field(default_factory=list)
    geometry: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)  # about the result (a size that suggests a wrong pixel size)
    command: str = ""  # the mmreg register2d command line that repeats the run (:func:`register2d_command`)
    simpleitk_version: str = ""
    python_version: str = ""


@dataclass
class Registration2DJobResult(JobResult):
    """A 2D registration: its :class:`Summary2D` and the files it wrote."""

    summary: Summary2D


@dataclass
class Registration2DJob(Job):
    """Register two 2D images (see the module notes). Pixel sizes in mm (None: the file's); masks limit the
    metric; labels (else the masks) give the QA's Dice; landmarks (.mrk.json, .fcsv, .csv RAS as Slicer writes
    them) give its errors."""

    module: ClassVar[str] = "MultimodalRegistrationLib.process.register2d_job"
    result_type: ClassVar[type[JobResult]] = Registration2DJobResult

    fixed: str = _path("input", required=True)
    moving: str = _path("input", required=True)
    engine: str = DEFAULT_ENGINE
    preset: str = DEFAULT_PRESET
    fixed_pixel_mm: float | None = None
    moving_pixel_mm: float | None = None
    fixed_mask: str | None = _path("input")
    moving_mask: str | None = _path("input")
    fixed_points: str | None = _path("input")
    moving_points: str | None = _path("input")
    fixed_labels: str | None = _path("input")
    moving_labels: str | None = _path("input")
    seed: int = DEFAULT_SEED
    threads: int | None = None
    output_transform: str = _path("output", required=True, suffixes=TRANSFORM_SUFFIXES_2D)
    output_volume: str | None = _path("output", suffixes=(".nrrd", ".nii", ".nii.gz", ".mha"))
    summary: str | None = _path("output", suffixes=(".json",))
    checkerboard: str | None = _path("output", suffixes=(".png",))
    workdir: str | None = None


# Job field -> its register2d option, in the order a command line gives them.
OPTIONS_2D = {
    "fixed": "--fixed", "moving": "--moving", "engine": "--engine", "preset": "--preset",
    "fixed_pixel_mm": "--fixed-pixel-size", "moving_pixel_mm": "--moving-pixel-size", "fixed_mask": "--fixed-mask",
    "moving_mask": "--moving-mask", "fixed_points": "--fixed-points", "moving_points": "--moving-points",
    "fixed_labels": "--fixed-labels", "moving_labels": "--moving-labels", "seed": "--seed", "threads": "--threads",
    "output_transform": "--output-transform", "output_volume": "--output-volume", "summary": "--json",
    "checkerboard": "--checkerboard",
}  # fmt: skip


def register2d_command(job: Registration2DJob) -> str:
    """The ``mmreg register2d`` command line (quoted for this machine's shell) that repeats ``job``: every option it sets."""
    from ..core import command_line

    argv = [PROGRAM, "register2d"]
    for name, flag in OPTIONS_2D.items():
        value = getattr(job, name)
        if value is not None:
            argv += [flag, option_text(value)]
    return command_line.join(argv)


def embedding_path(output_transform: str) -> str:
    """Where the 3D embedding goes: ``T.tfm`` -> ``T_3d.tfm``."""
    path = Path(output_transform)
    return str(path.with_name(f"{stem_of(path)}_3d{suffix_of(path)}"))


def embedded_3d(matrix) -> np.ndarray:
    """The 3x3 2D ``matrix`` as a 4x4 that keeps the third coordinate."""
    out = np.eye(4)
    out[:2, :2], out[:2, 3] = np.asarray(matrix)[:2, :2], np.asarray(matrix)[:2, 2]
    return out


def write_transforms_2d(matrix, output_transform: str, matrix_3d=None, staged: OutputSet | None = None) -> dict[str, str]:
    """Write the 3x3 ``matrix`` (fixed -> moving mm) as a 2D ITK affine at ``output_transform`` and, beside it,
    ``matrix_3d`` (4x4, LPS; default ``matrix`` with z unchanged) as a 3D one (see the module notes), together
    (with ``staged``'s other files when given, which the caller moves into place); returns {"transform",
    "transform_3d"} paths."""
    import SimpleITK as sitk

    from ..core.transforms import affine_2d

    flat = affine_2d(matrix)
    full = embedded_3d(matrix) if matrix_3d is None else matrix_3d
    embedded = sitk.AffineTransform(3)
    embedded.SetMatrix([float(v) for v in full[:3, :3].ravel()])
    embedded.SetTranslation([float(v) for v in full[:3, 3]])
    outputs = {"transform": output_transform, "transform_3d": embedding_path(output_transform)}
    with OutputSet() if staged is None else nullcontext(staged) as files:
        files.write(outputs["transform"], lambda tmp: sitk.WriteTransform(flat, tmp))
        files.write(outputs["transform_3d"], lambda tmp: sitk.WriteTransform(embedded, tmp))
    return outputs


def inputs_2d(job: Registration2DJob):
    """Read and check the job's images and masks (InputError naming the fix), and check its outputs and
    preset, before any engine runs. Returns (fixed, moving, [fixed_mask, moving_mask, fixed_labels, moving_labels],
    landmarks): ``landmarks`` are :func:`..qa.two_d.paired_points_2d` of the landmark files, or None."""
    from ..core.checks_2d import (
        check_channels,
        check_enough_pixels,
        check_finite,
        check_mask_size_2d,
        check_not_uniform,
        check_opaque,
        check_plausible_width,
        check_sizes_comparable,
    )
    from ..core.choices import check_seed, check_threads
    from ..core.errors import InputError
    from ..core.images2d import read_header_2d, read_image_2d, read_mask_2d
    from ..core.output_safety import check_outputs_apart
    from ..core.slide_memory import check_slides_fit
    from ..engines.presets import load_preset
    from ..qa.two_d import paired_points_2d

    check_seed(job.seed)  # as mmreg register's: elastix failed on a negative seed, ANTs took it silently
    check_threads(job.threads)
    job.check_outputs()
    outputs = [(name.replace("_", " "), getattr(job, name)) for name in job.paths("output")]
    check_outputs_apart([(name.replace("_", " "), getattr(job, name)) for name in job.paths("input")],
                        [*outputs, ("3D transform", embedding_path(job.output_transform))])  # fmt: skip
    load_preset(job.engine, job.preset, dimension=2)
    if Path(job.fixed).resolve() == Path(job.moving).resolve():  # it returned the identity, exit 0 (a sweep)
        raise InputError(f"--fixed and --moving name the same file ({job.fixed}): there is nothing to register; give "
                         "the other image as --moving")  # fmt: skip
    check_slides_fit(list(filter(None, map(read_header_2d, (job.fixed, job.moving)))), bool(job.checkerboard))
    fixed = read_image_2d(job.fixed, job.fixed_pixel_mm, "fixed image", "--fixed-pixel-size")
    moving = read_image_2d(job.moving, job.moving_pixel_mm, "moving image", "--moving-pixel-size")
    for image, role, option in ((fixed, "fixed image", "--fixed-pixel-size"), (moving, "moving image",
                                                                               "--moving-pixel-size")):
        check_plausible_width(image, role, option)
        check_channels(image, role)
        check_enough_pixels(image, role)
        check_opaque(image, role)
        check_finite(image, role)
        check_not_uniform(image, role)
    check_sizes_comparable(fixed, moving)
    masks = [read_mask_2d(path, image, role) if path else None for path, image, role in
             ((job.fixed_mask, fixed, "fixed mask"), (job.moving_mask, moving, "moving mask"),
              (job.fixed_labels, fixed, "fixed labels"), (job.moving_labels, moving, "moving labels"))]  # fmt: skip
    for mask, image, other, role in ((masks[0], fixed, moving, "fixed mask"), (masks[1], moving, fixed, "moving mask")):
        if mask is not None:
            check_mask_size_2d(mask, image, other, role)
    for kind, pair in (("landmarks", (job.fixed_points, job.moving_points)), ("labels", masks[2:])):
        if (pair[0] is None) != (pair[1] is None):
            raise InputError(f"{kind} on one image only: give the fixed and the moving {kind} together")
    landmarks = paired_points_2d(job.fixed_points, job.moving_points, (fixed, moving)) if job.fixed_points else None
    if landmarks is not None:  # placed on the files as loaded (their origin and direction): into the pixel frames
        landmarks = (_to_frame(landmarks[0], fixed), _to_frame(landmarks[1], moving), *landmarks[2:])
    return fixed, moving, masks, landmarks


def _plane_warnings(fixed, moving) -> list[str]:
    """A warning per slice file that does not lie in an LPS z plane (a coronal or oblique slice saved one slice
    thick): T.tfm and the landmarks then use its pixel frame; T_3d.tfm places it."""
    return [f"the {role} image is a slice outside the axial plane: T.tfm maps the pixel frames ((i px, j px) mm), "
            "and landmarks are read in them; load T_3d.tfm in Slicer, which holds the slices' places"
            for role, image in (("fixed", fixed), ("moving", moving)) if not image.is_axial]  # fmt: skip


def _given_size_warnings(fixed, moving) -> list[str]:
    """A warning per image whose given pixel size replaced another its file states (a helper's 2D sweep: 0.5 mm
    given for a file stating 0.625 ended 12 mm off, its warnings never naming the file's size)."""
    return [f"--{role}-pixel-size {image.pixel_mm:g} mm replaces the {image.stated_mm:g} mm pixels {image.path.name} "
            f"states ({image.pixel_mm / image.stated_mm:.3g} times): check which is right; leave the option out to "
            "use the file's" for role, image in (("fixed", fixed), ("moving", moving))
            if image.stated_mm and abs(image.pixel_mm / image.stated_mm - 1) > 0.01]  # fmt: skip


def _to_frame(points, image):
    """LPS mm points (N, 2) of ``image``'s file -> its pixel frame (mm)."""
    back = np.linalg.inv(image.frame_to_file())
    return np.asarray(points, float) @ back[:2, :2].T + back[:2, 2]


def run_register_2d_job(job: Registration2DJob, emit: Callable[[dict], None]) -> Registration2DJobResult:
    """Register, write the outputs atomically, assess; returns the summary and the files written."""
    import SimpleITK as sitk

    from ..core.images2d import as_stored
    from ..qa.pictures import write_png
    from ..qa.two_d import assess_2d, checkerboard_rows
    from ..registration.two_d import register_2d

    fixed, moving, (fixed_mask, moving_mask, fixed_labels, moving_labels), landmarks = inputs_2d(job)
    emit({"event": "progress", "fraction": 0.05, "stage": f"{job.engine} 2D {job.preset}", "engine": job.engine})
    workdir = Path(job.workdir or ".") / "engine-2d"
    workdir.mkdir(parents=True, exist_ok=True)
    result = register_2d(fixed, moving, job.engine, job.preset, workdir, job.seed, job.threads, fixed_mask, moving_mask)
    transform = result.transform()
    matrix_files = moving.frame_to_file() @ result.matrix @ np.linalg.inv(fixed.frame_to_file())
    fixed_gray, moving_gray = fixed.gray, moving.gray
    # Everything slow (resampling, QA, the picture) before the first file is written: Ctrl-C in the QA of a large
    # slide left T.tfm, T_3d.tfm and a 100 MB volume behind "nothing was written".
    warped = None
    if job.output_volume:  # on the fixed file's own grid: its pixel order, origin and direction
        # an RGB slide stays RGB, as a volume's colours stay in mmreg register's output (it had been written grey,
        # and a Slicer vector output volume came back grey without a word; a helper's sweep)
        colour = moving.image.GetNumberOfComponentsPerPixel() in (3, 4)
        source, kind = (moving.image, moving.image.GetPixelID()) if colour else (moving_gray, sitk.sitkFloat32)
        warped = as_stored(sitk.Resample(source, fixed_gray, transform, sitk.sitkLinear, 0.0, kind), fixed)
    overlap = (fixed_labels, moving_labels) if fixed_labels is not None else (fixed_mask, moving_mask)
    as_given = np.linalg.inv(moving.frame_to_file()) @ fixed.frame_to_file()  # the files as placed, in the frames
    qa = assess_2d(fixed_gray, moving_gray, result.matrix, landmarks, *overlap, None, as_given)
    picture = checkerboard_rows(fixed_gray, moving_gray, [as_given, result.matrix]) if job.checkerboard else None
    matrix_3d = moving.frame_to_lps() @ embedded_3d(result.matrix) @ np.linalg.inv(fixed.frame_to_lps())
    staged = OutputSet()  # every output appears at the end, together
    try:
        outputs = write_transforms_2d(matrix_files, job.output_transform, matrix_3d, staged)
        if warped is not None:
            staged.write(job.output_volume, lambda tmp: write_image(warped, tmp))
            outputs["volume"] = job.output_volume
        if picture is not None:
            staged.write(job.checkerboard, lambda tmp: write_png(picture, tmp))
            outputs["checkerboard"] = qa.checkerboard = job.checkerboard
        if job.summary:
            outputs["summary"] = job.summary
        start = result.start
        summary = Summary2D(
            matrix=result.matrix.round(9).tolist(), angle_deg=round(result.angle_deg, 4),
            scales=[round(s, 6) for s in result.scales],
            start={"angle_deg": start.angle_deg, "scale": round(start.scale, 6), "poses": start.poses,
                   "mutual_information": round(start.mutual_information, 6)},
            engine=job.engine, preset=job.preset, version=result.version, seed=job.seed,
            pixel_mm={"fixed": fixed.pixel_mm, "moving": moving.pixel_mm},
            pixel_source={"fixed": fixed.pixel_source, "moving": moving.pixel_source},
            timings=result.timings, qa=qa.to_dict(), outputs=outputs, preset_files=result.preset_files,
            threads=result.threads, mmreg_version=__version__, candidates=result.candidates,
            working_pixel_mm=result.working_pixel_mm, matrix_files=matrix_files.round(9).tolist(),
            warnings=_given_size_warnings(fixed, moving) + result.warnings + _plane_warnings(fixed, moving),
            # the threads the engine ran with, pinned: with 1 thread a similarity's parameters differ (a helper's sweep)
            command=register2d_command(replace(job, threads=result.threads)),
            preset_sha256=[file_sha256(path) for path in result.preset_files],
            simpleitk_version=sitk.Version.VersionString(),
            python_version=platform.python_version(),
            geometry={role: {"origin_lps_mm": list(image.origin), "direction": list(image.direction),
                             "size": list(image.image.GetSize())} for role, image in (("fixed", fixed), ("moving", moving))},
            sources={name: getattr(job, name) for name in job.paths("input") if getattr(job, name)},
        )  # fmt: skip
        if job.summary:
            text = json.dumps(summary.to_dict(), indent=2)
            staged.write(job.summary, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        staged.commit()  # a failure or a stop before this leaves the earlier run's files as they were
    finally:
        staged.discard()
    return Registration2DJobResult(summary, JobOutputs.from_dict(outputs))


# What a warm worker (:mod:`.warm_worker`) runs for a job of this module.
WORKER = (Registration2DJob, run_register_2d_job)


def main() -> int:
    """Entry point of the 2D worker process."""
    return worker_main(Registration2DJob, run_register_2d_job)


class Registration2DWorkerJob(WorkerJob):
    """One 2D registration running in a child process; progress, wait and cancel as :class:`.worker.WorkerJob`."""

    def __init__(self, job: Registration2DJob | dict, python: str | None = None, on_progress=None, warm=None):
        super().__init__(job, python=python, on_progress=on_progress, job_type=Registration2DJob, warm=warm)


if __name__ == "__main__":
    sys.exit(main())
