"""The pre-run memory check sizes a deformable run by engine, and ANTs SyN's fields at their own level (core.memory).

ANTs SyN keeps its displacement fields on the fixed grid at its finest level (2 mm in the preset): at full
resolution for voxels of 1.5 mm and up, where a run took 83 copies of the fixed image, not the 15 of each image
the check counted (it let such runs start at a third of their peak); elastix's was counted twice over. The peaks
below were measured with register() in a fresh process (unguided, the phantom CT/MR pair made on each grid, peak
RSS above a warm-up run on a 4x shrunk pair, the two images as read added; /tmp/exp/s27/mem_syn.py).
"""

from __future__ import annotations

import math

import pytest
from MultimodalRegistrationLib.core.file_checks import field_shrink
from MultimodalRegistrationLib.core.memory import estimate_run_bytes, image_copies

# (engine, fixed grid, fixed voxel mm, moving grid, MB above the warm-up)
MEASURED = [
    ("ants", (160, 160, 112), 1.5, (120, 120, 126), 955.5),
    ("ants", (120, 120, 84), 1.5, (90, 90, 95), 404.4),
    ("ants", (160, 160, 168), 1.0, (80, 80, 84), 333.8),
    ("ants", (80, 80, 84), 2.0, (160, 160, 168), 209.7),
    ("ants", (200, 200, 200), 0.5, (50, 50, 50), 363.8),
    ("ants", (200, 200, 200), 0.75, (100, 100, 100), 411.4),  # measured after the fit: 419 MB predicted
    ("elastix", (160, 160, 112), 1.5, (120, 120, 126), 102.5),
    ("elastix", (80, 80, 84), 2.0, (160, 160, 168), 129.2),
    ("elastix", (160, 160, 168), 1.0, (80, 80, 84), 93.8),
    ("elastix", (200, 200, 200), 0.5, (50, 50, 50), 206.1),
]  # fmt: skip


class _Header:
    def __init__(self, spacing_mm: float):
        self.spacing = (spacing_mm,) * 3


def _estimate_and_peak(engine, fixed, voxel_mm, moving, above_mb) -> tuple[float, float]:
    shrink = field_shrink([_Header(voxel_mm)], 2.0)  # the ANTs deformable preset's finest level
    estimate = estimate_run_bytes([(fixed, "float32"), (moving, "float32")], deformable=True, engine=engine,
                                  field_shrink=shrink)  # fmt: skip
    return estimate / 1e6, above_mb + 4 * (math.prod(fixed) + math.prod(moving)) / 1e6


@pytest.mark.parametrize("engine, fixed, voxel_mm, moving, above_mb", MEASURED)
def test_the_deformable_estimate_covers_each_measured_run(engine, fixed, voxel_mm, moving, above_mb):
    """Never below a measured peak (the run would swap), at most 1.3x above it (runs that fit would be refused).
    Before: ANTs 0.29x the peak at 1.5 and 2 mm, elastix 2.3x."""
    estimate, peak = _estimate_and_peak(engine, fixed, voxel_mm, moving, above_mb)
    assert peak <= estimate <= 1.3 * peak


def test_syn_fields_shrink_with_the_fixed_voxel():
    """Full resolution at 1.5 mm and up (2 mm / 1.5 rounds to 1), an eighth at 1 mm, 1/64 at 0.5 mm."""
    assert [field_shrink([_Header(mm)], 2.0) for mm in (3.0, 2.0, 1.5, 1.0, 0.75, 0.5)] == [1, 1, 1, 2, 3, 4]
    assert field_shrink([_Header(0.5)], None) == 1  # level unknown: the most memory
    assert image_copies(0, True, "ants", 1) - image_copies(0, True, "ants", 2) == pytest.approx(75 * (1 - 1 / 8))
    assert image_copies(0, True, "elastix", 1) == image_copies(0, True, "elastix", 4)  # no SyN fields
    assert image_copies(1, True, "ants", 1) == image_copies(1, True, "ants", 4)  # on the fixed grid only
    assert image_copies(0, False, "ants", 1) == image_copies(1, False, "elastix", 1)  # rigid: as before


def test_preflight_sizes_an_ants_deformable_run_by_its_presets_finest_level(tmp_path, monkeypatch):
    """A 200^3 pair at 0.5 mm: SyN's fields at 2 mm (a 64th of the fixed voxels) make the run about 520 MB; counted at full
    resolution it would be 2.9 GB. With 1 GB free the run passes, and the rigid preset has no fields at all."""
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core import memory
    from MultimodalRegistrationLib.core.errors import InputError
    from MultimodalRegistrationLib.engines.ants_recipe import field_level_mm
    from MultimodalRegistrationLib.engines.presets import load_preset
    from MultimodalRegistrationLib.process.jobs import RegistrationJob
    from MultimodalRegistrationLib.process.preflight import preflight_registration

    assert field_level_mm(load_preset("ants", "deformable"), 0.5) == 2.0
    assert field_level_mm(load_preset("ants", "rigid"), 0.5) is None
    paths = {}
    for role in ("fixed", "moving"):
        image = sitk.Image([200, 200, 200], sitk.sitkFloat32)
        image.SetSpacing((0.5, 0.5, 0.5))
        paths[role] = str(tmp_path / f"{role}.nrrd")
        sitk.WriteImage(image, paths[role], False)
    job = RegistrationJob(engine="ants", preset="deformable", output_transform=str(tmp_path / "T.h5"), **paths)

    def free(megabytes: float) -> None:
        monkeypatch.setattr(memory, "available_bytes", lambda: memory.HEADROOM_BYTES + int(megabytes * 1e6))

    free(1000)
    preflight_registration(job)
    free(400)
    with pytest.raises(InputError, match="the registration needs about 518 MB in memory"):
        preflight_registration(job)
