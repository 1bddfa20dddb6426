"""Whether 2D slides and sections fit in memory, judged from their headers before a pixel is read (exit 2 naming the
fix): a 20000 x 20000 slide (400 MB as a file) had ended register2d in a NumPy MemoryError traceback, and a stack
of three in one after its whole alignment (a helper's sweep)."""

from __future__ import annotations

import math
import re

from .images2d import Header2D
from .memory import check_memory

# float32 copies per pixel a run holds at its peak besides the file's own pixels, measured on a 20000 x 20000
# uint8 slide against a small one (peak RSS, a helper's sweep): register2d 3.8 GB (2.4 copies), 13.7 GB with
# --checkerboard (8.6); mmreg stack of three such sections 6.8 GB (the volume, 1.2 GB, and 3.5 copies of one).
REGISTER_2D_COPIES = 3.0
CHECKERBOARD_COPIES = 9.0
STACK_SECTION_COPIES = 4.0
SLIDE_FIX = ("save a smaller version: a lower level of the slide's pyramid, or the slide scaled down (its pixel size "
             "then larger), or crop it to the tissue; or free memory (close other programs)")


def _pixels(header: Header2D) -> int:
    return math.prod(header.size)


def _file_bytes(header: Header2D) -> int:
    bits = re.match(r"(\d+)-bit", header.component_type or "")  # "16-bit unsigned integer"; None: Pillow's 8-bit
    return _pixels(header) * header.components * (int(bits.group(1)) // 8 if bits else 1)


def check_slides_fit(headers: list[Header2D], checkerboard: bool = False) -> None:
    """Refuse a 2D registration of these slides that would not fit in the free memory."""
    copies = CHECKERBOARD_COPIES if checkerboard else REGISTER_2D_COPIES
    needed = sum(_file_bytes(header) + 4 * copies * _pixels(header) for header in headers)
    detail = ", ".join(f"{header.path.name} {' x '.join(map(str, header.size))}" for header in headers)
    check_memory(int(needed), "the 2D registration", SLIDE_FIX, detail)


def check_sections_fit(headers: list[Header2D]) -> None:
    """Refuse a stack of these sections whose volume and working copies would not fit in the free memory."""
    if not headers:
        return
    largest = max(headers, key=_pixels)
    needed = len(headers) * _file_bytes(largest) + 4 * STACK_SECTION_COPIES * _pixels(largest)
    detail = f"{len(headers)} sections of up to {' x '.join(map(str, largest.size))} pixels"
    check_memory(int(needed), "the stack", SLIDE_FIX, detail)
