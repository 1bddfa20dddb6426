"""antsRegistration from antspyx's compiled library, loaded without the rest of the package.

The engine calls one function of antspyx: ``antsRegistration``, in the compiled module ``ants.lib``.
``import ants`` first runs the package's ``__init__``, which imports its plotting, learning and
deep-learning parts (matplotlib, pandas, scikit-learn, statsmodels): 3.5-6 s on a 2-core machine.
Loading ``ants.lib`` by its file takes 0.1 s and gives the same function object (the extension is
loaded once per process, whichever way), so the registrations are the same.

If an antspyx release moves or renames that library, the package import is used instead: slower,
never wrong.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path


def _direct() -> Callable[[list[str]], int]:
    if "ants.lib" in sys.modules:
        return sys.modules["ants.lib"].antsRegistration
    spec = importlib.util.find_spec("ants")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("antspyx is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    path = next((folder / f"lib{suffix}" for suffix in suffixes if (folder / f"lib{suffix}").is_file()), None)
    if path is None:
        raise ImportError(f"no compiled ants.lib in {folder}")
    loader = importlib.machinery.ExtensionFileLoader("ants.lib", str(path))
    library = importlib.util.module_from_spec(importlib.util.spec_from_file_location("ants.lib", path, loader=loader))
    loader.exec_module(library)
    return library.antsRegistration


def _package() -> Callable[[list[str]], int]:
    from ants.internal import get_lib_fn

    return get_lib_fn("antsRegistration")


@cache
def ants_registration() -> Callable[[list[str]], int]:
    """antsRegistration(arguments) -> exit status, loaded on the first call (0.1 s directly, 3.5-6 s through
    ``import ants``). Raises ImportError when antspyx is not installed."""
    try:
        return _direct()
    except (ImportError, AttributeError, OSError):
        return _package()
