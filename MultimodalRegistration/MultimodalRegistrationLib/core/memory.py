"""Memory: what this machine has free, what reading or registering images needs, and a refusal before
the allocation instead of a machine that swaps for an hour or a process the kernel kills without a word.

All sizes are bytes (decimal kB, MB and GB in messages, like a system monitor).
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

# Peak memory of one registration per voxel, in float32 copies of the images (4 bytes per voxel each).
# Measured with register() in a fresh process: peak RSS (resource.getrusage) after the run minus the
# peak after a warm-up run on a 4x shrunk pair (so the engines' imports and libraries are not counted),
# for the phantom CT/MR pair at 160x160x112 and 256x256x180 float32 voxels (47 MB per image at the
# larger size), on this 2-core machine:
#   rigid, --init auto:  elastix 5.2 and 4.3 copies, ANTs 5.8 and 5.2 (the images as read included)
# Rounded up, with room for the resampled output volume.
RUN_FLOAT32_COPIES = 6.0
# Deformable presets, measured the same way (unguided) on the phantom pair made on fixed/moving grids of 0.5 to
# 2.25 mm voxels, 0.1-8 M voxels an image, and fitted per fixed voxel, per moving voxel and, for ANTs, per voxel of
# SyN's displacement fields, which live on the fixed grid at SyN's finest level (the fixed voxels / its shrink factor
# cubed: 2 mm in the preset, so full resolution for voxels of 1.5 mm and up, an eighth of it at 1 mm):
#   ANTs:    10.2 per fixed voxel, 1.9 per moving voxel, 71.9 per field voxel (five grids, 209-956 MB above the
#            warm-up, the fit within 1 MB of each; a sixth, measured after, 2% off). At 1.5 x 1.5 x 2.25 mm SyN took
#            83 copies of the fixed image, at 1 mm 20.
#   elastix: 4.5 per fixed voxel, 6.9 per moving voxel (two grids; a third, measured after, 1% off; its B-spline
#            grid is small), but 6.3 per fixed voxel at 200^3 x 0.5 mm (a run from a head cut to 100 mm that ended
#            79 mm off): 6.5 counted.
# (fixed, moving) below, the images as read added, rounded up.
DEFORMABLE_FLOAT32_COPIES = {"elastix": (7.5, 8.0), "ants": (12.0, 3.0)}
# Per voxel of the dense displacement fields, on the fixed grid at their level (elastix keeps none).
FIELD_FLOAT32_COPIES = {"elastix": 0.0, "ants": 75.0}
# A mask is held as read (uint8) plus about one float32 copy by the engine.
MASK_FLOAT32_COPIES = 1.0
# Guidance by segmentations (--fixed-segmentation/--moving-segmentation), measured the same way with the phantom's
# brain segmented on each grid (1 pair; with its skull and its eyes: 3 pairs), the segmentations read in the run:
# peak above the unguided run's, in float32 copies per image voxel (160x160x112; 256x256x180):
#   rigid, 1 pair:  elastix +14.5; +7.1    ANTs +14.5; +10.4
#   rigid, 3 pairs: elastix +20.4; +15.5   ANTs +22.1 (256x256x180 only)
#   deformable, 1 pair, 160x160x112: elastix +9.9, ANTs SyN +10.2 (its unguided run: 43.6 copies, above
#   DEFORMABLE_FLOAT32_COPIES: SyN's finest level is 2 mm, full resolution for these 1.5-2.25 mm voxels;
#   not measured at 256x256x180, whose 0.94-1.4 mm voxels it halves)
# The guided start's scores (257 poses x the surface points, float64) make the peak at 160x160x112, whatever the
# engine; at 256x256x180 the engine's: ANTs holds each distance map as one more image pair, with its pyramid.
# Fitted per engine as a fixed part (GUIDED_BYTES and GUIDED_FLOAT32_COPIES per image: fields of view, edge
# distances, the start's scores) and a part per pair and image (SEGMENT_FLOAT32_COPIES: its mask, distance map,
# surface distance map and the engine's copies), rounded up; the segmentations as read count on their own.
# ANTs draws landmarks as one more image pair (counted as a segment pair; not measured), elastix as points.
GUIDED_BYTES = 256 * 1024**2
GUIDED_FLOAT32_COPIES = {"elastix": 1.0, "ants": 3.5}
SEGMENT_FLOAT32_COPIES = {"elastix": 4.5, "ants": 6.0}
# Leave this much of the free memory to everything else (the OS, Slicer, the page cache).
HEADROOM_BYTES = 256 * 1024**2

_ITEM_BYTES = {"uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4, "uint64": 8, "int64": 8,
               "float32": 4, "float64": 8, "complex64": 8, "complex128": 16}  # fmt: skip


def item_bytes(pixel_type: str) -> int:
    """Bytes of one component of a pixel type named like numpy (``uint16``, ``float32``); 8 if unknown."""
    return _ITEM_BYTES.get(str(pixel_type), 8)


def format_bytes(count: float) -> str:
    """A byte count for people, in decimal units like a system monitor: '128 GB', '1.3 GB', '240 kB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{int(count)} bytes"


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroup_room() -> int | None:
    """Memory left under a container's limit (cgroup v2 or v1), None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):  # fmt: skip
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return max(int(limit) - usage, 0)
    return None


def _address_space_room() -> int | None:
    """Address space left under this process's RLIMIT_AS (``ulimit -v``, as batch schedulers set it), None without
    one. Under such a limit numpy raised MemoryError mid-run while MemAvailable showed gigabytes free (a helper's
    sweep)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        size = next((int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                     if line.startswith("VmSize:")), 0)  # fmt: skip
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    return max(soft - size, 0)


class _MemoryStatusEx(ctypes.Structure):
    """Windows' MEMORYSTATUSEX."""

    _fields_ = [("dwLength", ctypes.c_uint32), ("dwMemoryLoad", ctypes.c_uint32)] + [
        (name, ctypes.c_ulonglong)
        for name in ("ullTotalPhys", "ullAvailPhys", "ullTotalPageFile", "ullAvailPageFile", "ullTotalVirtual",
                     "ullAvailVirtual", "ullAvailExtendedVirtual")
    ]  # fmt: skip


def _windows_available(kernel32) -> int | None:
    """Free physical memory from ``kernel32.GlobalMemoryStatusEx``, None if the call fails."""
    status = _MemoryStatusEx()
    status.dwLength = ctypes.sizeof(_MemoryStatusEx)
    if not kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return None
    return int(status.ullAvailPhys)


def _macos_available(libc) -> int | None:
    """Installed memory (``hw.memsize``) times the share the kernel counts free (``kern.memorystatus_level``, %),
    None if either is missing: free pages alone are near zero by design, and the page size differs under Rosetta."""

    def read(name: str, kind):
        value, size = kind(), ctypes.c_size_t(ctypes.sizeof(kind))
        if libc.sysctlbyname(name.encode(), ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0)) != 0:
            return None
        return int(value.value)

    total, level = read("hw.memsize", ctypes.c_uint64), read("kern.memorystatus_level", ctypes.c_uint32)
    if not total or level is None or not 0 < level <= 100:
        return None
    return total * level // 100


def available_bytes() -> int | None:
    """Memory this process can still take without swapping (bytes), or None if the system does not say.

    Linux: ``MemAvailable`` of /proc/meminfo, lowered to a container's remaining cgroup limit and to the address
    space left under ``ulimit -v``.
    Windows: ``ullAvailPhys`` of GlobalMemoryStatusEx. macOS: :func:`_macos_available`.
    Elsewhere: free physical pages from ``os.sysconf`` where the system has them.
    """
    if os.name == "nt":
        try:
            return _windows_available(ctypes.windll.kernel32)
        except (AttributeError, OSError):
            return None
    if sys.platform == "darwin":
        try:
            return _macos_available(ctypes.CDLL(None))
        except (AttributeError, OSError):
            return None
    free = _meminfo_available()
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    rooms = [room for room in (free, _cgroup_room(), _address_space_room()) if room is not None]
    return min(rooms)


@dataclass(frozen=True)
class GuidanceLoad:
    """What guidance adds to a run: ``pairs`` paired segments (0: no segmentations), ``landmarks`` given,
    and the two segmentations as read (``segmentation_bytes``, bytes: read whole whatever the images' grids)."""

    pairs: int = 0
    landmarks: bool = False
    segmentation_bytes: int = 0

    def copies(self, engine: str = "") -> float:
        """float32 copies per image voxel that this guidance adds with ``engine`` ("elastix", "ants"; the larger
        of the two for another name)."""
        fixed, per_pair = (GUIDED_FLOAT32_COPIES.get(engine, max(GUIDED_FLOAT32_COPIES.values())),
                           SEGMENT_FLOAT32_COPIES.get(engine, max(SEGMENT_FLOAT32_COPIES.values())))  # fmt: skip
        channels = self.pairs + int(self.landmarks and engine != "elastix")
        return (fixed if self.pairs else 0.0) + per_pair * channels

    def fixed_bytes(self) -> int:
        """Bytes this guidance adds whatever the images' size: the segmentations as read, the start's scores."""
        return self.segmentation_bytes + (GUIDED_BYTES if self.pairs else 0)


# mmreg qa (a rigid and a displacement-field transform alike), peak RSS with /usr/bin/time on int16 pairs of 128^3,
# 256^3 and 320^3 voxels: 270, 475 and 730 MB, 3.5-4 float32 copies of one image above the smallest for the two
# images: 2 per image, beside each as read.
QA_FLOAT32_COPIES = 2.0

OUT_OF_MEMORY_HINT = (
    "not enough memory for these images: downsample them (--downsample-to auto, or mmreg prep --downsample-to MM), "
    "crop them to the anatomy (mmreg prep), or give the run more memory (close other programs; raise a batch job's "
    "memory limit or ulimit -v)"
)


def image_copies(role: int, deformable: bool = False, engine: str = "", field_shrink: int = 1) -> float:
    """float32 copies per voxel of the fixed (``role`` 0) or moving (1) image that an unguided run holds at its peak,
    the image as read counted as one. ``field_shrink``: ANTs SyN's finest level's shrink factor (its displacement
    fields live on the fixed grid shrunk by it; 1, full resolution, is the most)."""
    if not deformable:
        return RUN_FLOAT32_COPIES
    per_role = DEFORMABLE_FLOAT32_COPIES.get(engine) or tuple(map(max, *DEFORMABLE_FLOAT32_COPIES.values()))
    if role != 0:
        return per_role[1]
    fields = FIELD_FLOAT32_COPIES.get(engine, max(FIELD_FLOAT32_COPIES.values()))
    return per_role[0] + fields / max(1, field_shrink) ** 3


def estimate_run_bytes(
    sizes_and_types: Iterable[tuple[Sequence[int], str]],
    masks: Iterable[tuple[Sequence[int], str]] = (),
    deformable: bool = False,
    guidance: GuidanceLoad | None = None,
    engine: str = "",
    field_shrink: int = 1,
) -> int:
    """Peak memory (bytes) of registering images of these sizes (voxels per axis) and pixel types
    (numpy names such as ``uint16``), fixed then moving, with these masks, guided by ``guidance`` (None: unguided).

    Each image is held as read, and the engines hold float32 copies, pyramids and the resampled moving
    image: :func:`image_copies` float32 copies in all (the copy as read replaced by the native type; a deformable
    ANTs run's fixed image the most, by its displacement fields at ``field_shrink``); guidance
    adds :meth:`GuidanceLoad.copies` per image voxel and :meth:`GuidanceLoad.fixed_bytes`.
    """
    guided = guidance.copies(engine) if guidance is not None else 0.0
    total = 0.0 if guidance is None else float(guidance.fixed_bytes())
    for role, (size, pixel_type) in enumerate(sizes_and_types):
        voxels = float(math.prod(int(s) for s in size))
        copies = image_copies(role, deformable, engine, field_shrink) + guided
        total += voxels * (item_bytes(pixel_type) + 4 * (copies - 1))
    for size, pixel_type in masks:
        voxels = float(math.prod(int(s) for s in size))
        total += voxels * (item_bytes(pixel_type) + 4 * MASK_FLOAT32_COPIES)
    return int(total)


def check_memory(needed_bytes: int, what: str, fix: str, detail: str = "") -> None:
    """Refuse work needing more memory than this machine has free, before anything is allocated.

    ``what`` names who needs it ("fixed image", "the registration"), ``detail`` what it is
    ("4000×4000×4000 uint16"), ``fix`` what to do. Does nothing when free memory cannot be known.
    """
    free = available_bytes()
    if free is None or needed_bytes <= max(free - HEADROOM_BYTES, 0):
        return
    shown = f" ({detail})" if detail else ""
    raise InputError(
        f"{what} needs about {format_bytes(needed_bytes)} in memory{shown}, more than the {format_bytes(free)} "
        f"this machine has free: {fix}"
    )
