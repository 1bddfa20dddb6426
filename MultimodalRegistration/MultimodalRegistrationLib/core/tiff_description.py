"""The pixel size a microscope's TIFF states in its description rather than in its resolution tags, which ITK reads:
an OME-TIFF's OME-XML (PhysicalSizeX, in micrometres unless PhysicalSizeXUnit says otherwise) and an ImageJ TIFF's
'unit=micron' beside its pixels per unit (resolution unit 'none'). Both had been refused as stating no pixel size
(a helper's sweep of microscopy files)."""

from __future__ import annotations

import math
import os
import re

# millimetres per unit, as OME and ImageJ write them
_UNIT_MM = {"nm": 1e-6, "µm": 1e-3, "μm": 1e-3, "um": 1e-3, "micron": 1e-3, "microns": 1e-3, "\\u00B5m": 1e-3,
            "mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4, "in": 25.4}  # fmt: skip
_OME_SIZE = re.compile(r'PhysicalSizeX="([^"]+)"')
_OME_UNIT = re.compile(r'PhysicalSizeXUnit="([^"]+)"')
_IMAGEJ_UNIT = re.compile(r"^unit=(.+)$", re.MULTILINE)


def described_pixel_mm(path: str | os.PathLike) -> float | None:
    """The pixel size (mm) the first page's description states (OME-XML, or ImageJ's unit with the resolution),
    or None when it states none, or Pillow cannot read the file."""
    try:
        from PIL import Image

        with Image.open(path) as opened:
            tags = getattr(opened, "tag_v2", {})
            description, resolution = tags.get(270), tags.get(282)
    except Exception:  # Pillow cannot open it (a BigTIFF, a damaged file): ITK's reading stands
        return None
    if not isinstance(description, str):
        return None
    size = _ome_pixel_mm(description)
    if size is None and description.startswith("ImageJ=") and resolution:
        unit = _IMAGEJ_UNIT.search(description)
        scale = _mm_per(unit.group(1)) if unit else None
        size = scale / float(resolution) if scale and float(resolution) > 0 else None
    return size if size is not None and math.isfinite(size) and size > 0 else None


def _mm_per(unit: str) -> float | None:
    """Millimetres per ``unit``, read as written or as UTF-8 read as Latin-1 ('Âµm', as Pillow gives OME's µm)."""
    try:
        recoded = unit.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        recoded = unit
    return _UNIT_MM.get(unit.strip()) or _UNIT_MM.get(recoded.strip())


def _ome_pixel_mm(description: str) -> float | None:
    found = _OME_SIZE.search(description)
    if found is None:
        return None
    unit = _OME_UNIT.search(description)
    scale = _mm_per(unit.group(1) if unit else "µm")
    try:
        return float(found.group(1)) * scale if scale else None
    except ValueError:
        return None
