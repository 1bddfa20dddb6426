"""The pre-run memory check sizes a deformable run by engine, and ANTs SyN's fields at their own level (core.memory).

ANTs SyN keeps its displacement fields on the fixed grid at its finest level (2 mm in the preset): at full
resolution for voxels of 1.5 mm and up, where a run took 83 copies of the fixed image, not the 15 of each image
the check counted (it let such runs start at a third of their peak); elastix's was counted twice over. The peaks
below were measured with register() in a fresh process (unguided, the phantom CT/MR pair made on each grid, peak
RSS above a warm-up run on a 4x shrunk pair, the two images as read added; Testing/Benchmarks/bench_memory.py).
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core import memory
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.file_checks import field_shrink
from MultimodalRegistrationLib.core.memory import estimate_run_bytes, image_copies
from MultimodalRegistrationLib.engines import ants_recipe
from MultimodalRegistrationLib.engines.presets import load_preset, presets_dir
from MultimodalRegistrationLib.prep.options import PrepOptions
from MultimodalRegistrationLib.process.jobs import RegistrationJob
from MultimodalRegistrationLib.process.preflight import preflight_registration

SYN = partial(ants_recipe.field_shrink, load_preset("ants", "deformable"))  # the preset's rule: 2 mm

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
    shrink = field_shrink([_Header(voxel_mm)], SYN)
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
    assert [field_shrink([_Header(mm)], SYN) for mm in (3.0, 2.0, 1.5, 1.0, 0.75, 0.5)] == [1, 1, 1, 2, 3, 4]
    assert field_shrink([_Header(0.5)], None) == 1  # level unknown: the most memory
    assert ants_recipe.field_shrink(load_preset("ants", "rigid"), 0.5) is None
    assert image_copies(0, True, "ants", 1) - image_copies(0, True, "ants", 2) == pytest.approx(75 * (1 - 1 / 8))
    assert image_copies(0, True, "elastix", 1) == image_copies(0, True, "elastix", 4)  # no SyN fields
    assert image_copies(1, True, "ants", 1) == image_copies(1, True, "ants", 4)  # on the fixed grid only
    assert image_copies(0, False, "ants", 1) == image_copies(1, False, "elastix", 1)  # rigid: as before


def _pair(folder: Path, size: int, spacing_mm: float) -> dict:
    paths = {"output_transform": str(folder / "T.h5")}
    for role in ("fixed", "moving"):
        image = sitk.Image([size] * 3, sitk.sitkFloat32)
        image.SetSpacing((spacing_mm,) * 3)
        paths[role] = str(folder / f"{role}.nrrd")
        sitk.WriteImage(image, paths[role], False)
    return paths


def _needed_mb(monkeypatch, free_mb: float, **job) -> str:
    """The check's message for ``job`` with ``free_mb`` free ('fits' when it passes)."""
    monkeypatch.setattr(memory, "available_bytes", lambda: memory.HEADROOM_BYTES + int(free_mb * 1e6))
    try:
        preflight_registration(RegistrationJob(engine="ants", **job))
    except InputError as error:
        return str(error).split(" in memory")[0]
    return "fits"


def test_preflight_sizes_an_ants_deformable_run_by_its_presets_finest_level(tmp_path, monkeypatch):
    """A 200^3 pair at 0.5 mm: SyN's fields at 2 mm (a 64th of the fixed voxels) make the run about 520 MB; counted at
    full resolution it would be 2.9 GB. With 1 GB free the run passes."""
    paths = _pair(tmp_path, 200, 0.5)
    assert _needed_mb(monkeypatch, 1000, preset="deformable", **paths) == "fits"
    assert _needed_mb(monkeypatch, 400, preset="deformable", **paths) == "the registration needs about 518 MB"


def test_a_preset_in_shrink_factors_is_sized_at_the_spacing_the_registration_gets(tmp_path, monkeypatch):
    """A custom SyN preset in shrink factors ([8, 4, 2]: its fields at half resolution, whatever the spacing). A
    spacing given (--spacing-fixed 0.25 for a 1 mm header) changes nothing in its peak, and --downsample-to 1 of a
    0.5 mm pair gives the same 100^3 grid and fields. (A review found the level carried in mm from the header's
    spacing: a field shrunk 8 times, and one at full resolution, 360 MB.)"""
    recipe = json.loads((presets_dir() / "ants" / "deformable.json").read_text())
    for stage in recipe["stages"]:
        del stage["level_spacing_mm"]
        stage["shrink_factors"], stage["smoothing_units"] = [8, 4, 2], "vox"
    (tmp_path / "syn.json").write_text(json.dumps(recipe))
    preset = str(tmp_path / "syn.json")
    coarse, fine = tmp_path / "coarse", tmp_path / "fine"
    coarse.mkdir(), fine.mkdir()
    paths = _pair(coarse, 100, 1.0)
    as_read = _needed_mb(monkeypatch, 0, preset=preset, **paths)
    assert as_read == "the registration needs about 98 MB"
    assert _needed_mb(monkeypatch, 0, preset=preset, prep=PrepOptions(spacing_fixed=(0.25,) * 3), **paths) == as_read
    halved = _needed_mb(monkeypatch, 0, preset=preset, prep=PrepOptions(downsample_to=1.0), **_pair(fine, 200, 0.5))
    assert halved == as_read  # 100^3 after downsampling, fields at shrink 2
