"""``mmreg --version``: the library's version and the versions of what a result depends on."""

from __future__ import annotations

import argparse
import platform
import sys

from ..core.version import __version__, distribution_version
from ..engines.registry import ENGINES


def version_text() -> str:
    """One line: mmreg's version, each engine's distribution, SimpleITK and Python."""
    parts = [spec.version() for spec in ENGINES.values()]
    parts.append(f"SimpleITK {distribution_version('SimpleITK') or 'not installed'}")
    parts.append(f"Python {platform.python_version()}")
    return f"mmreg {__version__} ({', '.join(parts)})"


class VersionAction(argparse.Action):
    """Prints :func:`version_text` and exits 0; the versions are looked up only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text(), file=sys.stdout)
        parser.exit(0)
