"""Prototype (a): a guided start that keeps the headers' orientation unless the guidance and the intensities
together show, beyond their noise, that a nearby rotation is better.

Algorithm (poses map fixed to moving points, LPS mm):

1. Prior: the rotation of the initial transform (identity: the headers). Translation: the gland centroids
   brought together (every candidate turns about the fixed centroid and lands on the moving centroid).
2. Candidates: the prior, and rotations Delta * prior with Delta's rotation vector on a cubic lattice
   (``STEP_DEG``) inside a ball of ``MAX_DEG`` about the prior. Today's four principal-axes candidates are
   scored too, for the record, but are not eligible when they lie outside the ball (a symmetric organ's
   axes cannot tell front from back; the headers can).
3. Scores of each candidate, each with its own noise:
   * guidance S: mean distance (mm, clamped at 20) from the fixed segment's surface points, mapped, to the
     moving segment's surface (the moving distance map); fixed surface points within 3 mm of the edge of
     the fixed data (a TRUS fan, the box) are left out: there the segment stops because the image does;
   * intensities I: mutual information (32 bins) of fixed samples in the gland and 10 mm around it (inside
     the fixed data) against the moving image.
   Noise: block bootstrap (10 mm patches of surface points or samples, ``BOOTSTRAP`` replicates) of both
   means, paired across candidates. Noise scales tau_S, tau_I: the median over candidates of the bootstrap
   SD of (candidate - prior).
4. Combined score C = -S / tau_S + I / tau_I (each term in units of its own noise). In each bootstrap
   replicate the best candidate wins; a candidate's confidence is its share of wins. The proposed rotation
   is the mean rotation vector of the replicate winners (bagging: the argmax of a flat, noisy landscape
   jumps; its mean does not).
5. The proposal replaces the prior only when better beyond the noise: its paired bootstrap difference
   C(proposal) - C(prior) must exceed ``WIN_Z`` SDs, and neither S nor I may be worse than the prior's by
   more than ``VETO_Z`` SDs of its own (the guidance and the intensities must not disagree).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

import surfaces as S
from MultimodalRegistrationLib.core.rotations import axis_angle_matrices, rotation_angle_deg

MAX_DEG = 30.0
STEP_DEG = 7.5
BOOTSTRAP = 300
WIN_Z = 2.0
VETO_Z = 1.0
REGION_MM = 10.0
CLAMP_MM = 20.0


def lattice(max_deg: float = MAX_DEG, step_deg: float = STEP_DEG) -> np.ndarray:
    """Rotation vectors (degrees) on a cubic lattice inside a ball of ``max_deg``; the zero vector first."""
    r = np.arange(-max_deg, max_deg + 1e-9, step_deg)
    grid = np.array([(a, b, c) for a in r for b in r for c in r if a * a + b * b + c * c <= max_deg**2 + 1e-6])
    order = np.argsort(np.linalg.norm(grid, axis=1), kind="stable")
    return grid[order]


def rotation_of(vector_deg: np.ndarray) -> np.ndarray:
    return axis_angle_matrices(np.deg2rad(np.asarray(vector_deg, float))[None])[0]


def pose_about(rotation: np.ndarray, fixed_centre: np.ndarray, moving_centre: np.ndarray) -> np.ndarray:
    """x_moving = rotation (x_fixed - fixed_centre) + moving_centre, as 4x4."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = moving_centre - rotation @ fixed_centre
    return matrix


def axes_candidates(fixed: S.Surface, moving: S.Surface, fixed_mask, moving_mask) -> list[tuple[str, np.ndarray]]:
    """Today's four principal-axes rotations (registration/guided_start.py), for the record."""
    def moments(mask):
        points = S.mask_voxels(mask)
        values, vectors = np.linalg.eigh(np.cov((points - points.mean(axis=0)).T))
        return vectors[:, ::-1]

    fa, ma = moments(fixed_mask), moments(moving_mask)
    out = []
    for signs in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        flip = np.diag([signs[0], signs[1], 1.0])
        rotation = ma @ flip @ fa.T
        if np.linalg.det(rotation) < 0:
            rotation = ma @ flip @ np.diag([1.0, 1.0, -1.0]) @ fa.T
        out.append((f"segment axes {signs[0]:+d}{signs[1]:+d}", rotation))
    return out


@dataclass
class Candidate:
    name: str
    pose: np.ndarray
    from_prior_deg: float
    eligible: bool
    surface_mm: float = np.nan
    mi: float = np.nan
    z_vs_prior: float = np.nan
    confidence: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "from_prior_deg": round(self.from_prior_deg, 1), "eligible": self.eligible,
                "surface_mm": round(float(self.surface_mm), 3), "mi": round(float(self.mi), 4),
                "z_vs_prior": round(float(self.z_vs_prior), 2), "confidence": round(self.confidence, 3),
                "reason": self.reason}  # fmt: skip


@dataclass
class StartResult:
    pose: np.ndarray
    name: str
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    noise: dict = field(default_factory=dict)

    def summary(self, top: int = 8) -> list[dict]:
        """The prior, the chosen, the axes candidates and the ``top`` most confident lattice candidates."""
        keep = [c for c in self.candidates if c.name in ("prior", "proposal") or c.name.startswith("segment axes")]
        ranked = sorted((c for c in self.candidates if c not in keep), key=lambda c: -c.confidence)[:top]
        return [c.to_dict() for c in keep + ranked]


class Scorer:
    """The guidance and intensity residuals of poses, and their bootstrap replicates (paired)."""

    def __init__(self, fixed, moving, fixed_mask, moving_mask, seed: int = 0, region_mm: float | None = REGION_MM):
        self.fixed_surface = S.Surface.of(fixed_mask, fixed)
        self.moving_surface = S.Surface.of(moving_mask, moving)
        region = S.fov_mask(fixed)
        if region_mm is not None:
            near = sitk.SignedMaurerDistanceMap(sitk.Cast(fixed_mask > 0, sitk.sitkUInt8), insideIsPositive=False,
                                                squaredDistance=False, useImageSpacing=True) <= region_mm  # fmt: skip
            region = sitk.And(sitk.Cast(near, sitk.sitkUInt8), region)
        self.intensity = S.IntensityScore(fixed, moving, region, seed=seed)
        self.surface_patch = S.patches(self.fixed_surface.points)
        self.rng = np.random.default_rng(seed)

    def surface(self, pose: np.ndarray) -> np.ndarray:
        value = np.abs(self.moving_surface.distance(S.apply(pose, self.fixed_surface.points)))
        return np.where(np.isnan(value), CLAMP_MM, np.minimum(value, CLAMP_MM))

    def intensity_values(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pointwise, seen = self.intensity.influences(pose)
        full = np.zeros(len(seen))
        full[seen] = pointwise
        return full, seen

    def evaluate(self, poses: list[np.ndarray]):
        """Per pose: surface residuals (P, Ns); pointwise MI (P, Nm) on the samples every pose maps inside."""
        surface = np.stack([self.surface(p) for p in poses])
        values, seen = zip(*(self.intensity_values(p) for p in poses))
        common = np.logical_and.reduce(seen)
        return surface, np.stack(values)[:, common], self.intensity.patch[common]

    def replicates(self, surface, mi, mi_patch, count=BOOTSTRAP):
        rs = S.block_bootstrap(list(surface), self.surface_patch, self.rng, count)
        rm = S.block_bootstrap(list(mi), mi_patch, self.rng, count)
        return rs, rm


def prior_start(fixed, moving, fixed_mask, moving_mask, prior_rotation: np.ndarray | None = None, seed: int = 0,
                max_deg: float = MAX_DEG, step_deg: float = STEP_DEG, region_mm: float | None = REGION_MM,
                weights=(1.0, 1.0)) -> StartResult:  # fmt: skip
    """``weights`` (surface, intensities): 1 or 0, to switch a term off (for the ablations)."""
    prior_rotation = np.eye(3) if prior_rotation is None else np.asarray(prior_rotation, float)
    scorer = Scorer(fixed, moving, fixed_mask, moving_mask, seed, region_mm)
    cf, cm = scorer.fixed_surface.centroid, scorer.moving_surface.centroid
    vectors = lattice(max_deg, step_deg)
    candidates = [Candidate("prior" if not v.any() else f"rotation {np.round(v, 1).tolist()}",
                            pose_about(rotation_of(v) @ prior_rotation, cf, cm), float(np.linalg.norm(v)), True)
                  for v in vectors]  # fmt: skip
    for name, rotation in axes_candidates(scorer.fixed_surface, scorer.moving_surface, fixed_mask, moving_mask):
        angle = float(rotation_angle_deg(rotation @ prior_rotation.T))
        candidates.append(Candidate(name, pose_about(rotation, cf, cm), angle, angle <= max_deg))
    surface, mi, mi_patch = scorer.evaluate([c.pose for c in candidates])
    rs, rm = scorer.replicates(surface, mi, mi_patch)
    tau_s = float(np.median((rs[:, 1:] - rs[:, [0]]).std(axis=0))) / weights[0] if weights[0] else np.inf
    tau_i = float(np.median((rm[:, 1:] - rm[:, [0]]).std(axis=0))) / weights[1] if weights[1] else np.inf
    combined = -rs / tau_s + rm / tau_i  # (replicates, candidates)
    eligible = np.array([c.eligible for c in candidates])
    winners = np.argmax(np.where(eligible, combined, -np.inf), axis=1)
    wins = np.bincount(winners, minlength=len(candidates)) / len(winners)
    point = -surface.mean(axis=1) / tau_s + mi.mean(axis=1) / tau_i
    difference = combined - combined[:, [0]]
    for index, candidate in enumerate(candidates):
        candidate.surface_mm = float(surface[index].mean())
        candidate.mi = float(mi[index].mean())
        sd = float(difference[:, index].std())
        candidate.z_vs_prior = float((point[index] - point[0]) / sd) if sd > 0 else 0.0
        candidate.confidence = float(wins[index])
        if not candidate.eligible:
            candidate.reason = f"not eligible: {candidate.from_prior_deg:.0f} degrees from the headers' orientation"

    # The bagged proposal: the mean rotation vector of the replicate winners (lattice candidates only; an
    # eligible axes candidate that wins stands as itself).
    lattice_count = len(vectors)
    from_lattice = winners[winners < lattice_count]
    proposal_vector = vectors[from_lattice].mean(axis=0) if len(from_lattice) else np.zeros(3)
    proposal = Candidate("proposal", pose_about(rotation_of(proposal_vector) @ prior_rotation, cf, cm),
                         float(np.linalg.norm(proposal_vector)), True)  # fmt: skip
    ps, pm, ppatch = scorer.evaluate([candidates[0].pose, proposal.pose])
    prs, prm = scorer.replicates(ps, pm, ppatch)
    gain_s = -(prs[:, 1] - prs[:, 0])  # mm better (positive) than the prior
    gain_i = prm[:, 1] - prm[:, 0]
    gain = gain_s / tau_s + gain_i / tau_i
    z = float(gain.mean() / gain.std()) if gain.std() > 0 else 0.0
    z_s = float(gain_s.mean() / gain_s.std()) if gain_s.std() > 0 and weights[0] else 0.0
    z_i = float(gain_i.mean() / gain_i.std()) if gain_i.std() > 0 and weights[1] else 0.0
    proposal.surface_mm, proposal.mi, proposal.z_vs_prior = float(ps[1].mean()), float(pm[1].mean()), z
    proposal.confidence = float(np.mean(gain > 0))
    noise = {"tau_surface_mm": round(tau_s, 4), "tau_mi": round(tau_i, 5), "z": round(z, 2), "z_surface": round(z_s, 2),
             "z_mi": round(z_i, 2), "proposal_deg": round(proposal.from_prior_deg, 1)}  # fmt: skip
    candidates.append(proposal)
    if proposal.from_prior_deg < 1.0:
        reason = "the guidance and the intensities do not point away from the headers' orientation"
        chosen = candidates[0]
    elif z < WIN_Z:
        reason = f"the proposal {proposal.from_prior_deg:.0f} degrees away is better by only {z:.1f} SD (< {WIN_Z})"
        chosen = candidates[0]
    elif z_s < -VETO_Z or z_i < -VETO_Z:
        which = "surface distance" if z_s < -VETO_Z else "mutual information"
        reason = f"the proposal is better overall ({z:.1f} SD) but its {which} is worse ({min(z_s, z_i):.1f} SD)"
        chosen = candidates[0]
    else:
        reason = (f"the proposal {proposal.from_prior_deg:.0f} degrees from the headers is better by {z:.1f} SD "
                  f"(surface {z_s:+.1f}, intensities {z_i:+.1f}); confidence {proposal.confidence:.2f}")  # fmt: skip
        chosen = proposal
    chosen.reason = "chosen: " + reason
    if chosen is not candidates[0]:
        candidates[0].reason = "the prior: " + reason
    return StartResult(chosen.pose, chosen.name, reason, candidates, noise)
