"""What an engine's sampler needs from the fixed image, read from a preset before any engine runs.

Each engine's recipe module (see :mod:`.registry`) states its own limits; the registration layer
asks here, whichever engine runs (``registration/masks``). Lengths in mm, volumes in mm³.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .presets import Preset
from .registry import engine_spec


@dataclass(frozen=True)
class StageSampling:
    """How one preset stage samples the fixed image at its coarsest level."""

    label: str  # for messages, e.g. "elastix rigid"
    voxel_mm: np.ndarray  # the coarsest level's voxel, per fixed image axis (mm)
    random_box: bool  # random samplers that draw within the mask's bounding box (elastix's)
    tries_per_sample: int  # a random box sampler gives up after this many tries per sample it needs
    samples: int  # samples drawn per draw (elastix NumberOfSpatialSamples, the smallest given); 0: a share
    draws: int  # how often the samples are drawn anew in the run
    fraction: float  # share of the coarse voxels sampled (ANTs sampling_percentage; voxel samplers 1)
    valid_ratio: float  # the share of samples that must map inside the moving image; 0: any one will do

    def expected_samples(self, volume_mm3: float) -> float:
        """Samples a region of ``volume_mm3`` yields at the coarsest level (voxel samplers and shares)."""
        return self.fraction * volume_mm3 / float(np.prod(self.voxel_mm))


def stage_sampling(preset: Preset, fixed: sitk.Image) -> list[StageSampling]:
    """How each stage of ``preset`` samples ``fixed`` at its coarsest level, read from the preset."""
    spacing = np.asarray(fixed.GetSpacing(), float)
    return engine_spec(preset.engine).recipe_module().stage_sampling(preset, spacing)


def needed_valid_fraction(preset: Preset, fixed: sitk.Image, fixed_mask: sitk.Image | None) -> float:
    """The fraction (0..1) of the fixed samples that must land inside the moving image (and its mask)
    for ``preset``'s engine not to stop; the region sampled is ``fixed_mask``, or all of ``fixed``."""
    if fixed_mask is not None:
        count = int(np.count_nonzero(sitk.GetArrayViewFromImage(fixed_mask)))
    else:
        count = int(np.prod(fixed.GetSize()))
    volume = count * float(np.prod(fixed.GetSpacing()))
    stages = stage_sampling(preset, fixed)
    return engine_spec(preset.engine).recipe_module().needed_valid_fraction(stages, volume)


def parameter_number(parameters: dict, key: str, default: float, pick=min) -> float:
    """A numeric entry of a parameter map (``{key: [values]}``): ``pick`` of its values, else ``default``."""
    values = parameters.get(key)
    return float(pick(float(v) for v in values)) if values else default
