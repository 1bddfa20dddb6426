"""Importing the engines' packages: elastix about 1 s (:mod:`.itk_elastix`), ANTs 0.1 s (:mod:`.ants_library`).

The import cannot overlap other work in the same process: ITK spends it initialising its SWIG modules
(C code that holds the GIL), so a thread doing the job meanwhile waits for the GIL. A process that has to
wait for it (a warm worker started ahead of its first job) imports in its main thread; everything else
imports when the engine first runs, so that a job with bad input fails before paying for it.
"""

from __future__ import annotations

import gc
import time

from .registry import ENGINE_NAMES, engine_spec

_loaded: set[str] = set()


def load(engine: str) -> float:
    """Import ``engine``'s package in this thread if it is not yet; returns the seconds it took (0 if loaded).
    Raises the import's own error if the package is missing."""
    if engine in _loaded:
        return 0.0
    runner = engine_spec(engine).implementation()
    started = time.perf_counter()
    collecting = gc.isenabled()
    gc.disable()  # ITK creates ~100k long-lived objects: collections during the import cost ~5% of it
    try:
        runner.import_engine()
    finally:
        if collecting:
            gc.enable()
    _loaded.add(engine)
    return time.perf_counter() - started


def loaded() -> list[str]:
    """The engines whose import has completed in this process."""
    return [engine for engine in ENGINE_NAMES if engine in _loaded]
