"""register() and register_piecewise() take their settings as one object or as keywords by field name."""

import pytest
import SimpleITK as sitk
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.piecewise.segments import PiecewiseSettings, register_piecewise
from MultimodalRegistrationLib.registration.register import register
from MultimodalRegistrationLib.registration.settings import RegistrationSettings


def test_keywords_override_the_settings_object_field_by_field():
    initial = Transform.identity()
    base = RegistrationSettings(engine="ants", preset="affine", seed=7)
    settings = base.overridden({"seed": 3, "initial_transform": initial})
    assert (settings.engine, settings.preset, settings.seed) == ("ants", "affine", 3)
    assert settings.initial_transform is initial
    assert base.seed == 7  # the object given is left as it was
    assert base.overridden({}) is base


def test_a_misspelled_keyword_is_refused_naming_the_fields_before_any_work():
    image = sitk.Image([4, 4, 4], sitk.sitkFloat32)  # never read: the names are checked first
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['engin'\]: use engine, fixed_mask"):
        register(image, image, engin="ants")
    with pytest.raises(TypeError, match=r"\['margin'\]: use .*margin_mm"):
        register_piecewise(image, image, None, ["bone"], margin="10")


def test_piecewise_keywords_reach_the_global_registration_or_the_segments():
    settings = PiecewiseSettings().overridden({"engine": "ants", "seed": 5, "margin_mm": 3.0})
    assert (settings.registration.engine, settings.registration.seed, settings.margin_mm) == ("ants", 5, 3.0)
    assert settings.registration.preset == "rigid"  # the segments' preset, unless the global one is given
    given = PiecewiseSettings(RegistrationSettings(preset="affine")).overridden({"threads": 1})
    assert (given.registration.preset, given.registration.threads) == ("affine", 1)


def test_a_file_path_where_an_image_or_transform_belongs_is_refused_naming_what_to_pass():
    """register(f, m, initial_transform="T.h5") raised AttributeError: 'str' object has no attribute
    'transform_points' from deep in the run (a helper's docs sweep)."""
    image = sitk.Image([4, 4, 4], sitk.sitkFloat32)
    with pytest.raises(TypeError, match=r"initial_transform must be a Transform \(Transform.read\(path\)\), not str"):
        register(image, image, initial_transform="T.h5")
    with pytest.raises(TypeError, match=r"fixed_mask must be a SimpleITK image .*, not str 'mask.nrrd'"):
        register(image, image, fixed_mask="mask.nrrd")
    with pytest.raises(TypeError, match=r"moving must be a SimpleITK image"):
        register(image, "mr.nrrd")


def test_the_result_line_says_where_before_was_measured():
    """'before' is the initial transform, else --init's own start: the image centres, the headers' pose under
    --init none, the intensity centroids under moments (a reviewer: 'the image centres' was said for all)."""
    from MultimodalRegistrationLib.registration.describe import describe_result
    from MultimodalRegistrationLib.registration.summary import Provenance, RegistrationSummary

    def line(**provenance) -> str:
        summary = RegistrationSummary(
            transform_kind="linear", matrix_lps=[], has_inverse=True, metric_name="mutual_information",
            metric_before=0.1, metric_after=0.5, seconds=1.0, warnings=[],
            provenance=Provenance.from_dict({"engine": "elastix", "preset": "rigid", **provenance}),
        )  # fmt: skip
        return describe_result(summary)

    assert "0.100 at the image centres -> 0.500" in line(init="auto")
    assert "at the headers' pose ->" in line(init="none") and "at the intensity centroids ->" in line(init="moments")
    assert "at the initial transform ->" in line(init="auto", initial_transform="T0.h5")
