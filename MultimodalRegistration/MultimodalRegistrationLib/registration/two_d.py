"""2D registration (issue 23): a histology or microscopy image to a 2D image of another modality.

Both images are read by :func:`core.images2d.read_image_2d` (RGB to BT.601 luminance, pixel size from the
file or given), so pixel (column i, row j) is at ``(i px, j px)`` mm in each. The result maps fixed points
to moving points, ``x_moving = A x_fixed + t`` (mm), like every library transform.

1. an image whose pixels are more than twice as fine as the other image's is averaged down (bins of whole
   pixels) to about half the other's pixel size first: detail finer than that has no partner in the other
   image, and a slide scanned at 0.1 mm against a 1 mm slice would otherwise cost the search and the
   engine's pyramids seconds for nothing. The QA and the outputs use the images as given.
2. start: the 2D any-pose search (:mod:`.two_d_start`: every rotation, and scale for a preset that scales);
3. the engine's 2D preset (``Presets/presets_2d.json``) refines it (:func:`engines.run.run_engine_2d`);
4. a preset whose manifest entry names another (``"also"``: affine and similarity alone, without the rigid
   stage first) runs that one too from the same start, and both run from the search's best pose at scale 1
   too when the start changes the size (``Start2D.unscaled``), and, for an affine preset, from the pose that
   matches the tissues' second moments when it scores higher (``Start2D.stretched``, :mod:`.two_d_stretch`: tissue
   shrunk unevenly); the result with the higher mutual information
   (:func:`.two_d_start.mutual_information`) is kept. On generated pairs each path alone failed on one case
   (rigid first: 0.9 and 3.8 mm off at -150 deg with 8%/2% stretch; affine alone: 1.4 and 2.7 mm off at 35 deg
   with 7%/3% shrink) and the mutual information chose the right one in all four (0.06-0.14 mm).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ..core.errors import EngineError
from ..core.images2d import Image2D, working_bin
from ..core.outliers import clip_outliers
from ..core.rotations import rotation_2d_deg
from ..core.transforms import affine_2d
from ..engines.presets import companion_preset, load_preset
from ..engines.request_2d import EngineRequest2D
from ..engines.run import lost_overlap, run_engine_2d
from .two_d_mirror import mirror_warning
from .two_d_size import size_warnings
from .two_d_start import Start2D, mutual_information, search_start_2d
from .two_d_weak import weak_warning_2d


@dataclass
class Registration2D:
    """``matrix`` (3x3, mm): ``x_moving = matrix @ x_fixed``; the start it came from, the engine, preset, its
    files and the engine's version and threads that made it, its log, and seconds (``search_s``, engine import
    and registration)."""

    matrix: np.ndarray
    start: Start2D
    engine: str
    preset: str
    version: str
    log: str
    timings: dict = field(default_factory=dict)
    preset_files: list[str] = field(default_factory=list)
    threads: int = 1
    candidates: list[dict] = field(default_factory=list)  # each preset run: name, mutual_information, kept
    working_pixel_mm: dict = field(default_factory=dict)  # {"fixed", "moving"}: the pixel sizes registered (mm)
    warnings: list[str] = field(default_factory=list)  # a size that suggests a wrong pixel size (:mod:`.two_d_size`)

    def transform(self) -> sitk.AffineTransform:
        """The result as a 2D ITK affine transform (fixed -> moving; written as AffineTransform_double_2_2)."""
        return affine_2d(self.matrix)

    @property
    def angle_deg(self) -> float:
        """The rotation of the result (degrees, counter-clockwise from the x axis to y)."""
        return rotation_2d_deg(self.matrix)

    @property
    def scales(self) -> tuple[float, float]:
        """The singular values of the linear part (moving mm per fixed mm): 1, 1 for a rigid result."""
        values = np.linalg.svd(self.matrix[:2, :2], compute_uv=False)
        return float(values[0]), float(values[1])


def working_resolution(
    image: sitk.Image, mask: sitk.Image | None, other_pixel_mm: float
) -> tuple[sitk.Image, sitk.Image | None]:
    """``image`` (and its mask) averaged in bins of whole pixels down to about half ``other_pixel_mm`` when its
    own pixels are finer than that (see the module notes); else as they are. Same physical frame (mm)."""
    factor = working_bin(min(image.GetSpacing()), other_pixel_mm)
    if factor == 1:
        return image, mask
    shrunk = sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), [factor, factor])
    if mask is not None:
        mask = sitk.Cast(sitk.BinShrink(sitk.Cast(mask != 0, sitk.sitkFloat32), [factor, factor]) > 0.5, sitk.sitkUInt8)
    return shrunk, mask


# Below this share of the fixed image inside the moving one at the start, the engine samples the fixed image only
# there: a 150 mm slide holding half a brain against a whole-head slice stopped elastix ("Too many samples map
# outside moving image buffer: 496 / 2048", exit 1) from a start 1.1 mm off the truth (a reviewer's case).
FOOTPRINT_SHARE = 0.5
RETRIES = 2  # further seeds tried when the engine lost its samples


def moving_footprint(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray) -> sitk.Image | None:
    """The fixed pixels that ``matrix`` (fixed -> moving mm) maps inside the moving image, as a mask, when they are
    fewer than FOOTPRINT_SHARE of the fixed image; else None (the whole fixed image is sampled)."""
    inside = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    inside.CopyInformation(moving)
    footprint = sitk.Resample(inside, fixed, affine_2d(matrix), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    share = float(sitk.GetArrayFromImage(footprint).mean())
    return footprint if 0.0 < share < FOOTPRINT_SHARE else None


class _Run(NamedTuple):
    """One preset run from one start, and the mutual information of its result."""

    mutual_information: float
    preset: object  # engines.presets.Preset
    output: object  # engines.run's 2D output
    start: Start2D
    seed: int  # the sampler's seed the run ended with (:func:`_run_2d`)


def _run_2d(request: EngineRequest2D) -> tuple[object, int, float]:
    """The engine's 2D run, the seed it used and the seconds its failed attempts took: when it lost its samples,
    again from the next seeds, up to RETRIES times. Two aligned copies of one MNI slice (or one against its
    inverted contrast) lost them at seed 0, exit 1 with a hint to prealign, and registered at seeds 1-3 (a
    helper's sweep)."""
    started = time.perf_counter()
    for attempt in range(RETRIES + 1):
        seed = request.seed + attempt
        try:
            failed_s = time.perf_counter() - started
            return run_engine_2d(replace(request, seed=seed)), seed, failed_s
        except EngineError as error:
            if attempt == RETRIES or not lost_overlap(str(error)):
                raise


def register_2d(
    fixed: Image2D, moving: Image2D, engine: str, preset: str, workdir: Path, seed: int = 0,
    threads: int | None = None, fixed_mask: sitk.Image | None = None, moving_mask: sitk.Image | None = None,
) -> Registration2D:  # fmt: skip
    """Register ``moving`` to ``fixed`` with ``engine``'s 2D ``preset`` (see the module notes)."""
    loaded = load_preset(engine, preset, dimension=2)
    names = [preset] + [name for name in [companion_preset(engine, preset, 2)] if name]
    # A hot pixel (65535 on a slide whose tissue ends at 255) had put the tissue in one histogram bin: a result
    # turned 171 degrees, warned as a pixel size (a helper's sweep). Clipped as the 3D path clips it.
    (fixed_clipped, fixed_said), (moving_clipped, moving_said) = (
        clip_outliers(image.gray, f"{role} image") for image, role in ((fixed, "fixed"), (moving, "moving")))
    fixed_gray, fixed_mask = working_resolution(fixed_clipped, fixed_mask, moving.pixel_mm)
    moving_gray, moving_mask = working_resolution(moving_clipped, moving_mask, fixed.pixel_mm)
    started = time.perf_counter()
    start = search_start_2d(fixed_gray, moving_gray, loaded.scales, fixed_mask, moving_mask,
                            stretches=preset.startswith("affine"))  # fmt: skip
    mirror = mirror_warning(fixed_gray, moving_gray, start, loaded.scales, fixed_mask, moving_mask)
    timings = {"search_s": round(time.perf_counter() - started, 3)}
    results = []
    for origin in [start] + [other for other in (start.unscaled, start.stretched) if other is not None]:
        for name in names:
            candidate = loaded if name == preset else load_preset(engine, name, dimension=2)
            suffix = "" if origin is start else "-scale1" if origin is start.unscaled else "-stretched"
            folder = Path(workdir) / f"{name}{suffix}"
            folder.mkdir(parents=True, exist_ok=True)
            sampled = fixed_mask if fixed_mask is not None else moving_footprint(fixed_gray, moving_gray, origin.matrix)
            request = EngineRequest2D(
                fixed_gray, moving_gray, candidate, origin.matrix, folder, sampled, moving_mask, seed, threads
            )
            output, used_seed, failed_s = _run_2d(request)
            for key, seconds in [*output.timings.items(), ("failed_attempts_s", failed_s)]:
                timings[key] = round(timings.get(key, 0.0) + seconds, 3)
            results.append(_Run(mutual_information(fixed_gray, moving_gray, output.matrix), candidate, output, origin,
                                used_seed))  # fmt: skip
    best = max(results, key=lambda result: result.mutual_information)
    kept, output, origin = best.preset, best.output, best.start
    candidates = [{"preset": run.preset.name, "start_scale": round(run.start.scale, 6),
                   "mutual_information": round(run.mutual_information, 6), "seed": run.seed, "kept": run is best}
                  for run in results]  # fmt: skip
    working = {"fixed": min(fixed_gray.GetSpacing()), "moving": min(moving_gray.GetSpacing())}
    # A preset that keeps the size is judged by the scale a search over sizes prefers: the areas' ratio alone read
    # 0.83 for a brain-only slide against a whole head, and missed a pixel size 33% wrong (a helper's sweep).
    searched = time.perf_counter()
    sized = start if loaded.scales else search_start_2d(fixed_gray, moving_gray, True, fixed_mask, moving_mask)
    timings["size_search_s"] = round(time.perf_counter() - searched, 3)
    warnings = size_warnings(sized.scale, output.matrix, preset, loaded.scales,
                             {"fixed": fixed.pixel_mm, "moving": moving.pixel_mm},
                             {"fixed": fixed.pixel_source, "moving": moving.pixel_source})  # fmt: skip
    warnings += [mirror] if mirror else []
    warnings += [said for said in (fixed_said, moving_said) if said]
    weak = weak_warning_2d(fixed_gray, moving_gray, output.matrix, fixed_mask)
    warnings += [weak] if weak else []
    return Registration2D(
        output.matrix, origin, engine, kept.name, output.version, output.log, timings, kept.files, output.threads,
        candidates, {side: round(float(mm), 9) for side, mm in working.items()}, warnings,
    )  # fmt: skip
