"""Where the small real images live: ``../shared/data`` beside the repository (never copied into it), or the
folder named by ``MMREG_SHARED_DATA`` (a worktree elsewhere). Tests and benchmarks skip without them."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
SHARED_DATA = Path(os.environ.get("MMREG_SHARED_DATA") or ROOT.parent / "shared" / "data")
