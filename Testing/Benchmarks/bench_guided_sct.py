"""Table 2 of bench_guided.py: SCT spinal cord, T1w (fixed) -> T2w (moving), real MRI without ground truth:
cord Dice and mean surface distance (mm) before and after, unguided and guided by the cord."""

from __future__ import annotations

import sys
import time
import warnings

import bench_paths  # noqa: F401  first: the library and the test-data makers on sys.path
import numpy as np
import SimpleITK as sitk
from data_paths import SHARED_DATA
from MultimodalRegistrationLib.core.errors import EngineError, InputError
from MultimodalRegistrationLib.core.labels import surface_distances
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.guided.guidance import Guidance
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment
from MultimodalRegistrationLib.registration.register import register

SCT = SHARED_DATA / "sct"


def _z_mm(image: sitk.Image) -> np.ndarray:
    """Each voxel's physical z (LPS superior, mm), shaped like the image's array (z, y, x)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in image.GetSize()[::-1]), indexing="ij")
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    return image.GetOrigin()[2] + matrix[2, 0] * i + matrix[2, 1] * j + matrix[2, 2] * k


def _cut(segmentation: sitk.Image, above_mm: float | None = None, below_mm: float | None = None) -> sitk.Image:
    """The segmentation with the voxels outside above_mm < z <= below_mm (physical, mm) cleared."""
    array = sitk.GetArrayFromImage(segmentation)
    z = _z_mm(segmentation)
    keep = np.ones_like(array, bool)
    if above_mm is not None:
        keep &= z > above_mm
    if below_mm is not None:
        keep &= z <= below_mm
    result = sitk.GetImageFromArray((array * keep).astype(array.dtype))
    result.CopyInformation(segmentation)
    return result


def cord_agreement(fixed: sitk.Image, moving: sitk.Image, fixed_cord: sitk.Image, moving_cord: sitk.Image,
                   transform: Transform, below_mm: float | None = None) -> tuple[float, float]:  # fmt: skip
    """(Dice, mean symmetric surface distance in mm) of the fixed cord and the moving cord warped onto the fixed
    grid through ``transform`` (fixed -> moving), counted where the moving image has data and (``below_mm``)
    at physical z <= below_mm."""
    warped = sitk.Resample(moving_cord, fixed, transform.sitk, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    # a copy, not a view: a view of the temporary resampled image would read freed memory
    covered = sitk.GetArrayFromImage(sitk.Resample(ones, fixed, transform.sitk, sitk.sitkNearestNeighbor, 0)) > 0
    if below_mm is not None:
        covered = covered & (_z_mm(fixed) <= below_mm)
    a = (sitk.GetArrayViewFromImage(fixed_cord) > 0) & covered
    b = (sitk.GetArrayViewFromImage(warped) > 0) & covered
    dice = 2.0 * np.count_nonzero(a & b) / max(int(a.sum()) + int(b.sum()), 1)
    surface = surface_distances(a, b, fixed)[0] if a.any() and b.any() else float("nan")
    return float(dice), float(surface)


def sct_table(engines, full: bool = False) -> list[str]:
    """Cord Dice and surface distance, T1w (fixed) -> T2w (moving), unguided and guided by the cord; rigid,
    and with ``full`` deformable too."""
    presets = ("rigid", "deformable") if full else ("rigid",)
    if not (SCT / "t1w.nii.gz").exists():
        return [f"SCT spinal cord: skipped, {SCT} is absent."]
    fixed, moving = (sitk.ReadImage(str(SCT / f"{name}.nii.gz"), sitk.sitkFloat32) for name in ("t1w", "t2"))
    fixed_cord, moving_cord = (sitk.ReadImage(str(SCT / f"{name}_seg-manual.nii.gz")) for name in ("t1w", "t2"))
    # The cut between the upper (guiding) and lower (held-out) cord: the middle of the z range both cords cover.
    ranges = [_z_mm(cord)[sitk.GetArrayViewFromImage(cord) > 0] for cord in (fixed_cord, moving_cord)]
    low, high = max(r.min() for r in ranges), min(r.max() for r in ranges)
    cut = 0.5 * (low + high)
    upper = Guidance(_cut(fixed_cord, above_mm=cut), _cut(moving_cord, above_mm=cut))
    whole = Guidance(fixed_cord, moving_cord)

    def scores(transform):
        return cord_agreement(fixed, moving, fixed_cord, moving_cord, transform) + cord_agreement(
            fixed, moving, fixed_cord, moving_cord, transform, below_mm=cut
        )

    lines = [
        (
            f"SCT spinal cord, T1w {fixed.GetSize()} (fixed) -> T2w {moving.GetSize()} (moving), 1 mm, real MRI of one "
            "subject, manual cord segmentations, no ground truth. Dice and mean surface distance (MSD, mm) of the cord "
            "where the warped T2w has data; 'lower' = below z = "
            f"{cut:.1f} mm, the middle of the z range both cords cover ({low:.1f} to {high:.1f} mm). The whole-cord "
            "rows were guided by the very cord they are scored on; the upper-half rows are guided by the cord above "
            "the cut only, so their lower-half scores are held out."
        ),
        "",
        "| engine | row | Dice all | MSD all mm | Dice lower | MSD lower mm | seconds | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    header = scores(Transform.identity())
    centre = scores(centre_alignment(fixed, moving, None, "geometry"))
    for label, values in (("scanner (header) alignment", header), ("centre alignment", centre)):
        lines.append(f"| - | {label} | {values[0]:.3f} | {values[1]:.2f} | {values[2]:.3f} | {values[3]:.2f} | | |")
    for engine in engines:
        for preset in presets:
            for label, guidance, init in (
                ("unguided (init auto)", None, "auto"),
                ("unguided from the header (init none)", None, "none"),
                ("guided by the whole cord", whole, "auto"),
                ("guided by the upper half of the cord", upper, "auto"),
            ):
                started = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        result = register(fixed, moving, engine=engine, preset=preset, guidance=guidance, init=init)
                except (EngineError, InputError) as error:
                    lines.append(
                        f"| {engine} | {preset}, {label} | failed: {str(error).splitlines()[0][:100]} | | | | | |"
                    )
                    continue
                seconds = time.perf_counter() - started
                values = scores(result.transform)
                lines.append(
                    f"| {engine} | {preset}, {label} | {values[0]:.3f} | {values[1]:.2f} | {values[2]:.3f} | "
                    f"{values[3]:.2f} | {seconds:.1f} | {result.provenance.kept} |"
                )
                print(f"  (sct {engine} {preset} {label}: {seconds:.0f} s)", file=sys.stderr, flush=True)
    return lines
