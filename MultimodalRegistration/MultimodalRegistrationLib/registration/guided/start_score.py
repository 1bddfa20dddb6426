"""The two scores by which guided start candidates are compared, each with its own noise.

* guidance: the mean distance (mm, clamped at CLAMP_MM) from each paired fixed segment's surface points,
  mapped by the pose, to the moving segment's surface (its distance map); lower is better;
* intensities: the mutual information (nats) of fixed samples inside the fixed segments (``REGION_MM``; within
  ``SMALL_SEGMENTS_REGION_MM`` of them when the inside has fewer than MIN_INSIDE_SAMPLES voxels or no contrast)
  and the fixed field of view with the moving image; higher is better. Left out when the metric is "segments"
  or when either image has no contrast there. The start's referee (:func:`wide_intensity_z`) samples a wider
  region, ``REFEREE_REGION_MM``.

Their noise is a block bootstrap of both means, paired across candidates (the same patches drawn for every
candidate), so differences between candidates have their own standard deviations.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from .guidance import PreparedGuidance
from .intensity import BINS, PointwiseMI
from .surfaces import FOV_MARGIN_MM, Surface, apply, block_bootstrap, patches
from .views import SegmentViews

# Inside the segments only: around a gland a TRUS may echo tissue the MR does not show, and a wrong turn was chosen
# on that ring (make bench's three TRUS tables, 72 pairs: worse than their centroids 2 -> 0 with the start, 3 -> 0
# with ANTs deformable; 0.25-0.45 mm lost where the TRUS echoes all the MR's texture; guided_results.md, 32nd/33rd).
REGION_MM = 0.0
SMALL_SEGMENTS_REGION_MM = 10.0  # segments too small or flat inside for a mutual information: their ring too
MIN_INSIDE_SAMPLES = BINS * BINS  # about one sample per joint histogram bin
MIN_SEEN = 0.2  # fewer fixed surface points than this share seen by every pose compared: compare them all
BOOTSTRAP = 300
# The surfaces' bootstrap sees how their points were sampled, not how two segmentations drawn apart disagree
# in shape (apex and base extents, probe compression); that disagreement is about as large again
# (diagnose_guided_hard.py: the surfaces prefer the start to the true rotation on 18 of 24 hard pairs), so a
# surface gain counts at half its bootstrap z: its noise is taken as 1 / SURFACE_WEIGHT times that SD.
SURFACE_WEIGHT = 0.5
# The referee of a turn: the intensities farther out, where the surroundings (not the gland's drawn shape)
# show the turn. On 96 hard TRUS-like pairs at three true-turn ranges (288 starts), their sign agreed with
# which of the prior and the proposal was closer to the truth on 91% of the starts where it mattered by
# > 1 mm, the 10 mm region's on 80% (guided_results.md, tenth session).
REFEREE_REGION_MM = 25.0


class Scores(NamedTuple):
    """Scores of P poses: surface residuals (P, Ns) and their points' patches; pointwise MI (P, Nm) and its
    samples' patches, or None."""

    surface: np.ndarray
    surface_patch: np.ndarray
    mi: np.ndarray | None
    mi_patch: np.ndarray | None


class StartScorer:
    """Surface residuals and pointwise MI of candidate poses (4x4, fixed -> moving), and their replicates."""

    def __init__(self, prepared: PreparedGuidance, fixed: sitk.Image | None, moving: sitk.Image | None, seed: int):
        views = SegmentViews.of(prepared)
        fov = views.fixed_fov
        self.fixed_surfaces = [Surface.of(mask, views.fixed_edge) for mask in prepared.fixed_masks]
        self.moving_surfaces = [Surface.of(mask, views.moving_edge) for mask in prepared.moving_masks]
        self.points = [surface.points for surface in self.fixed_surfaces]
        # A moving segment its field of view cuts: a fixed point mapped near or past that edge has no surface to
        # meet there. Such points are compared only among poses that all map them inside (:meth:`evaluate`).
        self._moving_edge = views.moving_edge_volume if any(views.moving_cut) else None
        self._all_points = np.concatenate(self.points)
        self._needs_moving_view = np.concatenate(
            [np.full(len(points), cut) for points, cut in zip(self.points, views.moving_cut)]
        )
        self.surface_patch = np.concatenate(
            [patches(points) + (index << 20) for index, points in enumerate(self.points)]
        )
        self.cut_fraction = float(np.mean([surface.cut_fraction for surface in self.fixed_surfaces]))
        self.seed = seed
        self.intensity = None
        self.intensity_region_mm = None  # where the intensities were read: REGION_MM or SMALL_SEGMENTS_REGION_MM
        self._intensity_source = None  # (fixed, moving, distance (mm) to the fixed segments, field of view)
        if fixed is not None and moving is not None and prepared.guidance.metric == "intensity":
            union = prepared.fixed_masks[0]
            for mask in prepared.fixed_masks[1:]:
                union = sitk.Or(union, mask)
            distance = sitk.SignedMaurerDistanceMap(union, insideIsPositive=False, squaredDistance=False,
                                                    useImageSpacing=True)  # fmt: skip
            self._intensity_source = (fixed, moving, distance, fov)
            for region_mm, fewest in ((REGION_MM, MIN_INSIDE_SAMPLES), (SMALL_SEGMENTS_REGION_MM, 0)):
                self.intensity = self._intensity_within(region_mm, fewest)
                if self.intensity is not None:
                    self.intensity_region_mm = region_mm
                    break
        self.rng = np.random.default_rng(seed)

    @classmethod
    def of(cls, prepared: PreparedGuidance, fixed: sitk.Image | None, moving: sitk.Image | None,
           seed: int) -> StartScorer:  # fmt: skip
        """The scorer of these images and segments, built once per guidance: the start's choice and the keep rule
        score the same surfaces and intensities (on a 512 x 512 x 200 CT, 50 s to build). Each caller gets it
        with its bootstrap restarted from ``seed``, as a new one would be."""
        built = prepared.__dict__.setdefault("_start_scorers", [])
        scorer = next((kept for (f, m, s), kept in built if f is fixed and m is moving and s == seed), None)
        if scorer is None:
            scorer = cls(prepared, fixed, moving, seed)
            built.append(((fixed, moving, seed), scorer))
        restarted = copy.copy(scorer)
        restarted.rng = np.random.default_rng(seed)
        return restarted

    @property
    def reads_inside(self) -> bool:
        """Whether the intensities are read inside the segments (not on their ring, and not left out)."""
        return self.intensity_region_mm is not None and self.intensity_region_mm <= 0

    @property
    def intensity_where(self) -> str:
        """Where the intensities are read, in words ("" when they are not)."""
        if self.intensity_region_mm is None:
            return ""
        if self.reads_inside:
            return "inside the segments"
        return f"within {self.intensity_region_mm:g} mm of the segments"

    def _intensity_within(self, region_mm: float, fewest: int = 0) -> PointwiseMI | None:
        """PointwiseMI of the fixed samples within ``region_mm`` of the segments, or None when it is not informative
        (its own bar: more than BINS samples) or has fewer than ``fewest`` samples."""
        fixed, moving, distance, fov = self._intensity_source
        region = sitk.And(sitk.Cast(distance <= region_mm, sitk.sitkUInt8), fov)
        scorer = PointwiseMI(fixed, moving, region, self.seed)
        return scorer if scorer.informative and len(scorer.points) >= fewest else None

    def widened(self, region_mm: float) -> StartScorer:
        """This scorer with its intensities sampled within ``region_mm`` of the fixed segments instead: the
        surfaces shared, the bootstrap restarted from the seed."""
        wide = copy.copy(self)
        wide.intensity = None if self._intensity_source is None else self._intensity_within(region_mm)
        wide.intensity_region_mm = None if wide.intensity is None else region_mm
        wide.rng = np.random.default_rng(self.seed)
        return wide

    def surface(self, pose: np.ndarray) -> np.ndarray:
        """Residuals (mm) of every kept fixed surface point under ``pose``, all paired segments in a row."""
        return np.concatenate(
            [moving.residuals(apply(pose, points)) for points, moving in zip(self.points, self.moving_surfaces)]
        )

    def seen(self, pose: np.ndarray) -> np.ndarray:
        """Which fixed surface points ``pose`` maps where the moving segment could be seen: all, but for a segment
        the moving field of view cuts, those mapped farther than FOV_MARGIN_MM inside that field."""
        if self._moving_edge is None:
            return np.ones(len(self._needs_moving_view), bool)
        inside = self._moving_edge(apply(pose, self._all_points)) >= FOV_MARGIN_MM
        return ~self._needs_moving_view | inside

    def evaluate(self, poses: list[np.ndarray]) -> Scores:
        """Surface residuals (P, Ns) of the points every pose maps where the moving segments are seen
        (:meth:`seen`; all when too few are), their patches; pointwise MI (P, Nm) on the samples every pose maps
        inside the moving image, and those samples' patches (None without intensities)."""
        surface, patch = np.stack([self.surface(pose) for pose in poses]), self.surface_patch
        if self._moving_edge is not None:
            common = np.logical_and.reduce([self.seen(pose) for pose in poses])
            if common.sum() >= MIN_SEEN * len(common):
                surface, patch = surface[:, common], patch[common]
        if self.intensity is None:
            return Scores(surface, patch, None, None)
        values, seen = [], []
        for pose in poses:
            pointwise, inside = self.intensity.pointwise(pose)
            full = np.zeros(len(inside))
            full[inside] = pointwise
            values.append(full)
            seen.append(inside)
        common = np.logical_and.reduce(seen)
        return Scores(surface, patch, np.stack(values)[:, common], self.intensity.patch[common])

    def replicates(self, scores: Scores, count: int = BOOTSTRAP) -> tuple[np.ndarray, np.ndarray | None]:
        """Paired bootstrap replicates (count, P) of the mean surface residual and of the MI."""
        rs = block_bootstrap(scores.surface, scores.surface_patch, self.rng, count)
        mi = scores.mi
        rm = None if mi is None or not mi.shape[1] else block_bootstrap(mi, scores.mi_patch, self.rng, count)
        return rs, rm


def paired_z(scorer: StartScorer, reference: np.ndarray, pose: np.ndarray) -> tuple[float, float | None, float]:
    """How much better ``pose`` is than ``reference`` (4x4 each), in SDs of the paired bootstrap difference:
    (surfaces, intensities or None, the two together: each gain in units of its own SD, summed).
    Positive: closer surfaces, higher mutual information."""
    gain = Judge(scorer, surface_weight=1.0).gains(reference, [pose], own_noise=True)[0]
    return gain["z_surface"], gain["z_mi"], gain["z"]


def surface_change_mm(scorer: StartScorer, reference: np.ndarray, pose: np.ndarray) -> float:
    """How much farther apart (mm, mean over the surface points both poses compare) the surfaces lie at ``pose``
    than at ``reference`` (4x4 each, fixed -> moving); negative: closer."""
    surface = scorer.evaluate([reference, pose]).surface
    return float(surface[1].mean() - surface[0].mean())


def _z(gain: np.ndarray) -> float:
    sd = float(gain.std())
    return float(gain.mean() / sd) if sd > 0 else 0.0


class Judge:
    """Paired comparisons of poses on the two scores, in units of their noise (tau_s mm, tau_i nats)."""

    def __init__(self, scorer: StartScorer, surface_weight: float = SURFACE_WEIGHT):
        self.scorer = scorer
        self.tau_s, self.tau_i = 1.0, None
        self.surface_weight = surface_weight

    def calibrate(self, rs: np.ndarray, rm: np.ndarray | None) -> None:
        """Noise scales: the median over candidates of the SD of (candidate - first candidate)."""
        self.tau_s = max(float(np.median((rs[:, 1:] - rs[:, [0]]).std(axis=0))), 1e-6)
        if rm is not None:
            self.tau_i = max(float(np.median((rm[:, 1:] - rm[:, [0]]).std(axis=0))), 1e-9)

    def combined(self, rs: np.ndarray, rm: np.ndarray | None) -> np.ndarray:
        """Higher is better: -weight * surface / tau_s + MI / tau_i, per replicate and pose."""
        value = -self.surface_weight * rs / self.tau_s
        return value if rm is None or self.tau_i is None else value + rm / self.tau_i

    def gains(self, reference: np.ndarray, others: list[np.ndarray], own_noise: bool = False) -> list[dict]:
        """Each pose in ``others`` against ``reference``: z overall, z of each score, share of replicates better.
        ``own_noise``: each score in units of the SD of its own paired difference, not of the calibrated scales."""
        scores = self.scorer.evaluate([reference, *others])
        surface, mi = scores.surface, scores.mi
        rs, rm = self.scorer.replicates(scores)
        out = []
        for index in range(1, len(others) + 1):
            gain_s = -(rs[:, index] - rs[:, 0])
            gain_i = None if rm is None else rm[:, index] - rm[:, 0]
            tau_s, tau_i = self.tau_s, self.tau_i
            if own_noise:
                tau_s = max(float(gain_s.std()), 1e-12)
                tau_i = None if gain_i is None else max(float(gain_i.std()), 1e-12)
            gain = self.surface_weight * gain_s / tau_s + (0.0 if gain_i is None else gain_i / tau_i)
            out.append({
                "z": _z(gain), "z_surface": _z(gain_s), "z_mi": None if gain_i is None else _z(gain_i),
                "confidence": float(np.mean(gain > 0)), "surface_mm": float(surface[index].mean()),
                "mi": None if mi is None else float(mi[index].mean()),
            })  # fmt: skip
        return out


def wide_intensity_z(scorer: StartScorer, reference: np.ndarray, pose: np.ndarray) -> float | None:
    """How much higher the mutual information within ``REFEREE_REGION_MM`` of the fixed segments is at ``pose``
    than at ``reference`` (4x4 each, fixed -> moving), in SDs of its paired bootstrap difference; None without
    intensities. ``scorer``'s surfaces are reused."""
    wide = scorer.widened(REFEREE_REGION_MM)
    if wide.intensity is None:
        return None
    return Judge(wide, surface_weight=0.0).gains(reference, [pose], own_noise=True)[0]["z_mi"]
