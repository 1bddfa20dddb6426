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
            "mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4, "in": 25.4, "Å": 1e-7, "micrometer": 1e-3,
            "micrometre": 1e-3, "nanometer": 1e-6, "millimeter": 1.0}  # fmt: skip
_OME_SIZE = {axis: re.compile(f'PhysicalSize{axis}="([^"]+)"') for axis in "XY"}
_OME_UNIT = {axis: re.compile(f'PhysicalSize{axis}Unit="([^"]+)"') for axis in "XY"}
_IMAGEJ_UNIT = re.compile(r"^unit=(.+)$", re.MULTILINE)


def described_pixel_mm(path: str | os.PathLike) -> tuple[float, float] | None:
    """The pixel sizes (mm: columns, rows) the first page's description states (OME-XML, or ImageJ's unit with the
    X and Y resolutions; rows as columns when only these are given), or None when it states none, or Pillow cannot
    read the file."""
    try:
        from PIL import Image

        with Image.open(path) as opened:
            tags = getattr(opened, "tag_v2", {})
            description, resolutions = tags.get(270), (tags.get(282), tags.get(283))
    except Exception:  # Pillow cannot open it (a BigTIFF, a damaged file): ITK's reading stands
        return None
    if not isinstance(description, str):
        return None
    sizes = [_ome_pixel_mm(description, axis) for axis in "XY"]
    if sizes[0] is None and description.startswith("ImageJ=") and resolutions[0]:
        unit = _IMAGEJ_UNIT.search(description)
        scale = _mm_per(unit.group(1)) if unit else None
        sizes = [scale / float(r) if scale and r and float(r) > 0 else None for r in resolutions]
    column, row = sizes[0], sizes[1] if sizes[1] is not None else sizes[0]
    finite = column is not None and all(math.isfinite(v) and v > 0 for v in (column, row))
    return (column, row) if finite else None


def _mm_per(unit: str) -> float | None:
    """Millimetres per ``unit``, read as written or as UTF-8 read as Latin-1 ('Âµm', as Pillow gives OME's µm)."""
    try:
        recoded = unit.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        recoded = unit
    return _UNIT_MM.get(unit.strip()) or _UNIT_MM.get(recoded.strip())


def _ome_pixel_mm(description: str, axis: str = "X") -> float | None:
    found = _OME_SIZE[axis].search(description)
    if found is None:
        return None
    # OME's default unit is µm; a Y size without its unit beside an X unit is read in the X unit (a file at 1000:1
    # pixels is likelier written carelessly than made so)
    unit = _OME_UNIT[axis].search(description) or _OME_UNIT["X"].search(description)
    scale = _mm_per(unit.group(1) if unit else "µm")
    try:
        return float(found.group(1)) * scale if scale else None
    except ValueError:
        return None
