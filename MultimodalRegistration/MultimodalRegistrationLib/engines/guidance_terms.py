"""The guidance an engine adds to its image metric: extra image channels and corresponding points.

Built by :mod:`..registration.guidance` from segmentations and landmarks; each engine turns it into
its own multi-metric form (elastix: several fixed and moving images and
CorrespondingPointsEuclideanDistanceMetric; ANTs: several metric terms per stage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError


@dataclass
class Channel:
    """One pair of guidance images compared by mean squares, e.g. clamped signed distance maps of a
    segment (fixed on the fixed image's grid, moving on the moving image's grid, LPS mm)."""

    name: str
    fixed: sitk.Image
    moving: sitk.Image
    weight: float  # relative to the image term's weight of 1


@dataclass
class EngineGuidance:
    """Everything that guides one engine run besides the intensities.

    ``intensity_weight`` 0 drops the image term (``--metric segments``): then only the channels and
    the points drive the run. Points are corresponding landmarks in LPS mm: the transform should map
    each fixed point onto its moving point.
    """

    channels: list[Channel] = field(default_factory=list)
    fixed_points_lps: np.ndarray | None = None  # (N, 3)
    moving_points_lps: np.ndarray | None = None  # (N, 3)
    points_weight: float = 0.0
    intensity_weight: float = 1.0

    @property
    def has_points(self) -> bool:
        return self.fixed_points_lps is not None and len(self.fixed_points_lps) > 0 and self.points_weight > 0

    @property
    def active_channels(self) -> list[Channel]:
        """The channels that take part: a weight of 0 leaves a channel out."""
        return [c for c in self.channels if c.weight > 0]

    @property
    def uses_intensity(self) -> bool:
        return self.intensity_weight > 0

    def check(self) -> None:
        """Refuse guidance an engine cannot run: negative weights, unpaired points, or nothing to drive the run."""
        weights = [self.intensity_weight, self.points_weight] + [c.weight for c in self.channels]
        if any(not np.isfinite(w) or w < 0 for w in weights):
            raise InputError(f"guidance weights must be 0 or more, got {weights}: fix the weights")
        if self.fixed_points_lps is not None or self.moving_points_lps is not None:
            fixed = np.asarray(self.fixed_points_lps if self.fixed_points_lps is not None else [], float)
            moving = np.asarray(self.moving_points_lps if self.moving_points_lps is not None else [], float)
            if fixed.shape != moving.shape or (fixed.size and fixed.shape[1:] != (3,)):
                raise InputError(
                    f"guidance points do not pair up: {fixed.shape} fixed and {moving.shape} moving (N, 3) LPS points: "
                    "give one moving point per fixed point"
                )
        if not self.uses_intensity and not self.has_points and not self.active_channels:
            raise InputError(
                "the intensity weight is 0 and there is no segment channel or point with a weight above 0: "
                "nothing would drive the registration; give segments or landmarks, or an intensity weight above 0"
            )

    def describe(self) -> dict:
        """What the engine was given, for provenance (weights, channel names, point count)."""
        return {
            "intensity_weight": self.intensity_weight,
            "channels": [{"name": c.name, "weight": c.weight} for c in self.channels],
            "points": len(self.fixed_points_lps) if self.has_points else 0,
            "points_weight": self.points_weight if self.has_points else 0.0,
        }
