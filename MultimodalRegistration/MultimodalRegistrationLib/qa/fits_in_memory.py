"""Whether measuring a registration (mmreg qa) fits in the memory this machine has free, from the files' headers,
before any is read: QA had no such check (a helper's sweep), where a registration of the same pair is refused."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core import memory
from ..core.file_checks import DOWNSAMPLE_CHOICES_MM, ImageFileInfo, downsampled, read_image_file_info
from ..core.memory import HEADROOM_BYTES, MASK_FLOAT32_COPIES, QA_FLOAT32_COPIES, check_memory


def qa_bytes(images: Sequence[ImageFileInfo], labels: Sequence[ImageFileInfo] = ()) -> int:
    """Peak memory (bytes) of QA on ``images`` (fixed, moving) with these label, segmentation or mask files."""
    total = 0.0
    for info, copies in [(i, QA_FLOAT32_COPIES) for i in images] + [(i, MASK_FLOAT32_COPIES) for i in labels]:
        total += info.bytes_in_memory + 4.0 * copies * math.prod(int(s) for s in info.size[:3])
    return int(total)


def check_qa_fits_in_memory(fixed: str, moving: str, labels: Sequence[tuple[str, str]] = ()) -> None:
    """Refuse (InputError naming the fix) QA of the ``fixed`` and ``moving`` image files with ``labels`` ((path,
    role) of labelmaps, segmentations, masks) when this machine's free memory cannot hold it."""
    images = [read_image_file_info(fixed, "fixed image"), read_image_file_info(moving, "moving image")]
    others = [read_image_file_info(path, role) for path, role in labels if path]
    free = memory.available_bytes()  # looked up at each call: tests set it
    needed = qa_bytes(images, others)
    if free is None or needed <= free - HEADROOM_BYTES:
        return
    # mmreg prep downsamples the images only: the labelmaps and masks stay as they are
    fits = [mm for mm in DOWNSAMPLE_CHOICES_MM
            if qa_bytes([downsampled(i, mm) for i in images], others) <= free - HEADROOM_BYTES]
    fix = (f"measure on copies read with mmreg prep --downsample-to {fits[0]:g} (a TRE from points does not depend on "
           "the voxel size), or use a machine with more memory" if fits else "use a machine with more memory")
    check_memory(needed, "measuring the registration", fix, ", ".join(f"{i.role} {i.describe()}" for i in images))
