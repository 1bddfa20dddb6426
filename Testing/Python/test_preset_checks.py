"""Preset checks before any engine runs: misspelled names are refused with a "did you mean", no ITK needed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.engines.elastix_recipe import elastix_entries, parse_elastix_parameters
from MultimodalRegistrationLib.engines.presets import load_preset

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "Resources" / "Presets"
RIGID = PRESETS / "elastix" / "rigid.txt"
ANTS_PY = ROOT / "MultimodalRegistration" / "MultimodalRegistrationLib" / "engines" / "ants.py"


def _elastix_file(tmp_path: Path, text: str, name: str = "my.txt") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _refusal(engine: str, preset: str) -> str:
    with pytest.raises(InputError) as error:
        load_preset(engine, preset)
    return str(error.value)


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize(("preset", "stages"), [("rigid", 1), ("affine", 2), ("deformable", 3)])
def test_shipped_elastix_presets_pass(preset, stages):
    loaded = load_preset("elastix", preset)
    assert len(loaded.recipe) == stages
    assert loaded.recipe[-1]["Transform"][0] in ("EulerTransform", "AffineTransform", "RecursiveBSplineTransform")


@pytest.mark.parametrize("preset", ["rigid", "affine", "deformable"])
def test_shipped_ants_presets_pass(preset):
    loaded = load_preset("ants", preset)
    assert loaded.recipe["stages"] and all("iterations" in stage for stage in loaded.recipe["stages"])


def test_known_parameter_list_is_sorted_and_broad():
    lines = (PRESETS / "elastix" / "known_parameters.txt").read_text().splitlines()
    names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("//")]
    assert names == sorted(names) and len(names) == len(set(names))
    assert len(names) > 200
    for name in ("NumberOfSpatialSamples", "SP_A", "ASGDParameterEstimationMethod", "FinalGridSpacingInPhysicalUnits",
                 "ResultImageFormat", "ITKTransformOutputFileNameExtension", "Metric<i>Weight"):  # fmt: skip
        assert name in names
    shipped = {key for path in (PRESETS / "elastix").glob("*.txt") if path.name != "known_parameters.txt"
               for _, key, _ in elastix_entries(path.read_text())}  # fmt: skip
    assert shipped - set(names) == {"Metric0Weight", "Metric1Weight"}  # covered by Metric<i>Weight


def test_misspelled_parameter_is_refused_with_line_and_suggestion(tmp_path):
    text = RIGID.read_text().replace("MaximumNumberOfIterations", "MaximumNumberOfIteratoins")
    path = _elastix_file(tmp_path, text)
    message = _refusal("elastix", path)
    line = _line_of(text, "MaximumNumberOfIteratoins")
    assert f"elastix preset {path} line {line}: unknown parameter 'MaximumNumberOfIteratoins'" in message
    assert "did you mean 'MaximumNumberOfIterations'? (fix the name; elastix ignores names it does not know)" in message


def test_wrong_case_and_unrelated_names(tmp_path):
    text = RIGID.read_text().replace("NumberOfHistogramBins", "numberofhistogrambins") + "(Frobnicate 3)\n"
    message = _refusal("elastix", _elastix_file(tmp_path, text))
    assert "unknown parameter 'numberofhistogrambins': did you mean 'NumberOfHistogramBins'?" in message
    assert "unknown parameter 'Frobnicate': fix or remove it (elastix ignores names it does not know)" in message


def test_indexed_and_component_names_pass(tmp_path):
    extra = """
(Metric1Weight 2.0)
(Metric12Weight 0.5)
(Metric0RelativeWeight 1.0)
(Metric1Use "false")
(UseRelativeWeights "true")
(ErodeFixedMask1 "false")
(FullSearchSpace0 "tx" 3 -4.0 4.0 1.0)
(Metric1NumberOfHistogramBins 64)
(ImageSampler0NumberOfSpatialSamples 3000)
"""
    preset = load_preset("elastix", _elastix_file(tmp_path, RIGID.read_text() + extra))
    assert preset.recipe[0]["Metric12Weight"] == ["0.5"]


def test_misspelled_indexed_names_get_the_index_back(tmp_path):
    text = RIGID.read_text() + "(Metric1Wieght 2.0)\n(Metric0NumberOfHistogramBinz 64)\n"
    message = _refusal("elastix", _elastix_file(tmp_path, text))
    assert "unknown parameter 'Metric1Wieght': did you mean 'Metric1Weight'?" in message
    assert "unknown parameter 'Metric0NumberOfHistogramBinz': did you mean 'Metric0NumberOfHistogramBins'?" in message


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("(NumberOfResolutions 3)", "(NumberOfResolutions 0)", "NumberOfResolutions is '0', not one positive whole number"),
        ("(NumberOfResolutions 3)", "(NumberOfResolutions 3.0)", "give one, such as (NumberOfResolutions 3)"),
        ('(Transform "EulerTransform")', '(Transform "EulerTransfrom")',
         "Transform 'EulerTransfrom' is not an elastix transform: did you mean 'EulerTransform'?"),
        ('(Transform "EulerTransform")', '(Transform "NoSuchTransform")', "use one of AffineDTITransform"),
        ("(NumberOfSpatialSamples 4096)", "(NumberOfSpatialSamples -5)",
         "NumberOfSpatialSamples is '-5', not positive whole numbers: give one per resolution"),
    ],
)  # fmt: skip
def test_values_elastix_would_reject_late_are_refused(tmp_path, old, new, fragment):
    text = RIGID.read_text()
    assert old in text
    message = _refusal("elastix", _elastix_file(tmp_path, text.replace(old, new)))
    assert f"line {_line_of(text, old)}: " in message and fragment in message


def test_parse_elastix_parameters_keeps_its_contract():
    parameters, description = parse_elastix_parameters(RIGID.read_text())
    assert parameters["Transform"] == ["EulerTransform"] and parameters["MaximumStepLength"] == ["4.0", "2.0", "0.25"]
    assert description.startswith("Rigid (6 degrees of freedom)")
    entries = elastix_entries('// comment\n\n(NumberOfResolutions 3) // trailing\n(Metric "A" "B")\n')
    assert entries == [(3, "NumberOfResolutions", ["3"]), (4, "Metric", ["A", "B"])]
    with pytest.raises(InputError, match=r"'Transform EulerTransform' \(line 2\): fix the preset file"):
        elastix_entries("// x\nTransform EulerTransform\n")


def _ants_file(tmp_path: Path, recipe: dict) -> tuple[str, str]:
    path = tmp_path / "my.json"
    text = json.dumps(recipe, indent=2)
    path.write_text(text)
    return str(path), text


def test_misspelled_ants_stage_key_is_refused_with_suggestion(tmp_path):
    recipe = json.loads((PRESETS / "ants" / "affine.json").read_text())
    recipe["stages"][1]["iteratoins"] = recipe["stages"][1].pop("iterations")
    path, text = _ants_file(tmp_path, recipe)
    message = _refusal("ants", path)
    line = _line_of(text, '"iteratoins"')
    assert f"ANTs preset {path} line {line} (stage 2): unknown key 'iteratoins': did you mean 'iterations'?" in message
    assert "the ANTs engine ignores keys it does not know" in message
    assert "has no 'iterations'" not in message  # the misspelling is the one problem


def test_ants_top_level_and_value_problems(tmp_path):
    recipe = json.loads((PRESETS / "ants" / "rigid.json").read_text())
    recipe["winsorise"] = recipe.pop("winsorize")
    recipe["stages"][0]["metric"] = "CC"
    recipe["stages"][0]["smoothing_sigmas"] = [4, 2]
    path, _ = _ants_file(tmp_path, recipe)
    message = _refusal("ants", path)
    assert "unknown key 'winsorise': did you mean 'winsorize'?" in message
    assert "(stage 1): metric 'CC' is not multimodal: use one of Mattes, MI" in message
    assert "(stage 1): smoothing_sigmas [4, 2] needs one value per level, like iterations (3)" in message


def test_known_ants_keys_are_the_keys_the_engine_reads():
    source = ANTS_PY.read_text() + ANTS_PY.with_name("ants_recipe.py").read_text()
    read = set(re.findall(r"""stage(?:\.get\(|\[)['"](\w+)['"]""", source))
    top = set(re.findall(r"""recipe(?:\.get\(|\[)['"](\w+)['"]""", source)) | {"description"}
    known = json.loads((PRESETS / "ants" / "known_keys.json").read_text())
    assert set(known["stage"]) == read
    assert set(known["top_level"]) == top


def test_checks_import_no_itk():
    code = (
        "import sys; sys.path.insert(0, 'MultimodalRegistration');"
        "from MultimodalRegistrationLib.engines.presets import list_presets; list_presets();"
        "print('itk' in sys.modules, 'ants' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False"]
