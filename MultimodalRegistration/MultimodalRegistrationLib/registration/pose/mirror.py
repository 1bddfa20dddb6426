"""Mirror images of poses, naming the image axis a wrong header most likely flipped, and judging
whether a mirrored pose beats every rotation by more than the metric's noise.

A mirrored (improper) pose is a reflection times a rotation. When one still explains the images
clearly better than every rotation, an image header is probably flipped along one axis. "Clearly"
is judged against this pair's own noise: the standard error of the difference between the two
poses' mutual information over the polish samples (from each sample's influence on the joint
histogram), scaled up for a pair with little information. A mirrored pose that wins by less is
reported in a warning, and the search continues with the best rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ...core.errors import InputError
from ...core.metric import pointwise_information
from ...core.rotations import rigid_matrices, rotation_angle_deg
from .scorer import PoseScorer

# A mirrored pose must beat every rotation by this fraction of the mutual information (at the
# polish level) to stop the run. A head is nearly symmetric, so the difference is small: over 40
# random poses of the phantom, an unflipped pair scores -7% to -3.7%, a left-right flipped one
# +2% to +7.5%; the perfectly symmetric MNI template, where nothing can tell, -1.1% to +0.2%.
# A mirrored pose winning by more than this or by a standard error, but not by a clear margin
# (below), gets a warning.
MIRROR_MARGIN = 0.015
MIRROR_MIN_NATS = 0.01  # and by this much: with hardly any information, nothing is clearly better
# And by this many standard errors of the difference. The standard error is 0.005 nats on the
# phantom (15000 samples; over 12 random poses and two seeds, a flipped one wins by 4 to 11 of them,
# once by 1.8, below MIRROR_MARGIN too) and 0.006 to 0.01 on small ultrasound-like fields of view
# (3500 samples), where structures one modality shows and the other does not can make the mirror
# image win by 2 to 4 of them.
NOISE_Z = 3.0
# Below this best mutual information (nats, at the polish level) a pair counts as low-information
# and the margin grows in proportion: twice the margin at half of it. A CT-MR head scores 0.7-0.8,
# the MR-ultrasound pair issue 13 saw refused 0.36, the generated ultrasound-like ones 0.22-0.30.
# The standard error covers the sampling of this pair's voxels, not what varies between scans of a
# low-information pair (speckle, shadowing, a structure seen in one modality only): those shift the
# metric by roughly fixed amounts, a larger share of a small mutual information.
INFORMATIVE_MI = 0.6
AXIS_NAMES = ("left-right", "anterior-posterior", "superior-inferior")


def flipped_axis(mirrored: np.ndarray, moving: sitk.Image) -> int:
    """The moving image axis (0, 1, 2) most likely flipped by a wrong header, given the best
    mirrored pose (4x4, fixed -> moving): the one whose flip leaves the smallest rotation between
    the images, since scans are mostly taken in similar orientations."""
    direction = np.asarray(moving.GetDirection()).reshape(3, 3)
    flips = [np.eye(3) - 2 * np.outer(direction[:, axis], direction[:, axis]) for axis in range(3)]
    return int(np.argmin([rotation_angle_deg(flip @ mirrored[:3, :3]) for flip in flips]))


def axis_name(image: sitk.Image, axis: int) -> str:
    """Anatomical name of an image axis, from its direction in LPS."""
    column = np.abs(np.asarray(image.GetDirection()).reshape(3, 3)[:, axis])
    return AXIS_NAMES[int(np.argmax(column))]


def mirror_twins(pose: np.ndarray, fixed: sitk.Image, center: np.ndarray) -> np.ndarray:
    """A 4x4 pose's mirror images: reflected (first, in fixed space) through ``center`` across each fixed image
    axis, and across each LPS axis the grid is oblique to (three to six). Proper poses give mirrored ones and
    back; where the fixed anatomy is symmetric about such a plane (a head's midline, any plane of a thin slab), a
    twin fits as well as the pose."""
    own = np.asarray(fixed.GetDirection()).reshape(3, 3).T
    # And across the patient's axes (LPS), when the grid is oblique to them: a head's midline is the patient's, not
    # the grid's (an oblique T1 against a symmetric MNI box had been refused as mirrored on 2 of 4 seeds).
    axes = list(own) + [axis for axis in np.eye(3) if np.abs(own @ axis).max() < 0.999]
    mirrors = np.stack([np.eye(3) - 2 * np.outer(axis, axis) for axis in axes])
    return pose @ rigid_matrices(mirrors, center - mirrors @ center)


def _sample_influence(scorer: PoseScorer, pose: np.ndarray) -> tuple[np.ndarray, float]:
    """Each polish sample's influence on the mutual information of ``pose`` (4x4, as ``scorer``
    takes it), and that mutual information: the same joint histogram as :class:`PoseScorer` (each
    moving value split linearly between its two nearest bins). The influence of a sample is its
    pointwise mutual information log(p(f, m) / (p(f) p(m))) minus the mean, which is the MI."""
    bins = scorer.bins
    to_index = (scorer.moving.to_index @ pose).astype(np.float32)
    moving = scorer.moving(to_index[:3, :3] @ scorer.points.T + to_index[:3, 3:])
    low = np.minimum(moving.astype(np.int32), bins - 2)
    weight = (moving - low).astype(float)
    cell = scorer.fixed_bins * bins + low
    joint = np.bincount(cell, 1.0 - weight, bins * bins) + np.bincount(cell + 1, weight, bins * bins)
    pointwise, mutual = pointwise_information(joint.reshape(bins, bins) / len(cell))
    pointwise, mutual = pointwise.ravel(), float(mutual)
    return (1.0 - weight) * pointwise[cell] + weight * pointwise[cell + 1] - mutual, mutual


def difference_standard_error(scorer: PoseScorer, pose_a: np.ndarray, pose_b: np.ndarray) -> float:
    """Standard error (nats) of MI(pose_a) - MI(pose_b) on ``scorer``'s samples, both poses seeing
    the same samples: the spread of the samples' influences on the difference over sqrt(samples)
    (the delta method; a bootstrap of the samples gives the same within 10%). Deterministic given
    the scorer's seed, and a few milliseconds."""
    influence_a, _ = _sample_influence(scorer, pose_a)
    influence_b, _ = _sample_influence(scorer, pose_b)
    difference = influence_a - influence_b
    return float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else float("inf")


@dataclass(frozen=True)
class MirrorMargin:
    """The best mirrored pose's mutual information against the best rotation's (nats, polish level),
    the standard error of their difference, and the margin a mirror verdict needs."""

    mirrored_metric: float
    metric: float
    noise: float  # standard error of mirrored_metric - metric (nats)

    @property
    def gap(self) -> float:
        return self.mirrored_metric - self.metric

    @property
    def information_factor(self) -> float:
        """How much the margin grows for a low-information pair: INFORMATIVE_MI / metric, at least 1."""
        return max(1.0, INFORMATIVE_MI / max(self.metric, 1e-6))

    @property
    def floor(self) -> float:
        """The least gap that counts at all (nats): MIRROR_MARGIN of the metric and MIRROR_MIN_NATS."""
        return max(MIRROR_MARGIN * self.metric, MIRROR_MIN_NATS)

    @property
    def needed(self) -> float:
        """The margin (nats) a mirror verdict needs: NOISE_Z standard errors, and the floor, times
        the information factor."""
        return self.information_factor * max(NOISE_Z * self.noise, self.floor)

    @property
    def clear(self) -> bool:
        """The mirrored pose wins by a clear margin: the images look mirrored."""
        return self.gap > self.needed

    @property
    def doubtful(self) -> bool:
        """The mirrored pose wins, not clearly, but by more than one standard error or by the floor
        (what was refused before the noise counted): warn and go on. A symmetric head, where the
        mirror image wins by chance, stays below both."""
        return not self.clear and self.gap > min(self.noise, self.floor)

    def summary(self) -> dict:
        """JSON-ready numbers for provenance."""
        return {
            "gap": round(self.gap, 6),
            "noise": round(self.noise, 6),
            "needed": round(self.needed, 6),
            "verdict": "mirrored" if self.clear else "doubtful" if self.doubtful else "proper",
        }


def mirror_margin(
    scorer: PoseScorer, mirrored: np.ndarray, proper: np.ndarray, mirrored_metric: float, metric: float
) -> MirrorMargin:
    """The margin of the best mirrored pose over the best proper one (4x4 poses as ``scorer`` takes
    them, with the mutual information ``scorer`` gave them), with its noise on ``scorer``'s samples."""
    return MirrorMargin(mirrored_metric, metric, difference_standard_error(scorer, mirrored, proper))


def _noise_words(margin: MirrorMargin) -> str:
    """How the needed margin came about, e.g. "±0.052: 3 standard errors of 0.007, times 2.4 for a
    low-information pair"."""
    if NOISE_Z * margin.noise >= margin.floor:
        words = f"±{margin.needed:.3f}: {NOISE_Z:g} standard errors of {margin.noise:.3f}"
    else:
        words = f"±{margin.needed:.3f}: the least margin that counts, {margin.floor:.3f} (standard error {margin.noise:.3f})"
    if margin.information_factor > 1.0:
        words += f", times {margin.information_factor:.1f} for a low-information pair"
    return words


def mirror_verdict(margin: MirrorMargin, mirrored: np.ndarray, moving: sitk.Image) -> list[str]:
    """Raise :class:`InputError` when the best mirrored pose (4x4, fixed -> moving) beats the best
    rotation by a clear ``margin``; return a warning when it wins within the noise, else nothing."""
    axis = flipped_axis(mirrored, moving)
    where = f"{axis_name(moving, axis)} axis (image axis {axis})"
    if margin.clear:
        raise InputError(
            f"the moving image looks mirrored compared with the fixed image, most likely along its {where}: "
            "a mirrored pose matches the images clearly better than any rotation (mutual information "
            f"{margin.mirrored_metric:.3f} against {margin.metric:.3f}: a margin of {margin.gap:.3f}, beyond this "
            f"pair's metric noise of {_noise_words(margin)}). "
            "Check the image orientation (direction and axis signs) in both image headers; "
            "if one image really is a mirror image of the other, flip it first"
        )
    if not margin.doubtful:
        return []
    warning = (
        f"a mirrored pose scores {margin.mirrored_metric:.3f} against {margin.metric:.3f} for the best rotation "
        f"(mutual information), within this pair's metric noise ({_noise_words(margin)}): continuing with "
        "the rotation; if the result looks mirrored, check the image headers (direction and axis signs; "
        f"a flip would most likely be along the moving image's {where})"
    )
    return [warning]
