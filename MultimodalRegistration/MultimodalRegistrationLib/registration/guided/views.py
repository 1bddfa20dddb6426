"""Where each paired segment is seen whole, for the guidance's scores and centroids (LPS mm, fixed -> moving).

A field of view counts only for a segment it cuts (:func:`..core.views.cut_by`): a whole segment is seen
whole, so a pose that maps it out of the other image is judged as it always was. For a cut one, Dice and
surface distance look only inside the common view, and the centroids are those of the parts both images see
(:func:`seen_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import SimpleITK as sitk

from ...core.images import index_to_physical_matrix
from ...core.transforms import Transform
from ...core.views import common_view, cut_by, fields_of_view
from .guidance import PreparedGuidance
from .surfaces import Volume, apply

MAX_MOMENT_POINTS = 200_000
# The centroids of each of the guided start's ~260 candidate rotations come from this many voxel positions per
# side (an even thinning of the grid moves a centroid by far less than a voxel), so that re-centring them all
# takes about a second.
THIN_POINTS = 1_500
PART_ROUNDS = 6  # the seen parts and their centroids settle within a few rounds (a cut moves them a few mm)


@dataclass
class SegmentViews:
    """The two fields of view of a guided pair of images, their edge distances (mm), and which segments they cut."""

    fixed_fov: sitk.Image
    moving_fov: sitk.Image
    fixed_edge: sitk.Image
    moving_edge: sitk.Image
    fixed_cut: list[bool]  # per pair: the fixed field of view cuts the fixed segment
    moving_cut: list[bool]

    @classmethod
    def of(cls, prepared: PreparedGuidance) -> SegmentViews:
        """The views of ``prepared``'s images, built once per guidance (:func:`..core.views.fields_of_view`)."""
        kept = prepared.__dict__.get("_segment_views")
        if kept is None:
            fixed_fov, fixed_edge = fields_of_view(prepared.fixed_image, prepared.fixed_masks[0])
            moving_fov, moving_edge = fields_of_view(prepared.moving_image, prepared.moving_masks[0])
            kept = cls(fixed_fov, moving_fov, fixed_edge, moving_edge,
                       [cut_by(mask, fixed_edge) for mask in prepared.fixed_masks],
                       [cut_by(mask, moving_edge) for mask in prepared.moving_masks])  # fmt: skip
            prepared.__dict__["_segment_views"] = kept
        return kept

    @cached_property
    def fixed_edge_volume(self) -> Volume:
        """:attr:`fixed_edge` interpolated at LPS points (mm; -1 beyond its grid), read once."""
        return Volume(self.fixed_edge, outside=-1.0)

    @cached_property
    def moving_edge_volume(self) -> Volume:
        return Volume(self.moving_edge, outside=-1.0)

    @property
    def any_cut(self) -> bool:
        return any(self.fixed_cut) or any(self.moving_cut)

    def view(self, index: int, transform: Transform, like: sitk.Image) -> np.ndarray | None:
        """Where pair ``index`` is compared under ``transform`` (boolean z, y, x on ``like``, its fixed mask's grid);
        None: everywhere (neither field of view cuts it)."""
        return common_view(self.fixed_fov, self.moving_fov, transform, like, (self.fixed_cut[index], self.moving_cut[index]))


def mask_points(mask: sitk.Image, max_points: int = MAX_MOMENT_POINTS) -> np.ndarray:
    """LPS mm positions of a mask's voxels (evenly thinned to at most ``max_points``)."""
    indices = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)[:, ::-1].astype(float)  # (i, j, k)
    if len(indices) > max_points:
        indices = indices[:: int(np.ceil(len(indices) / max_points))]
    matrix = index_to_physical_matrix(mask)
    return indices @ matrix[:3, :3].T + matrix[:3, 3]


def segment_points(prepared: PreparedGuidance) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:func:`mask_points` of each fixed and each moving segment, taken once per guidance (the start, its
    re-centred candidates and the centroid fallback each ask)."""
    kept = prepared.__dict__.get("_segment_points")
    if kept is None:
        kept = ([mask_points(mask) for mask in prepared.fixed_masks],
                [mask_points(mask) for mask in prepared.moving_masks])  # fmt: skip
        prepared.__dict__["_segment_points"] = kept
    return kept


def _thinned(points: list[np.ndarray]) -> list[np.ndarray]:
    """Every segment's points thinned by one stride, so that they hold about THIN_POINTS in all."""
    stride = max(1, int(np.ceil(sum(len(p) for p in points) / THIN_POINTS)))
    return [p[::stride] for p in points]


def seen_parts(prepared: PreparedGuidance, rotation: np.ndarray, thin: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The voxel positions (LPS mm) of the fixed and the moving segments that both images see, with the segments'
    centroids brought together at ``rotation`` (3x3, fixed -> moving): a part the other image's field of view
    cuts off is left out, then the centroids are taken again, for PART_ROUNDS rounds. Uncut segments: all.
    ``thin``: from about THIN_POINTS positions per side (for centroids only)."""
    fixed, moving = segment_points(prepared)
    if thin:
        fixed, moving = _thinned(fixed), _thinned(moving)
    fixed_all, moving_all = np.concatenate(fixed), np.concatenate(moving)
    views = SegmentViews.of(prepared) if prepared.fixed_masks else None
    if views is None or not views.any_cut:
        return fixed_all, moving_all
    # a fixed point needs the moving view where the moving segment is cut, and the reverse
    needs_moving = np.concatenate([np.full(len(p), cut) for p, cut in zip(fixed, views.moving_cut)])
    needs_fixed = np.concatenate([np.full(len(p), cut) for p, cut in zip(moving, views.fixed_cut)])
    moving_edge, fixed_edge = views.moving_edge_volume, views.fixed_edge_volume
    keep_fixed, keep_moving = np.ones(len(fixed_all), bool), np.ones(len(moving_all), bool)
    for _ in range(PART_ROUNDS):
        pose = np.eye(4)
        pose[:3, :3] = rotation
        pose[:3, 3] = moving_all[keep_moving].mean(axis=0) - rotation @ fixed_all[keep_fixed].mean(axis=0)
        inverse = np.linalg.inv(pose)
        seen_fixed = ~needs_moving | (moving_edge(apply(pose, fixed_all)) > 0)
        seen_moving = ~needs_fixed | (fixed_edge(apply(inverse, moving_all)) > 0)
        if not (seen_fixed.any() and seen_moving.any()):
            break  # nothing both see at this rotation: the last parts stand
        if np.array_equal(seen_fixed, keep_fixed) and np.array_equal(seen_moving, keep_moving):
            break
        keep_fixed, keep_moving = seen_fixed, seen_moving
    return fixed_all[keep_fixed], moving_all[keep_moving]
