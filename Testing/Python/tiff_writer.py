"""A minimal little-endian TIFF writer for tests of files Pillow does not write (two channels that are not grey and
alpha, min-is-white, tiles, 64-bit floats): baseline tags only, one strip or a grid of tiles."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_TYPES = {3: "H", 4: "I", 5: "II"}  # SHORT, LONG, RATIONAL


def write_tiff(path: Path, pixels: np.ndarray, photometric: int = 1, sample_format: int = 1, tile: int | None = None,
               extra: dict[int, tuple[int, list]] | None = None, big_endian: bool = False) -> Path:  # fmt: skip
    """``pixels`` (rows, columns[, samples]) as a TIFF; ``tile``: square tiles of that side instead of one strip;
    ``extra``: more tags, tag -> (type, values); ``big_endian``: a Motorola ("MM") file."""
    order = ">" if big_endian else "<"
    pixels = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder(order)))
    rows, columns = pixels.shape[:2]
    samples = 1 if pixels.ndim == 2 else pixels.shape[2]
    if tile:
        padded = np.zeros((-(-rows // tile) * tile, -(-columns // tile) * tile, *pixels.shape[2:]), pixels.dtype)
        padded[:rows, :columns] = pixels
        chunks = [padded[r:r + tile, c:c + tile].tobytes() for r in range(0, padded.shape[0], tile)
                  for c in range(0, padded.shape[1], tile)]  # fmt: skip
    else:
        chunks = [pixels.tobytes()]
    data, offsets = b"", []
    for chunk in chunks:
        offsets.append(8 + len(data))
        data += chunk
    tags = {256: (3, [columns]), 257: (3, [rows]), 258: (3, [pixels.dtype.itemsize * 8] * samples), 259: (3, [1]),
            262: (3, [photometric]), 277: (3, [samples]), 339: (3, [sample_format] * samples), **(extra or {})}
    if tile:
        tags.update({322: (3, [tile]), 323: (3, [tile]), 324: (4, offsets), 325: (4, [len(c) for c in chunks])})
    else:
        tags.update({273: (4, offsets), 278: (3, [rows]), 279: (4, [len(chunks[0])])})
    ifd_at = 8 + len(data)
    overflow_at = ifd_at + 2 + 12 * len(tags) + 4
    entries, overflow = b"", b""
    for tag, (kind, values) in sorted(tags.items()):
        packed = struct.pack(order + _TYPES[kind][0] * (len(values) * len(_TYPES[kind])) if kind != 5 else
                             order + "I" * (2 * len(values)), *(values if kind != 5 else
                                                            [v for value in values for v in value]))  # fmt: skip
        count = len(values)
        if len(packed) <= 4:
            entries += struct.pack(order + "HHI", tag, kind, count) + packed.ljust(4, b"\0")
        else:
            entries += struct.pack(order + "HHII", tag, kind, count, overflow_at + len(overflow))
            overflow += packed
    path.write_bytes(struct.pack(order + "2sHI", b"MM" if big_endian else b"II", 42, ifd_at) + data
                     + struct.pack(order + "H", len(tags)) + entries + struct.pack(order + "I", 0) + overflow)  # fmt: skip
    return path
