"""Confidence without ground truth: re-run the registration from perturbed starts and see if it comes back.

Each restart starts from the transform under test (for a nonlinear one, from its linear part)
moved by a rigid perturbation in fixed space (default 5 degrees about a random axis through the
fixed foreground's centre and a 5 mm shift in a random direction), and runs the same preset.
A registration in a sound optimum returns to the same answer; one trapped in a wrong optimum, or not
converged, drifts. The spread is measured in mm at points spread over the fixed image's foreground.

This module holds the perturbations, the spread and the verdict; :mod:`..process.stability` runs the
restarts, each in its own worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..core.images import index_to_physical_matrix, sample_grid_points
from ..core.metric import shrink_to_spacing
from ..core.records import Record
from ..core.transforms import Transform, rigid_transform
from ..registration.pose.centres import centre_alignment
from ..registration.working_scale import working_scale

FOREGROUND_SPACING_MM = 4.0
MAX_POINTS = 2000
NOT_MEASURED = "stability not measured"  # how the QA's warning begins when no restart finished


def foreground_points(image: sitk.Image, max_points: int = MAX_POINTS) -> np.ndarray:
    """Up to ``max_points`` points (LPS mm) spread evenly over the image's foreground (Otsu at ~4 mm, or as finely
    for small anatomy as its registration's working scale makes it; :mod:`..registration.working_scale`).

    Falls back to a grid over the whole image when no foreground is found. Deterministic.
    """
    spacing = FOREGROUND_SPACING_MM / working_scale(image, image)
    small = sitk.Cast(shrink_to_spacing(image, spacing), sitk.sitkFloat32)
    foreground = sitk.GetArrayFromImage(sitk.OtsuThreshold(small, 0, 1, 128)) != 0
    index = np.argwhere(foreground)[:, ::-1].astype(float)  # (x, y, z) voxel indices
    if len(index) == 0:
        return sample_grid_points(image, per_axis=12)
    if len(index) > max_points:
        index = index[np.linspace(0, len(index) - 1, max_points).round().astype(int)]
    matrix = index_to_physical_matrix(small)
    return index @ matrix[:3, :3].T + matrix[:3, 3]


def perturbations(
    count: int, center_lps: np.ndarray, shift_mm: float, rotation_deg: float, seed: int = 0
) -> list[Transform]:
    """``count`` rigid perturbations (fixed space, LPS): ``rotation_deg`` about a random axis through
    ``center_lps`` and a ``shift_mm`` shift in a random direction. Deterministic for a ``seed``."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        axis = rng.normal(size=3)
        direction = rng.normal(size=3)
        direction *= shift_mm / np.linalg.norm(direction)
        result.append(rigid_transform(rotation_deg, axis, direction, center=center_lps))
    return result


def infer_preset(transform: Transform) -> str:
    """The preset that makes a transform like this one: rigid, affine or deformable."""
    if not transform.is_linear:
        return "deformable"
    singular = np.linalg.svd(transform.matrix[:3, :3], compute_uv=False)
    return "rigid" if np.allclose(singular, 1.0, atol=1e-3) else "affine"


def restart_pose(transform: Transform, fixed: sitk.Image, moving: sitk.Image) -> Transform:
    """Where restarts begin: the transform itself if linear; for a chain, its linear parts composed in
    order without the nonlinear ones (elastix: the affine stages under the B-spline; ANTs: the affine
    around SyN); with no linear part at all, the image centres aligned."""
    if transform.is_linear:
        return transform
    linear = [part for part in transform.components() if part.is_linear]
    if linear:
        return Transform.chain(linear)
    return centre_alignment(fixed, moving, None, "geometry")


@dataclass
class StabilityRun(Record):
    """One restart: how far its result lies from the transform under test, at the foreground points (mm)."""

    index: int
    seed: int
    seconds: float
    distance_p95_mm: float | None
    distance_max_mm: float | None
    error: str | None = None

    def to_dict(self) -> dict:
        def rounded(value):
            return None if value is None else round(value, 4)

        return {
            "index": self.index,
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
            "distance_p95_mm": rounded(self.distance_p95_mm),
            "distance_max_mm": rounded(self.distance_max_mm),
            "error": self.error,
        }


@dataclass
class StabilityResult(Record):
    """How far the restarts and the transform under test disagree (mm), and the verdict."""

    engine: str
    preset: str
    restarts: int
    shift_mm: float
    rotation_deg: float
    threshold_mm: float
    spread_p95_mm: float  # per point: the largest distance between any two results; then the 95th percentile
    spread_max_mm: float
    unstable: bool
    runs: list[StabilityRun]
    points: int
    parallel: int
    threads_per_run: int
    wall_seconds: float
    warnings: list[str] = field(default_factory=list)
    completed: int | None = None  # restarts that finished (None in records older than it: all of them)

    @property
    def finished(self) -> int:
        """How many restarts finished (the spread is theirs)."""
        return self.restarts if self.completed is None else self.completed

    @property
    def counted(self) -> str:
        """ "k of K": the restarts that finished of those asked for."""
        return f"{self.finished} of {self.restarts}"

    @property
    def verdict(self) -> str:
        """ "unstable" when the restarts that finished disagree (that stands, however few they are); "stable" only
        when enough finished (:func:`enough_restarts`); else "inconclusive"."""
        if self.unstable:
            return "unstable"
        return "stable" if enough_restarts(self.finished, self.restarts) else "inconclusive"

    def to_dict(self) -> dict:
        return {
            "engine": self.engine,
            "preset": self.preset,
            "restarts": self.restarts,
            "completed": self.finished,
            "perturbation": {"shift_mm": self.shift_mm, "rotation_deg": self.rotation_deg},
            "threshold_mm": self.threshold_mm,
            "spread_p95_mm": round(self.spread_p95_mm, 4),
            "spread_max_mm": round(self.spread_max_mm, 4),
            "unstable": self.unstable,
            "verdict": self.verdict,
            "points": self.points,
            "parallel": self.parallel,
            "threads_per_run": self.threads_per_run,
            "wall_seconds": round(self.wall_seconds, 2),
            "runs": [run.to_dict() for run in self.runs],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, record: dict, strict: bool = False) -> StabilityResult:
        perturbation = record.get("perturbation") or {}
        flat = {key: value for key, value in record.items() if key not in ("perturbation", "verdict")}
        return super().from_dict(flat | {"shift_mm": perturbation.get("shift_mm"),
                                         "rotation_deg": perturbation.get("rotation_deg")})  # fmt: skip


def enough_restarts(finished: int, asked: int) -> bool:
    """Whether ``finished`` of ``asked`` restarts can call a result stable: at least 2 (or all, when fewer were
    asked) and at least half of them."""
    return finished >= min(2, asked) and 2 * finished >= asked


def spread(positions: list[np.ndarray]) -> np.ndarray:
    """Per point, the largest distance (mm) between any two of the (N, 3) position arrays."""
    largest = np.zeros(len(positions[0]))
    for i in range(len(positions)):
        for j in range(i + 1, len(positions)):
            largest = np.maximum(largest, np.linalg.norm(positions[i] - positions[j], axis=1))
    return largest
