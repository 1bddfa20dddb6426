"""Whether a 2D result's size makes sense: the usual cause of a wrong one is a wrong pixel size.

Histology and cleared tissue shrink or swell by tens of percent, not by factors. A slide scanned at 0.2 mm whose
TIFF states 1 mm (or a pixel size typed in the wrong unit) makes its tissue 5 times larger than the MR slice's:
the rigid preset, which keeps the size, ended 471 mm off, and a preset that scales found the factor 5 and
said nothing. Two checks, both warnings (a partial section, or a slide of the brain alone against a whole-head
slice, changes the areas too):

* a preset that keeps the size, when the scale the start search prefers over sizes (:mod:`.two_d_start`) lies
  beyond AREA_SCALE_LIMIT either way: a section shrunk 30% (0.70) registered rigidly ended 23 mm off, silently,
  under the earlier limit of 1.5 (a helper's sweep, thirty-fifth session). The foregrounds' areas alone read 0.83
  for a slide of the brain alone against a whole head, and 1.11 for that slide with its pixel size 33% too large
  (15.9 mm off, silent; thirty-seventh session): the search finds 0.99 and 1.33;
* a preset that scales, when the result's scale (the geometric mean of its singular values) lies beyond
  RESULT_SCALE_LIMIT either way.
"""

from __future__ import annotations

import numpy as np

AREA_SCALE_LIMIT = 1.25
RESULT_SCALE_LIMIT = 2.0


def _pixel_note(pixel_mm: dict, pixel_source: dict) -> str:
    return ", ".join(f"{role} {pixel_mm[role]:g} mm ({'given' if pixel_source[role] == 'given' else 'from the file'})"
                     for role in ("fixed", "moving"))  # fmt: skip


def size_warnings(
    tissue_scale: float, matrix: np.ndarray, preset: str, scales: bool, pixel_mm: dict, pixel_source: dict
) -> list[str]:
    """The warnings (none, or one) on a 2D result's size: ``tissue_scale``, the scale the start search prefers
    (moving mm per fixed mm), ``matrix`` (3x3, fixed -> moving mm), whether ``preset`` ``scales``, and the pixel
    sizes (mm) with where each came from."""
    pixels = _pixel_note(pixel_mm, pixel_source)
    if not scales and not 1 / AREA_SCALE_LIMIT <= tissue_scale <= AREA_SCALE_LIMIT:
        return [(
            f"the moving tissue matches best at {tissue_scale:.2f} times the fixed tissue's size (a search over "
            f"sizes), and the {preset} preset keeps the size: check the pixel sizes ({pixels}; --fixed-pixel-size, "
            "--moving-pixel-size); if the sizes are right and the tissue did shrink or swell, use --preset "
            "similarity; if one section is partial, check the result"
        )]
    result_scale = float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, float)[:2, :2]))))
    if scales and not 1 / RESULT_SCALE_LIMIT <= result_scale <= RESULT_SCALE_LIMIT:
        return [(
            f"the result scales the moving image by {result_scale:.2f} (moving mm per fixed mm): tissue shrinks or "
            f"swells by far less, so a pixel size is likely wrong ({pixels}): check them "
            "(--fixed-pixel-size, --moving-pixel-size)"
        )]
    return []
