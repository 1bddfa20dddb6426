"""Spacing sanity: implausible physical sizes, a suggested spacing, setting it, resolution mismatch."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.file_headers import metaimage_data_file
from ..core.plausible_spacing import SpacingCheck, check_spacing

__all__ = ["Mismatch", "SpacingCheck", "check_spacing", "mask_with_spacing", "metaimage_with_spacing", "parse_spacing",
           "require_plausible", "resolution_mismatch", "set_spacing", "voxel_size_mm"]  # fmt: skip

# Voxel sizes further apart than this factor make the finer image worth downsampling first.
MISMATCH_RATIO = 4.0


def parse_spacing(text) -> tuple[float, float, float]:
    """'sx,sy,sz' (mm), a single value for all axes, or a sequence of 3 numbers."""
    parts = str(text).replace(" ", "").split(",") if isinstance(text, str) else list(text)
    try:
        values = [float(v) for v in parts if v != ""]
    except (TypeError, ValueError):
        values = []
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise InputError(
            f"spacing '{text}' is not three positive numbers: write it as sx,sy,sz in mm, e.g. 0.00325,0.00325,0.01"
        )
    return tuple(values)


def set_spacing(image: sitk.Image, spacing_mm) -> sitk.Image:
    """A copy of ``image`` with ``spacing_mm`` (no resampling: the same voxels, a new physical size).

    The origin (the first voxel's position) and the direction are kept.
    """
    result = sitk.Image(image)
    result.SetSpacing(parse_spacing(spacing_mm))
    return result


def metaimage_with_spacing(path, header_spacing, spacing_mm, folder) -> Path | None:
    """A copy of a MetaImage file (``.mha``/``.mhd``) in ``folder`` whose header says ``spacing_mm``, when its
    ``header_spacing`` is 0 or not a number (ITK refuses to read that file even when the spacing is then
    replaced); None when the header spacing is usable or the file is not MetaImage with one data file."""
    path = Path(path)
    if path.suffix.lower() not in (".mha", ".mhd") or all(math.isfinite(v) and v > 0 for v in header_spacing):
        return None
    spacing_line = ("ElementSpacing = " + " ".join(repr(float(v)) for v in spacing_mm) + "\n").encode()
    # its own folder: two inputs both named image.mha had shared one copy, the fixed image prepared from the moving
    # one's voxels (a helper's prep sweep)
    copy = Path(tempfile.mkdtemp(dir=folder)) / path.name
    with open(path, "rb") as source:
        lines = []
        for line in iter(source.readline, b""):
            key, _, value = line.decode("latin-1").partition("=")
            key, value = key.strip(), value.strip()
            if key in ("ElementSpacing", "ElementSize"):
                line = spacing_line if key == "ElementSpacing" else b""
            if key == "ElementDataFile":
                if value.upper() != "LOCAL":
                    data = metaimage_data_file(path, value)  # spaces in its name are fine: one file
                    if data is None:
                        return None
                    line = f"ElementDataFile = {data.resolve()}\n".encode()
                lines.append(line)
                break
            lines.append(line)
        if not any(line.startswith(b"ElementSpacing") for line in lines):
            lines.insert(len(lines) - 1, spacing_line)
        with open(copy, "wb") as target:
            target.writelines(lines)
            shutil.copyfileobj(source, target)  # the voxels of a LOCAL file (nothing for a detached one)
    return copy


def voxel_size_mm(spacing) -> float:
    """Geometric mean voxel edge (mm): one number for an image's resolution."""
    return float(np.prod(np.asarray(spacing, float)) ** (1.0 / 3.0))


@dataclass
class Mismatch:
    """One image's voxels are much finer than the other's."""

    finer: str  # "fixed" or "moving"
    ratio: float
    target_mm: float  # the coarser image's finest spacing: where the finer image should go
    message: str


def resolution_mismatch(fixed_spacing, moving_spacing, ratio: float = MISMATCH_RATIO) -> Mismatch | None:
    """A :class:`Mismatch` when one image's voxels are ``ratio`` or more times finer than the other's."""
    sizes = {"fixed": voxel_size_mm(fixed_spacing), "moving": voxel_size_mm(moving_spacing)}
    finer, coarser = sorted(sizes, key=sizes.get)
    found = sizes[coarser] / sizes[finer]
    if found < ratio:
        return None
    target = float(np.min(fixed_spacing if coarser == "fixed" else moving_spacing))
    message = (
        f"the {finer} image's voxels ({sizes[finer]:.4g} mm) are {found:.0f}x finer than the {coarser} image's "
        f"({sizes[coarser]:.4g} mm): downsample the {finer} image to about {target:.4g} mm first "
        f"(mmreg prep --downsample-to {target:.4g}); it saves memory and time and keeps what the registration uses"
    )
    return Mismatch(finer, round(found, 3), target, message)


def downsample_targets(downsample_to: float | str | None, spacings: dict) -> tuple[dict, list[dict], list[str]]:
    """Which image goes to which spacing (mm) and why, for ``--downsample-to`` (a size in mm, "auto" or None) and
    each role's spacing: (role -> (target mm, reason), steps to record, warnings). Under auto, a step says when
    nothing needs doing (the tutorial's step looked skipped by mistake: a helper's docs sweep)."""
    mismatch = resolution_mismatch(spacings["fixed"], spacings["moving"])
    targets, steps, warnings = {}, [], []
    if downsample_to == "auto":
        if mismatch is not None:
            targets[mismatch.finer] = (mismatch.target_mm, mismatch.message.split(":")[0])
        else:
            sizes = ", ".join(f"{role} {voxel_size_mm(spacing):.4g} mm" for role, spacing in spacings.items())
            steps.append({"step": "downsample", "image": "neither",
                          "why": f"not needed: the voxel sizes ({sizes}) differ less than {MISMATCH_RATIO:g} times"})  # fmt: skip
    elif downsample_to is not None:
        for role, spacing in spacings.items():
            if min(spacing) < float(downsample_to) - 1e-9:
                targets[role] = (float(downsample_to), f"asked for {float(downsample_to):g} mm voxels")
        if not targets:  # e.g. a size typed in metres
            finest = ", ".join(f"{role} {min(spacing):g} mm" for role, spacing in spacings.items())
            warnings.append(f"--downsample-to {float(downsample_to):g} mm: no image has voxels finer than that "
                            f"({finest}), so nothing was downsampled: give the voxel size to reach in mm")  # fmt: skip
    if mismatch is not None and mismatch.finer not in targets:
        warnings.append(mismatch.message)
    return targets, steps, warnings


def require_plausible(image: sitk.Image, role: str) -> None:
    """Raise :class:`InputError` with a suggested spacing when the image's physical size is implausible."""
    check = check_spacing(image, role=role)
    if not check.plausible:
        raise InputError(check.message)


def mask_with_spacing(mask: sitk.Image, image_grid, spacing_mm, role: str) -> tuple[sitk.Image, bool]:
    """A mask file given with a spacing fix for its image: the same fix when the mask is on the image file's
    grid (``image_grid``: size, header spacing, origin, direction of the file, before the fix), as a mask
    drawn on the same stack is; unchanged when it already has the fixed spacing on that grid. Returns the
    mask and whether the fix was applied. Any other grid is refused (:class:`InputError`): whether its
    positions were measured with the wrong spacing or the right one cannot be told."""
    size, header_spacing, origin, direction = image_grid
    spacing = parse_spacing(spacing_mm)

    def close(a, b) -> bool:
        return len(a) == len(b) and bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-5, atol=1e-4))

    on_grid = tuple(mask.GetSize()) == tuple(size[:3]) and close(mask.GetOrigin(), origin[:3])
    on_grid = on_grid and close(mask.GetDirection(), direction[:9])
    if on_grid and close(mask.GetSpacing(), spacing):
        return mask, False
    if on_grid and close(mask.GetSpacing(), header_spacing[:3]):
        return set_spacing(mask, spacing), True
    flag = f"--spacing-{role}"
    raise InputError(
        f"the {role} mask's grid ({'x'.join(map(str, mask.GetSize()))} voxels of "
        f"{'x'.join(f'{s:g}' for s in mask.GetSpacing())} mm) is not the {role} image file's "
        f"({'x'.join(map(str, size[:3]))} voxels of {'x'.join(f'{s:g}' for s in header_spacing[:3])} mm, same origin), "
        f"so the spacing fix ({flag} / the panel's set spacing) cannot be carried over to it: give a mask drawn on "
        f"the {role} image file (same size, spacing and origin: it gets the same fix), or one on that grid with "
        f"the spacing {'x'.join(f'{s:g}' for s in spacing)} mm already"
    )
