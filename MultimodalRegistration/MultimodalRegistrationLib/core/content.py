"""Whether an image holds enough to register: a label, mask or points file given in place of an image, or a blank
slide with a few specks, holds a handful of voxels above its lowest value (2D and 3D, one rule)."""

from __future__ import annotations

# An image with fewer voxels above its lowest value, and under this share of its voxels, holds nothing to register
# (a few labelled points); a tiny image that is all content is judged by its size instead (grid_refusal, QA).
MIN_CONTENT_VOXELS = 100
MIN_CONTENT_SHARE = 0.01


def too_little_content(content: int, voxels: int) -> bool:
    """Whether ``content`` voxels above the lowest value, of ``voxels`` in all, are too few to register."""
    return content < MIN_CONTENT_VOXELS and content < MIN_CONTENT_SHARE * voxels
