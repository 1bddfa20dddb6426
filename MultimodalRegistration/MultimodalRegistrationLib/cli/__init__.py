"""cli: ``mmreg`` and its subcommands (register, prep, prealign, qa, presets, demo)."""

from .main import main

__all__ = ["main"]
