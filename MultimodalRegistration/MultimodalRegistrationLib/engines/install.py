"""Installing the engines on first use: what to install, whether to ask, and what to say when pip fails.

Pure decisions around two callables the caller supplies, so that a test can drive them with fakes:

* ``ask(question) -> bool``: one confirmation for everything missing (Slicer: an OK/Cancel dialog);
* ``install(requirements)``: pip-installs a list of requirement strings and raises when pip fails
  (Slicer: ``slicer.util.pip_install``).

An engine counts as installed when its own pip distribution (``EngineSpec.distribution``) is installed at a
version inside :data:`VERSION_RANGES`, judged by :mod:`importlib.metadata`: an ``itk`` that another
extension installed is not itk-elastix. The ranges let pip choose, on each platform Slicer ships, the
newest release that has a wheel there (docs/install.md has the table); ``make test`` pins the newest.
"""

from __future__ import annotations

import os
import re
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..core.records import Record
from ..core.version import distribution_version
from .registry import engine_spec

# Inclusive (lowest, highest) release of each engine's distribution that pip may choose. The lowest is the
# oldest that some Slicer platform needs (its newest wheel there), the highest the one `make test` pins.
VERSION_RANGES: dict[str, tuple[str, str]] = {
    "itk-elastix": ("0.21.0", "0.25.4"),  # 0.21.0: the newest with an Intel-Mac wheel
    "antspyx": ("0.4.2", "0.6.3"),  # 0.4.2: the newest for macOS 11 (Intel) and macOS 11-13 (ARM)
}


class EngineInstallError(RuntimeError):
    """An engine is missing and was not installed (refused, or pip failed); the message gives the command."""


class EngineInstallDeclined(EngineInstallError):
    """The user answered no to the install question: a choice, which a panel says in its status line, not an error
    dialog (a helper's GUI review: Cancel had shown "Registration could not start" and a traceback)."""


@dataclass
class InstallPlan(Record):
    """What :func:`ensure_engines` found and did, by requirement string (``itk-elastix>=0.21.0,<=0.25.4``)."""

    present: list[str] = field(default_factory=list)  # "<distribution> <version>" already in range
    asked: str | None = None  # the one question put to the user, None when nothing was asked
    installed: list[str] = field(default_factory=list)  # requirements handed to ``install``


def requirement(distribution: str) -> str:
    """The pip requirement for ``distribution`` within its range, e.g. ``antspyx>=0.4.2,<=0.6.3``."""
    lowest, highest = VERSION_RANGES[distribution]
    return f"{distribution}>={lowest},<={highest}"


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``"0.25.4"`` -> (0, 25, 4); ``"0.6.3.dev1"`` -> (0, 6, 3)."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def in_range(distribution: str, version: str | None) -> bool:
    """Whether an installed ``version`` of ``distribution`` is one the library runs with."""
    if version is None:
        return False
    lowest, highest = (release(bound) for bound in VERSION_RANGES[distribution])
    return lowest <= release(version) <= highest


def engine_installed(name: str) -> bool:
    """Whether engine ``name``'s own distribution is installed at a version in its range."""
    distribution = engine_spec(name).distribution
    return in_range(distribution, installed_version(distribution))


def installed_version(distribution: str) -> str | None:
    """The installed version of a pip distribution, None when it is not installed (fresh: no cache)."""
    return distribution_version(distribution, fresh=True)


# Packages Slicer ships and its own modules need: an engine's install must not replace them (antspyx 0.6.3 asks for
# numpy<2.4 and scipy<1.16, and pip would downgrade a newer Slicer's). Pinned at their installed versions, pip picks
# an engine release that accepts them, or fails and says so.
KEPT_AS_THEY_ARE = ("numpy", "scipy")


def kept_as_they_are(version_of: Callable[[str], str | None] = installed_version) -> list[str]:
    """``name==version`` for each of KEPT_AS_THEY_ARE that is installed."""
    pins = []
    for name in KEPT_AS_THEY_ARE:
        version = version_of(name)
        if version:
            pins.append(f"{name}=={version}")
    return pins


def manual_command(requirements: Sequence[str]) -> str:
    """The command a user can run by hand: in Slicer's Python console, and in a shell."""
    quoted = ", ".join(repr(item) for item in requirements)
    shell = " ".join(f'"{item}"' for item in requirements)
    return f"slicer.util.pip_install([{quoted}]) in Slicer's Python console, or: PythonSlicer -m pip install {shell}"


def question(engines: Sequence[str], requirements: Sequence[str]) -> str:
    """The one confirmation: which engines, which packages, how large, that it needs the network."""
    names = " and ".join(engine_spec(name).label for name in engines)
    return (f"Registering with {names} needs the Python package{'s' if len(requirements) > 1 else ''} "
            f"{', '.join(requirements)} (about 100-300 MB, downloaded from PyPI). Install now?")  # fmt: skip


def ensure_engines(
    engines: Sequence[str],
    ask: Callable[[str], bool] | None,
    install: Callable[[list[str]], object],
    unattended: bool = False,
    version_of: Callable[[str], str | None] = installed_version,
) -> InstallPlan:
    """Make sure each engine in ``engines`` is installed, asking at most once.

    ``unattended`` (testing mode, batch runs, ``Slicer --no-main-window``) or ``ask=None`` installs without
    asking. A refusal, a failing ``install`` or a distribution still missing afterwards raises
    :class:`EngineInstallError` naming the command to run by hand. Unknown engine names raise InputError.
    """
    plan = InstallPlan()
    missing: dict[str, str] = {}  # engine name -> its distribution, for each engine not installed in range
    for name in dict.fromkeys(engines):
        distribution = engine_spec(name).distribution
        version = version_of(distribution)
        if in_range(distribution, version):
            plan.present.append(f"{distribution} {version}")
        else:
            missing[name] = distribution
    if not missing:
        return plan
    engines_needed = [requirement(distribution) for distribution in dict.fromkeys(missing.values())]
    needed = engines_needed + kept_as_they_are(version_of)
    if not unattended and ask is not None:
        plan.asked = question(list(missing), engines_needed)
        if not ask(plan.asked):
            raise EngineInstallDeclined(
                f"{' and '.join(missing)} not installed (declined). To install later: {manual_command(needed)}"
            )
    try:
        install(list(needed))
    except Exception as error:  # pip's own failure, whatever its type: the user needs the manual command
        text = str(error).strip()  # Slicer's pip_install says only "returned non-zero exit status": ask the folder
        unwritable = not os.access(sysconfig.get_paths()["purelib"], os.W_OK) or any(
            sign in text for sign in ("Permission denied", "Read-only file system", "Access is denied"))
        advice = ("Slicer's own folder is not writable (another user's or a read-only installation: on macOS, one "
                  "started from the disk image or from Downloads); install Slicer where you can write, start it "
                  "from there" if unwritable else "Check the network connection")  # fmt: skip
        raise EngineInstallError(
            f"installing {', '.join(needed)} failed: {text[-500:] or type(error).__name__}. "
            f"{advice}, then run: {manual_command(needed)}"
        ) from error
    plan.installed = needed
    still = [requirement(d) for d in dict.fromkeys(missing.values()) if not in_range(d, version_of(d))]
    if still:
        raise EngineInstallError(
            f"pip finished but {', '.join(still)} is still not installed in this Python. "
            f"Restart Slicer; if it is still missing, run: {manual_command(still)}"
        )
    return plan
