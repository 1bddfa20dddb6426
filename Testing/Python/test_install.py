"""First-use engine install (engines/install.py) with a fake installer: what is asked, installed, refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.engines import install as engine_install
from MultimodalRegistrationLib.engines.install import (
    VERSION_RANGES,
    EngineInstallDeclined,
    EngineInstallError,
    ensure_engines,
    in_range,
    kept_as_they_are,
    requirement,
)
from MultimodalRegistrationLib.engines.registry import ENGINES

ROOT = Path(__file__).resolve().parents[2]
ELASTIX = "itk-elastix>=0.21.0,<=0.25.4"
ANTS = "antspyx>=0.4.2,<=0.6.3"


class FakeSite:
    """Installed distributions by name, a pip that installs into it (or fails), and a user who answers."""

    def __init__(self, installed: dict[str, str] | None = None, answer: bool = True, pip_error: Exception | None = None,
                 pip_installs: bool = True):  # fmt: skip
        self.installed = dict(installed or {})
        self.answer, self.pip_error, self.pip_installs = answer, pip_error, pip_installs
        self.questions: list[str] = []
        self.pip_calls: list[list[str]] = []

    def version_of(self, distribution: str) -> str | None:
        return self.installed.get(distribution)

    def ask(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def install(self, requirements: list[str]) -> None:
        self.pip_calls.append(requirements)
        if self.pip_error is not None:
            raise self.pip_error
        if self.pip_installs:
            for item in requirements:
                distribution, _, pinned = item.split(">=")[0].partition("==")
                self.installed[distribution] = pinned or VERSION_RANGES[distribution][1]

    def ensure(self, engines, unattended=False):
        return ensure_engines(engines, self.ask, self.install, unattended=unattended, version_of=self.version_of)


def test_every_engine_has_a_range_and_the_ranges_contain_the_pins_make_test_uses():
    pins = dict(line.split("==") for line in (ROOT / "Resources/requirements.txt").read_text().split()
                if "==" in line)  # fmt: skip
    for spec in ENGINES.values():
        assert spec.distribution in VERSION_RANGES
        assert in_range(spec.distribution, pins[spec.distribution]), (spec.distribution, pins[spec.distribution])
    assert requirement("itk-elastix") == ELASTIX and requirement("antspyx") == ANTS


def test_installed_engines_ask_and_install_nothing():
    site = FakeSite({"itk-elastix": "0.25.4", "antspyx": "0.6.3"})
    plan = site.ensure(["elastix", "ants"])
    assert site.questions == [] and site.pip_calls == []
    assert plan.present == ["itk-elastix 0.25.4", "antspyx 0.6.3"] and plan.installed == []


def test_itk_from_another_extension_is_not_itk_elastix():
    """An `itk` that another extension installed does not count: the distribution itk-elastix is missing."""
    site = FakeSite({"itk": "5.4.0", "itk-core": "5.4.0"})
    plan = site.ensure(["elastix"])
    assert site.pip_calls == [[ELASTIX]]
    assert plan.installed == [ELASTIX]


def test_two_missing_engines_are_one_question_and_one_pip_call():
    site = FakeSite()
    plan = site.ensure(["elastix", "ants", "elastix"])
    assert len(site.questions) == 1
    assert ELASTIX in site.questions[0] and ANTS in site.questions[0] and "elastix and ANTs" in site.questions[0]
    assert site.pip_calls == [[ELASTIX, ANTS]]
    assert plan.asked == site.questions[0]
    assert site.installed == {"itk-elastix": "0.25.4", "antspyx": "0.6.3"}


def test_only_the_missing_engine_is_asked_for():
    site = FakeSite({"itk-elastix": "0.25.2"})  # the newest with a Linux glibc 2.17 wheel: in range
    site.ensure(["elastix", "ants"])
    assert site.pip_calls == [[ANTS]]
    assert "itk-elastix" not in site.questions[0]


def test_a_version_outside_the_range_is_replaced():
    site = FakeSite({"antspyx": "0.3.8"})
    site.ensure(["ants"])
    assert site.pip_calls == [[ANTS]]


def test_testing_mode_installs_without_asking():
    site = FakeSite(answer=False)
    plan = site.ensure(["ants"], unattended=True)
    assert site.questions == [] and plan.asked is None
    assert site.pip_calls == [[ANTS]]


def test_no_ask_callable_installs_without_asking():
    site = FakeSite()
    ensure_engines(["elastix"], None, site.install, version_of=site.version_of)
    assert site.pip_calls == [[ELASTIX]]


def test_a_refusal_installs_nothing_and_names_the_command():
    site = FakeSite(answer=False)
    with pytest.raises(EngineInstallDeclined) as caught:  # the panel says it in its status line, no dialog
        site.ensure(["elastix"])
    assert site.pip_calls == []
    message = str(caught.value)
    assert "declined" in message
    assert f"slicer.util.pip_install(['{ELASTIX}'])" in message
    assert f'PythonSlicer -m pip install "{ELASTIX}"' in message


def test_a_failing_pip_says_what_failed_and_the_manual_command():
    site = FakeSite(pip_error=RuntimeError("Could not find a version that satisfies the requirement"))
    with pytest.raises(EngineInstallError) as caught:
        site.ensure(["elastix", "ants"])
    message = str(caught.value)
    assert "Could not find a version" in message
    assert f'PythonSlicer -m pip install "{ELASTIX}" "{ANTS}"' in message
    assert len(site.questions) == 1


@pytest.mark.parametrize(("pip_says", "advice"), [
    ("[Errno 30] Read-only file system: '/Volumes/Slicer/Slicer.app/Contents/lib/Python'", "not writable"),
    ("Could not install packages due to an OSError: [Errno 13] Permission denied: '/Applications/Slicer.app'", "not writable"),
    ("Connection timed out", "network"),
], ids=["disk image", "another user's", "network"])  # fmt: skip
def test_a_pip_failure_names_its_likely_cause(pip_says, advice):
    """A Slicer.app started from its disk image, or installed by another user, cannot take packages: the message
    said to check the network (audit of macOS paths)."""
    site = FakeSite(pip_error=OSError(pip_says))
    with pytest.raises(EngineInstallError, match=advice):
        site.ensure(["elastix"])


def test_a_pip_failure_in_a_folder_that_cannot_be_written_says_so_whatever_pip_said(monkeypatch):
    """Slicer's pip_install raises only 'returned non-zero exit status 1', without pip's words (review): the
    folder itself is asked."""
    from MultimodalRegistrationLib.engines import install

    monkeypatch.setattr(install.os, "access", lambda path, mode: False)
    site = FakeSite(pip_error=RuntimeError("Command '['PythonSlicer', '-m', 'pip', ...]' returned non-zero exit status 1."))
    with pytest.raises(EngineInstallError, match="not writable"):
        site.ensure(["elastix"])


def test_pip_that_succeeds_without_installing_is_reported():
    site = FakeSite(pip_installs=False)
    with pytest.raises(EngineInstallError, match="still not installed.*Restart Slicer"):
        site.ensure(["ants"])


def test_an_unknown_engine_is_refused_before_anything_is_asked():
    site = FakeSite()
    with pytest.raises(InputError, match="unknown engine 'greedy'"):
        site.ensure(["greedy"])
    assert site.questions == [] and site.pip_calls == []


def test_versions_compare_by_release_numbers():
    assert in_range("itk-elastix", "0.21.0") and in_range("itk-elastix", "0.25.4")
    assert not in_range("itk-elastix", "0.20.0") and not in_range("itk-elastix", "0.26.0")
    assert in_range("antspyx", "0.6.3.post1") and not in_range("antspyx", None)


def test_the_real_lookup_finds_this_environments_distributions():
    assert engine_install.installed_version("no-such-distribution-here") is None
    version = engine_install.installed_version("SimpleITK")
    assert version is not None and version[0].isdigit()


def test_slicers_numpy_and_scipy_are_kept_as_they_are():
    """antspyx 0.6.3 asks for numpy<2.4 and scipy<1.16: installed as is, pip would downgrade a newer Slicer's own
    numpy and scipy (helper's audit of the Slicer runtime; SlicerANTsPy avoids it too). They go in pinned at their
    installed versions, so pip picks an engine release that accepts them, or fails and says so."""
    site = FakeSite({"numpy": "2.4.1", "scipy": "1.16.2"})
    plan = site.ensure(["ants"])
    assert site.pip_calls == [[ANTS, "numpy==2.4.1", "scipy==1.16.2"]] and plan.installed == site.pip_calls[0]
    assert "numpy" not in site.questions[0]  # the question names the engine's package only


def test_a_missing_engine_names_the_install_command_for_slicer_and_for_a_shell(tmp_path):
    """The hint had named pip install -r Resources/requirements.txt: a path in the source tree, whose pins downgrade
    Slicer's numpy and have no macOS wheel (a helper's packaging sweep). It now names the engine's range, kept
    numpy and scipy in Slicer, and Slicer's own pip."""
    from MultimodalRegistrationLib.core.errors import EngineError
    from MultimodalRegistrationLib.engines.registry import engine_spec
    from MultimodalRegistrationLib.engines.run import _translating_errors

    def missing():
        raise ImportError("No module named 'itk'")

    with pytest.raises(EngineError) as raised:
        _translating_errors(engine_spec("elastix"), tmp_path, missing)
    hint = raised.value.hint
    assert hint.startswith(f'outside Slicer: pip install "{requirement("itk-elastix")}"; in Slicer, ')
    assert "slicer.util.pip_install(['itk-elastix>=" in hint and "requirements.txt" not in hint
    assert all(f"'{pin}'" in hint for pin in kept_as_they_are())


def test_an_engine_failure_is_called_out_of_memory_only_when_it_says_so():
    """ANTs prints 'Container manages memory: true' in its image dump: any failure had been hinted as out of memory
    ('downsample the larger image'; a helper's preset sweep: a sampling percentage of 10)."""
    from MultimodalRegistrationLib.engines.run import engine_hint

    dump = "Image (0x55): Container manages memory: true ... Exception: sampling percentage must be in (0, 1]"
    assert "memory" not in engine_hint(dump)
    assert engine_hint("std::bad_alloc").startswith("not enough memory")
    assert engine_hint("itk::MemoryAllocationError: Failed to allocate memory for image") != engine_hint(dump)
