"""The sections of a stack: finding them in order, reading each into a small working image, judging it.

Order: the files of a folder (or a glob) with a 2D image extension, sorted by name with numbers compared
as numbers (``s2.png`` before ``s10.png``).

Working image (what the pairwise registration sees, one float channel at about ``WORK_MM`` pixels):
the BT.601 luminance, turned so that tissue is bright on a zero background. A section whose border is
nearer its brightest than its darkest values (99th, 1st percentiles) is taken as tissue on a bright slide
(histology, bright field) and inverted against its glass level (99th percentile); otherwise (fluorescence,
MR) the background level
(1st percentile) is subtracted. Off-tissue pixels (dust, labels, glass) are set to 0. A border within
POLARITY_SURE of the span from either end is sure of it (glass or a dark field around the tissue); a section
scanned cropped inside its tissue is not, and takes its stack's polarity (:mod:`.polarity`).

Judgement (per section, never fatal):
* ``missing``: the file is absent, empty or unreadable;
* ``blank``: no tissue: the tissue found by Otsu covers under ``BLANK_FRACTION`` of the slide, or stands
  less than ``BLANK_CONTRAST`` background noise deviations above the background;
* ``small``: tissue area under ``SMALL_FRACTION`` of the median of its neighbours' (set by the caller,
  :func:`mark_size`): registered, its pairs down-weighted;
* ``large``: tissue area over ``1 / SMALL_FRACTION`` times that median, as a section scanned at another
  magnification reads (:func:`mark_size`): registered, its pairs down-weighted;
* ``mirrored``: laid face down on its slide, found and turned back (:mod:`.mirror`): registered like ``ok``;
* ``unaligned``: usable, but no registration reached it (placed like a missing one).

Missing, blank and unaligned sections get poses interpolated from their neighbours.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.checks_2d import check_finite, check_opaque
from ..core.errors import InputError
from ..core.files import suffix_of
from ..core.images2d import IMAGE_2D_SUFFIXES, read_image_2d, to_gray
from ..core.output_safety import file_id, same_place, spellings
from ..core.records import Record

WORK_MM = 1.0  # working pixel size (mm) of the pairwise registrations
BLANK_FRACTION = 0.01
BLANK_CONTRAST = 5.0
SMALL_FRACTION = 0.5
# A border this near (a share of the 1st-99th percentile span) the darkest or brightest values tells the slide's
# polarity surely: glass around H&E tissue reads 0.92 of the span; an H&E section cropped inside its tissue 0.28,
# which had read as a dark field and torn its stack apart (a helper's sweep: 255 mm).
POLARITY_SURE = 0.2
USABLE = ("ok", "small", "large", "mirrored")
OFF_SIZE = ("small", "large")  # statuses whose pairs are down-weighted


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _one_each(paths: set[Path]) -> list[Path]:
    """One path per file: a folder with an accent in its name opens under either spelling on macOS, so two
    spellings of the pattern can find every file twice."""
    kept: dict[tuple, Path] = {}
    for path in sorted(paths):
        try:
            stat = path.stat()
        except OSError:
            kept[(str(path),)] = path
            continue
        kept.setdefault(file_id(stat) or (str(path),), path)
    return list(kept.values())


def find_sections(where: str) -> list[Path]:
    """The section files of a folder or glob, in natural name order. InputError when there are none."""
    folder = Path(where)
    if folder.is_dir():
        try:
            candidates = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]  # macOS ._ files
        except OSError as error:
            raise InputError(
                f"--sections folder {folder} cannot be listed ({error.strerror}): check its permissions"
            ) from None
    elif any(char in where for char in "*?["):
        # macOS stores some names decomposed (copied from HFS+): a typed é matches them only in that spelling
        candidates = _one_each({Path(p) for spelling in spellings(where) for p in glob.glob(spelling)})
    elif folder.exists():
        raise InputError(f"--sections {where} is a file: give the folder of sections or a glob such as 'dir/*.png'")
    else:
        raise InputError(
            f"--sections {where} does not exist: give the folder of sections or a glob such as 'dir/*.png'"
        )
    paths = sorted((p for p in candidates if suffix_of(p) in IMAGE_2D_SUFFIXES and not p.is_dir()), key=_natural_key)
    for before, after in zip(paths, paths[1:]):  # s3.png beside s03.png: their order had followed the listing
        if _natural_key(before) == _natural_key(after):
            first, second = sorted((before.name, after.name))
            raise InputError(f"--sections {where}: {first} and {second} have the same number, so their order is "
                             "unknown: rename one (or remove the one that does not belong)")
    if len(paths) < 2:
        found = "no" if not paths else "only one"
        raise InputError(
            f"--sections {where}: {found} section image found ({', '.join(IMAGE_2D_SUFFIXES)}): "
            "give a folder or glob holding two or more sections"
        )
    return paths


def check_outputs_beside_sections(where: str, outputs: dict[str, str | None]) -> None:
    """Refuse an image output (option -> path) inside the sections' folder (``where`` a folder) or matching their
    glob: the next run would stack the volume as one more section and overwrite it, an input of that run. A CSV or
    JSON there is fine: sections are images only (a stack.json kept beside its sections was refused; review)."""
    pattern = Path(where).expanduser().resolve()
    folder = pattern if pattern.is_dir() else None
    for option, path in outputs.items():
        target = Path(path).expanduser().resolve() if path else None
        if target is None or suffix_of(target) not in IMAGE_2D_SUFFIXES:
            continue
        if not ((folder is not None and same_place(target.parent, folder)) or (folder is None and target.match(str(pattern)))):
            continue
        place = f"lies in the sections' folder {folder}" if folder else f"matches the sections' glob {where}"
        raise InputError(f"{option} {path} {place}: the next run would stack it as one more section; write it "
                         f"outside, e.g. to {target.parent.parent / target.name}")  # fmt: skip


@dataclass
class SectionReport(Record):
    """What became of one section: ``status`` ok, small, large, mirrored, blank, missing or unaligned, and why (``note``);
    ``mirrored``: its image was mirrored (turned back) before it was stacked."""

    section: int
    file: str
    status: str = "ok"
    note: str = ""
    tissue_mm2: float = 0.0
    size: list[int] = field(default_factory=list)  # pixels (columns, rows)
    mirrored: bool = False


@dataclass
class WorkingSection:
    """A section's working image (float32 at about WORK_MM, tissue bright on 0) and its tissue centroid (mm)."""

    index: int
    image: sitk.Image
    centroid: np.ndarray
    bright: bool = True  # tissue on a bright slide (the luminance was inverted)
    mask: sitk.Image | None = None  # the tissue (uint8, dilated by 2 working pixels): where the metric samples
    tissue_pixels: int = 0
    sure: bool = True  # its border told its polarity surely (see the module notes)
    gray: sitk.Image | None = None  # the luminance at the working size, until the stack's polarity is decided
    scale: float = 1.0


def slide_polarity(array: np.ndarray) -> tuple[bool, bool]:
    """Whether a section's luminance (rows, columns) lies on a bright slide, and whether its border is sure of it."""
    rows, columns = array.shape
    band = max(1, min(rows, columns) // 20)
    border = np.concatenate(
        [array[:band].ravel(), array[-band:].ravel(), array[:, :band].ravel(), array[:, -band:].ravel()]
    )
    low, high = np.percentile(array, [1, 99])
    level = (float(np.median(border)) - low) / (high - low) if high > low else 0.5
    return level > 0.5, not POLARITY_SURE < level < 1 - POLARITY_SURE


def _contrast_image(array: np.ndarray, bright: bool) -> np.ndarray:
    """The gray pixels turned tissue-bright on a zero background."""
    if bright:
        return np.clip(np.percentile(array, 99) - array, 0, None).astype(np.float32)
    return np.clip(array - np.percentile(array, 1), 0, None).astype(np.float32)


def _tissue(work: np.ndarray) -> tuple[np.ndarray, float]:
    """Tissue mask (Otsu, holes filled) and its contrast in background noise deviations."""
    if float(work.max()) - float(work.min()) <= 0:
        return np.zeros(work.shape, bool), 0.0
    image = sitk.GetImageFromArray(work)
    mask = sitk.OtsuThreshold(image, 0, 1, 128)
    mask = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(mask, [2, 2]))
    tissue = sitk.GetArrayFromImage(mask).astype(bool)
    if tissue.all() or not tissue.any():
        return tissue, 0.0
    background = work[~tissue]
    noise = max(float(background.std()), 1e-6 * max(float(work.max()), 1e-12))
    return tissue, float((work[tissue].mean() - background.mean()) / noise)


def read_section(path: Path, index: int, pixel_mm: float, scale: float = 1.0) -> tuple[SectionReport, WorkingSection | None]:
    """Read and judge one section (see the module notes); the working section is None unless it is usable.
    ``scale``: the working image's geometry is that many times larger (see :mod:`.small_tissue`)."""
    report = SectionReport(index, Path(path).name)
    try:
        if Path(path).stat().st_size == 0:
            raise InputError("the file is empty")
        read = read_image_2d(path, pixel_mm)
        check_finite(read, "section")  # a NaN pixel had crashed Otsu's threshold (a helper's sweep)
        check_opaque(read, "section")  # its see-through pixels had been read as black tissue
    except (InputError, OSError) as error:
        report.status, report.note = "missing", str(error)
        return report, None
    report.size = list(read.image.GetSize())
    return report, working_section(to_gray(read.image), report, scale)


def working_section(gray: sitk.Image, report: SectionReport, scale: float = 1.0) -> WorkingSection | None:
    """The working image of a one-channel 2D image (any pixel size, shrunk to about WORK_MM); sets the report's
    tissue area (mm^2) and, when no tissue is found, its status (blank): then None. ``scale``: the working image's
    spacing and origin are that many times the image's (see :mod:`.small_tissue`)."""
    if scale != 1.0:
        gray = sitk.Image(gray)
        gray.SetSpacing([s * scale for s in gray.GetSpacing()])
        gray.SetOrigin([o * scale for o in gray.GetOrigin()])
    factor = max(1, round(WORK_MM / float(gray.GetSpacing()[0])))
    if factor > 1:
        gray = sitk.BinShrink(gray, [factor, factor])
    return contrasted(gray, report, scale)


def contrasted(
    gray: sitk.Image, report: SectionReport, scale: float, bright: bool | None = None
) -> WorkingSection | None:
    """:func:`working_section` from the luminance at the working size; ``bright``: the slide's polarity (None:
    the section's own)."""
    array = sitk.GetArrayFromImage(gray)
    own, sure = slide_polarity(array)
    bright = own if bright is None else bright
    work = _contrast_image(array, bright)
    tissue, contrast = _tissue(work)
    spacing = float(gray.GetSpacing()[0])
    report.tissue_mm2 = float(tissue.sum() * (spacing / scale) ** 2)
    fraction = float(tissue.mean())
    if fraction < BLANK_FRACTION or contrast < BLANK_CONTRAST:
        report.status = "blank"
        report.note = f"no tissue found (tissue {fraction:.1%} of the slide, contrast {contrast:.1f} noise deviations)"
        return None
    work[~tissue] = 0.0
    image = sitk.GetImageFromArray(work)
    image.CopyInformation(gray)  # origin: the first pixel's centre of the shrunk grid, in the section's mm
    centroid_index = np.argwhere(tissue)[:, ::-1].mean(axis=0)
    centroid = np.asarray(image.TransformContinuousIndexToPhysicalPoint(centroid_index.tolist()))
    mask = sitk.BinaryDilate(sitk.GetImageFromArray(tissue.astype(np.uint8)), [2, 2])
    mask.CopyInformation(gray)
    return WorkingSection(report.section, image, centroid, bright, mask, int(tissue.sum()), sure, gray, scale)


def off_size(area_mm2: float, near_mm2: list[float]) -> str | None:
    """"small" when ``area_mm2`` is under SMALL_FRACTION of the median of ``near_mm2`` (its neighbours' tissue
    areas), "large" when over 1 / SMALL_FRACTION times it, else None (also without neighbours)."""
    if not near_mm2:
        return None
    ratio = area_mm2 / float(np.median(near_mm2))
    return "small" if ratio < SMALL_FRACTION else "large" if ratio > 1 / SMALL_FRACTION else None


def mark_size(reports: list[SectionReport], around: int = 3) -> None:
    """Mark usable sections whose tissue area is under SMALL_FRACTION of their neighbours' median as small, and
    over 1 / SMALL_FRACTION times it as large (a rigid pose cannot hold a section scanned at another
    magnification: 2 times the pixels across read as 4 times the area)."""
    areas = [r.tissue_mm2 if r.status in USABLE else np.nan for r in reports]
    for report in reports:
        if report.status not in ("ok", "mirrored"):
            continue
        k = report.section
        near = [areas[j] for j in range(max(0, k - around), min(len(reports), k + around + 1)) if j != k]
        near = [a for a in near if np.isfinite(a)]
        status = off_size(report.tissue_mm2, near)
        if status is None:
            continue
        report.status = status
        note = f"tissue {report.tissue_mm2:.0f} mm^2 against {np.median(near):.0f} mm^2 around it"
        if status == "large":
            note += (f" ({(report.tissue_mm2 / float(np.median(near))) ** 0.5:.1f} times across): if it was scanned "
                     "at another magnification, rescale it to the others' pixel size; if it is another specimen, "
                     "take it out of the folder")  # fmt: skip
        report.note = "; ".join(n for n in (note, report.note) if n)
