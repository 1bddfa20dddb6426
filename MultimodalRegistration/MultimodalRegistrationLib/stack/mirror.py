"""A section laid face down on its slide (its image the mirror image of its anatomy), found and turned back.

Test: the section as stored and mirrored (its columns reversed; a flip of the rows is the same up to a half
turn, which the starts cover) is matched rigidly to a neighbour on the images the pair registration's first
level sees (:func:`.pairs.coarse`: 4 mm pixels): the best of the pair starts' angles (the tissue centroids met),
refined by a pattern search (REFINE_STEPS, halved down to a quarter), gives each its correlation over the
neighbour's image. The section is turned back when its mirror's dissimilarity (1 - correlation) is under
MIRROR_RATIO of the stored one's against each judge: the nearest section before it (already decided, turned back
if it was) and the next one after it; the first section is judged by the next two, the last by the two before it.
A symmetric section scores about the same both ways (ratio near 1) and is left; so are two neighbouring sections
both face down (each agrees with the other), and both sections of a two-section stack (one judge each). Deterministic: every pixel counts, no sampling.

Measured on the phantom stacks (stack_data, seeds 0 and 1, section 4 of 8 mirrored): ratio 0.14-0.15 for the
mirrored section against each neighbour, 6.8-8.8 for every pair of unmirrored sections; the best start alone
(not refined) gave 0.8 against 1.5 and more. About 10 ms a match: two for a section its first judge clears
(33-47 ms a section with the coarse images, in the reading thread while the pairs run), four for a mirrored one.

Turning back: the working section is mirrored about its image's centre column, ``F: x -> w - x`` with
``w = (columns - 1) px`` (the section's mm), so the pairs see it the right way round; its pose then carries
the mirror, ``x_in = F @ pose @ x_out``, so the volume shows it turned back and its CSV row has determinant -1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .pairs import FAR_ANGLES_DEG, START_ANGLES_DEG, coarse
from .sections import SectionReport, WorkingSection

MIRROR_RATIO = 0.6
REFINE_STEPS = np.array([4.0, 2.0, 2.0])  # deg, mm, mm: the pattern search's first steps
JUDGES = 2


@dataclass
class _Coarse:
    """A section's coarse image as stacked (pixels: rows, columns), its first pixel's centre and spacing (mm,
    working frame, no direction) and its tissue centroid (mm)."""

    pixels: np.ndarray
    origin: np.ndarray
    spacing: np.ndarray
    centroid: np.ndarray

    @classmethod
    def of(cls, working: WorkingSection) -> _Coarse:
        image = coarse(working.image)
        return cls(sitk.GetArrayFromImage(image).astype(np.float64), np.array(image.GetOrigin()),
                   np.array(image.GetSpacing()), np.asarray(working.centroid, float))  # fmt: skip

    def mirrored(self) -> _Coarse:
        """Mirrored about its own centre column (any mirror does for a score)."""
        width = 2 * self.origin[0] + (self.pixels.shape[1] - 1) * self.spacing[0]
        return _Coarse(self.pixels[:, ::-1].copy(), self.origin, self.spacing,
                       np.array([width - self.centroid[0], self.centroid[1]]))  # fmt: skip


def _correlation(fixed: _Coarse, moving: _Coarse, pose: np.ndarray) -> float:
    """Normalised correlation over ``fixed``'s pixels of ``moving`` seen through ``pose`` (deg, mm, mm):
    ``x_moving = R (x_fixed - c) + c + t`` about the fixed tissue's centroid ``c``."""
    angle = np.radians(pose[0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation * fixed.spacing[None, :] / moving.spacing[:, None]  # fixed (x, y) index -> moving's
    offset = (rotation @ (fixed.origin - fixed.centroid) + fixed.centroid + pose[1:] - moving.origin) / moving.spacing
    warped = ndimage.affine_transform(moving.pixels, matrix[::-1, ::-1], offset[::-1], output_shape=fixed.pixels.shape,
                                      order=1, cval=0.0).ravel()  # fmt: skip
    f, m = fixed.pixels.ravel() - fixed.pixels.mean(), warped - warped.mean()
    return float(f @ m / np.sqrt(max(float(f @ f) * float(m @ m), 1e-12)))


def agreement(fixed: _Coarse, moving: _Coarse) -> float:
    """The correlation (-1..1) of ``moving`` matched rigidly to ``fixed`` (see the module notes)."""
    shift = moving.centroid - fixed.centroid
    starts = [np.array([angle, *shift]) for angle in START_ANGLES_DEG + FAR_ANGLES_DEG]
    values = [_correlation(fixed, moving, start) for start in starts]
    pose, best = starts[int(np.argmax(values))], max(values)
    step = REFINE_STEPS.copy()
    while step[0] >= REFINE_STEPS[0] / 4:
        moved = False
        for axis in range(3):
            for sign in (1.0, -1.0):
                trial = pose.copy()
                trial[axis] += sign * step[axis]
                value = _correlation(fixed, moving, trial)
                if value > best:
                    pose, best, moved = trial, value, True
        if not moved:
            step = step / 2
    return best


def _flip_about(width_mm: float) -> np.ndarray:
    flip = np.eye(3)
    flip[0, 0], flip[0, 2] = -1.0, width_mm
    return flip


def _mirrored_image(image: sitk.Image, width_mm: float) -> sitk.Image:
    """``image`` mirrored by ``x -> width_mm - x`` (its own mm): columns reversed, the origin moved to match."""
    out = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[:, ::-1].copy())
    out.CopyInformation(image)
    spacing, origin = image.GetSpacing(), image.GetOrigin()
    out.SetOrigin((width_mm - origin[0] - (image.GetSize()[0] - 1) * spacing[0], origin[1]))
    return out


def turned_back(working: WorkingSection, width_mm: float) -> WorkingSection:
    """``working`` mirrored by ``x -> width_mm - x`` (working mm): image, tissue mask and centroid."""
    mask = None if working.mask is None else _mirrored_image(working.mask, width_mm)
    centroid = _flip_about(width_mm)[:2] @ [*working.centroid, 1.0]
    return WorkingSection(working.index, _mirrored_image(working.image, width_mm), centroid, working.bright, mask,
                          working.tissue_pixels)  # fmt: skip


def _mirror_wins(stored: float, mirror: float) -> bool:
    """Whether the mirror's correlation is clearly the better: its 1 - correlation under MIRROR_RATIO of the stored's."""
    return 1 - mirror < MIRROR_RATIO * (1 - stored)


class MirrorCheck:
    """Feed :meth:`add` each usable section in order and :meth:`finish` at the end; both hand back the sections
    decided so far, in order, turned back where they were mirrored (see the module notes). ``mirrors``: section ->
    ``F`` (3x3, the section's mm) for each section turned back. ``pixel_mm``: the sections' pixel size; ``scale``:
    the working geometry's (:mod:`.small_tissue`)."""

    def __init__(self, pixel_mm: float, scale: float = 1.0):
        self.pixel_mm, self.scale = pixel_mm, scale
        self.mirrors: dict[int, np.ndarray] = {}
        self._pending: list[tuple[WorkingSection, SectionReport]] = []
        self._decided: list[_Coarse] = []  # the last JUDGES sections handed on, as stacked
        self._coarse: dict[int, _Coarse] = {}

    def add(self, working: WorkingSection, report: SectionReport) -> list[tuple[WorkingSection, SectionReport]]:
        self._pending.append((working, report))
        self._coarse[working.index] = _Coarse.of(working)
        out = []
        while len(self._pending) > (1 if self._decided else JUDGES):  # its judges after it are read
            out.append(self._decide())
        return out

    def finish(self) -> list[tuple[WorkingSection, SectionReport]]:
        return [self._decide() for _ in range(len(self._pending))]

    def _decide(self) -> tuple[WorkingSection, SectionReport]:
        working, report = self._pending.pop(0)
        after = [self._coarse[w.index] for w, _ in self._pending]
        judges = (self._decided[-1:] + after[:1]) if self._decided and after else (self._decided[::-1] + after)
        judges = judges[:JUDGES]
        stored = self._coarse.pop(working.index)
        mirror = stored.mirrored()
        scores = []
        for judge in judges:  # the first judge against ends it: most sections cost one comparison
            scores.append((agreement(judge, stored), agreement(judge, mirror)))
            if not _mirror_wins(*scores[-1]):
                break
        # Two judges or none: in a two-section stack each is the other's only judge, and either one mirrored
        # turned the first back (a right section made the mirror of its anatomy).
        if len(judges) == JUDGES and all(_mirror_wins(*score) for score in scores):
            width = (report.size[0] - 1) * self.pixel_mm
            self.mirrors[working.index] = _flip_about(width)
            working, stored = turned_back(working, width * self.scale), mirror
            report.status, report.mirrored = "mirrored", True
            report.note = (
                "mirrored on its slide (laid face down): turned back; 1 - correlation with its neighbours "
                + ", ".join(f"{1 - m:.3f}" for _, m in scores) + " mirrored against "
                + ", ".join(f"{1 - s:.3f}" for s, _ in scores) + " as stored"
            )  # fmt: skip
        self._decided = (self._decided + [stored])[-JUDGES:]
        return working, report
