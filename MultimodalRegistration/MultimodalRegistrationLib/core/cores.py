"""How many cores this process may use: the default engine threads and batch workers are shares of it."""

from __future__ import annotations

import math
import os
from pathlib import Path

# A container's CPU quota: cgroup v2's "quota period" (or "max"), else cgroup v1's two files (quota -1: none).
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _quota_cores() -> int | None:
    """The cores a container's CPU quota allows (rounded up), None without a quota."""
    try:
        quota, period = CGROUP_V2_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = (path.read_text().strip() for path in CGROUP_V1_QUOTA)
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def usable_cores() -> int:
    """Cores this process may run on, at least 1: the machine's, narrowed to its CPU affinity (taskset, a SLURM or
    PBS job's cores) and to a container's CPU quota (docker --cpus). os.cpu_count() counts the whole machine: a
    batch on 4 cores of a 64-core node started 32 workers of 64 engine threads each."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = _quota_cores()
    return max(1, min(cores, quota) if quota else cores)
