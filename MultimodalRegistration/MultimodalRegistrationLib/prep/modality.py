"""What each image is (CT or not) and, for CT, its HU offset: judged once, on the whole input.

A crop inside the body has no air, and block averaging removes a CT's negative noise: judged on the crop
or the downsampled copy, a CT in HU was taken for MR (N4 ran on it, no metal was excluded) or read as
stored HU + 1024 (every CT threshold 1024 HU too high). So :func:`judge` looks at the full-resolution
input (a strided sample of its voxels, taken in memory or while the file streams) before any crop or
downsampling, and every later step uses its answer.
"""

from __future__ import annotations

import numpy as np

from .masks import ct_share, hounsfield_offset, resolve_modality, sample_stride
from .summary import ImageModality

__all__ = ["judge", "sample_of", "sample_stride"]


def sample_of(parts: list) -> np.ndarray:
    """One sample array from the parts collected while a file streamed (:func:`.downsample.read_downsampled`)."""
    return np.concatenate([np.ravel(part) for part in parts]) if parts else np.zeros(0, np.float32)


def judge(sample: np.ndarray, option: str) -> ImageModality:
    """The image's modality ("ct" or "mr") from ``option`` (auto, ct, mr) and its full-resolution ``sample``,
    with the share of voxels at air on CT and, for CT, its HU offset."""
    modality = resolve_modality(sample, option)
    share = round(ct_share(sample), 4) if sample.size else 0.0
    offset = float(hounsfield_offset(sample)) if modality == "ct" and sample.size else None
    return ImageModality(modality, option != "auto", share, offset)


def modality_hint(role: str, modality: str) -> str:
    """How to say what an image is, e.g. "--modality-fixed ct (in the RegistrationPrep panel: 'Fixed image is: ct')"."""
    return f"--modality-{role} {modality} (in the RegistrationPrep panel: '{role.title()} image is: {modality}')"


def not_ct_hint(role: str) -> str:
    """How to say an image guessed to be CT is not."""
    return modality_hint(role, "mr")
