"""The library version, recorded in every result's provenance, and how the versions of what it uses are read."""

from __future__ import annotations

__version__ = "0.1.0"


def distribution_version(distribution: str, fresh: bool = False) -> str | None:
    """The installed version of a pip distribution (``SimpleITK``, ``itk-elastix``), None when it is not installed.
    ``fresh``: look again after an install in this process (Python caches what it found on its path)."""
    import importlib
    from importlib import metadata

    if fresh:
        importlib.invalidate_caches()
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
