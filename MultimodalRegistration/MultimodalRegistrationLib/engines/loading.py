"""Importing the engines' packages, which takes seconds: ITK's elastix modules 7-15 s, ANTs 4-6 s.

:func:`require` imports an engine in the calling thread, or waits for its :func:`preload`. A warm worker
preloads its engines in a background thread, so that a job's reading, checks and pose search (SimpleITK
and numpy, which release the GIL) run on another core while ITK's modules load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

ENGINES = ("elastix", "ants")

_loaded: set[str] = set()
_preloads: dict[str, threading.Thread] = {}
_lock = threading.Lock()


def _import(engine: str) -> None:
    if engine == "elastix":
        import itk

        itk.ElastixRegistrationMethod  # noqa: B018 (itk loads lazily: touching it loads elastix's modules)
    elif engine == "ants":
        import ants  # noqa: F401
        from ants.internal import get_lib_fn  # noqa: F401
    else:
        raise ValueError(f"unknown engine '{engine}': choose elastix or ants")
    _loaded.add(engine)


def _preload(engines: tuple[str, ...]) -> None:
    for engine in engines:
        try:
            _import(engine)
        except Exception:  # noqa: BLE001 (require() imports it again in its caller's thread and raises there)
            pass


def preload(engines: Iterable[str]) -> None:
    """Start importing ``engines`` (in turn, in one daemon thread) and return at once."""
    with _lock:
        wanted = tuple(e for e in dict.fromkeys(engines) if e in ENGINES and e not in _loaded and e not in _preloads)
        if not wanted:
            return
        thread = threading.Thread(target=_preload, args=(wanted,), name="mmreg-engine-import", daemon=True)
        for engine in wanted:
            _preloads[engine] = thread
        thread.start()


def require(engine: str) -> float:
    """Make ``engine`` importable now: wait for its preload, or import it here. Returns the seconds it took
    (0 when it was loaded already). Raises the import's own error if the package is missing."""
    started = time.perf_counter()
    with _lock:
        preloading = _preloads.get(engine)
    if preloading is not None:
        preloading.join()
    if engine not in _loaded:
        _import(engine)
    return time.perf_counter() - started


def loaded() -> list[str]:
    """The engines whose import has completed in this process."""
    return [engine for engine in ENGINES if engine in _loaded]
