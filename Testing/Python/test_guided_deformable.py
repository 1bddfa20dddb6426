"""A guided deformable run in two phases (issue 22, item 3; registration/rigid_first.py): the preset's rigid
stages from the guided start, judged as a rigid run, then its deformable stages from the pose kept; its affine
stage is left out. On hard seeds 400-423 ANTs's affine stage had ended further from the truth than its start
on 16 of 24 pairs."""

from __future__ import annotations

import numpy as np
import pytest
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.engines.presets import load_preset
from MultimodalRegistrationLib.registration.describe import describe_start
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.rules.keep import minimum_jacobian
from trus_data import trus_pair


def test_a_guided_deformable_preset_splits_into_rigid_and_deformable_stages():
    # Resources/Presets/presets.json: the intensity presets run guided in two phases; the distance-map preset
    # keeps its rigid and affine stages on the maps.
    for engine in ("elastix", "ants"):
        assert load_preset(engine, "deformable").guided_from_start
    assert not load_preset("elastix", "distance-map").guided_from_start
    rigid, deformable = load_preset("elastix", "deformable").guided_parts()
    assert [m["Transform"] for m in rigid.recipe] == [["EulerTransform"]] and rigid.is_linear and not rigid.scales
    assert [m["Transform"] for m in deformable.recipe] == [["BSplineTransform"]] and not deformable.is_linear
    assert [f.rsplit("/", 1)[-1] for f in deformable.files] == ["bspline.txt"]
    assert deformable.skipped == ("AffineTransform",)
    rigid, deformable = load_preset("ants", "deformable").guided_parts()
    assert [stage["transform"] for stage in rigid.recipe["stages"]] == ["Rigid"]
    assert [stage["transform"] for stage in deformable.recipe["stages"]] == ["SyN"]
    assert deformable.skipped == ("Affine",)
    preset = load_preset("elastix", "rigid")
    assert preset.guided_parts() == (None, preset)


@pytest.mark.slow
def test_a_guided_deformable_run_gets_closer_than_its_rigid_start():
    # Hard pair 104 (21-degree pose, probe push, warp, independent segmentations); its rigid stage is not kept.
    # Measured, mean TRE: start 3.89 mm -> 2.57 mm with the MNI texture of ../shared/data, 4.02 -> 2.63 mm with the
    # phantom texture; smallest Jacobian determinant 0.74 and 0.71 (4 mm grid).
    pair = trus_pair(104)
    result = register(pair.fixed, pair.moving, engine="ants", preset="deformable", threads=1,
                      guidance=Guidance(pair.fixed_labels, pair.moving_labels))  # fmt: skip
    provenance = result.provenance
    assert provenance.stages_skipped == ["Affine"]
    assert provenance.rigid_stage, "the rigid stage ran and was judged"
    assert provenance.kept == "result", result.warnings
    assert not result.transform.is_linear
    start = Transform.from_matrix(np.asarray(provenance.start_matrix_lps))
    start_error, error = float(np.mean(pair.tre(start))), float(np.mean(pair.tre(result.transform)))
    assert error < start_error - 0.8, (start_error, error)
    assert minimum_jacobian(result.transform, pair.fixed) > 0.3
    assert "skipped Affine" in describe_start(result.summary())
