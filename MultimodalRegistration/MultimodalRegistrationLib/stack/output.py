"""The stack's outputs: the per-section transforms (CSV) and the volume (NRRD), written a section at a time.

CSV contract: columns ``section,a11,a12,a21,a22,tx,ty``, one row per section (0-based, in stack order), with
``x_in = A x_out + t`` in mm. ``x_out`` is a point of the volume's section plane; ``x_in`` the point in that
section's image, whose pixel (column i, row j) has its centre at ``(i px, j px)``. A section turned back
(laid face down, :mod:`.mirror`) has ``det A = -1``.

Volume: raw NRRD, LPS, origin (0, 0, 0), spacing (px, px, section spacing), so voxel (i, j, k) is at
``x_out = (i px, j px)`` of section k. Its plane grid is the first readable section's size, or, when the
sections' images differ in size, spans all of them (:mod:`.frame`). Pixels keep the
first readable section's type and components (RGB stays RGB: a vector volume); other sections are
converted to it. A missing section is written as its glass (the first section's background).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.files import write_atomically, write_text_atomically
from ..core.images2d import read_image_2d, to_gray

CSV_COLUMNS = ("section", "a11", "a12", "a21", "a22", "tx", "ty")
_NRRD_TYPES = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16", np.dtype(np.int16): "int16",
               np.dtype(np.float32): "float"}  # fmt: skip


def write_transforms_csv(poses: np.ndarray, path: str | os.PathLike) -> None:
    """One row per pose (3x3, x_in = pose @ x_out), see the module notes."""
    lines = [",".join(CSV_COLUMNS)]
    for index, pose in enumerate(poses):
        values = (pose[0, 0], pose[0, 1], pose[1, 0], pose[1, 1], pose[0, 2], pose[1, 2])
        lines.append(f"{index}," + ",".join(f"{float(v):.10g}" for v in values))
    text = "\n".join(lines) + "\n"
    write_text_atomically(path, text)


def read_transforms_csv(path: str | os.PathLike) -> np.ndarray:
    """The (N, 3, 3) poses of a stack CSV, in section order."""
    rows = Path(path).read_text(encoding="utf-8").strip().splitlines()
    header = tuple(name.strip() for name in rows[0].split(","))
    if header != CSV_COLUMNS:
        raise ValueError(f"{path}: columns {header}, expected {CSV_COLUMNS}")
    poses = np.tile(np.eye(3), (len(rows) - 1, 1, 1))
    for line in rows[1:]:
        section, a11, a12, a21, a22, tx, ty = (float(v) for v in line.split(","))
        poses[int(section)][:2] = [[a11, a12, tx], [a21, a22, ty]]
    return poses


def _affine(pose: np.ndarray) -> sitk.AffineTransform:
    transform = sitk.AffineTransform(2)
    transform.SetMatrix(pose[:2, :2].ravel().tolist())
    transform.SetTranslation(pose[:2, 2].tolist())
    return transform


class _Layout:
    """The volume's pixel type, components, plane size and glass (background) value, from one section."""

    def __init__(self, image: sitk.Image, bright: bool):
        array = sitk.GetArrayViewFromImage(image)
        self.components = image.GetNumberOfComponentsPerPixel()
        self.dtype = array.dtype if array.dtype in _NRRD_TYPES else np.dtype(np.float32)
        self.size = image.GetSize()
        # every few pixels of a large section: a float64 copy of a 20000-pixel one had run out of memory (a sweep)
        step = max(1, int(np.sqrt(array.shape[0] * array.shape[1] / 4e6)))
        flat = np.asarray(array[::step, ::step], np.float32).reshape(-1, self.components)
        self.glass = np.percentile(flat, 99 if bright else 1, axis=0)

    def convert(self, image: sitk.Image) -> sitk.Image:
        """``image`` with the volume's components (luminance or a repeated gray) and pixel type."""
        components = image.GetNumberOfComponentsPerPixel()
        if components != self.components:
            gray = to_gray(image)
            if self.components == 1:
                image = gray
            else:
                image = sitk.Compose([gray] * self.components)
        return image

    def header(self, count: int, pixel_mm: float, section_mm: float) -> bytes:
        vector = self.components > 1
        directions = f"({pixel_mm:.10g},0,0) (0,{pixel_mm:.10g},0) (0,0,{section_mm:.10g})"
        lines = [
            "NRRD0004",
            f"type: {_NRRD_TYPES[self.dtype]}",
            f"dimension: {4 if vector else 3}",
            "space: left-posterior-superior",
            f"sizes: {f'{self.components} ' if vector else ''}{self.size[0]} {self.size[1]} {count}",
            f"space directions: {'none ' if vector else ''}{directions}",
            f"kinds: {'vector ' if vector else ''}domain domain domain",
            "endian: little",
            "encoding: raw",
            "space origin: (0,0,0)",
        ]
        return ("\n".join(lines) + "\n\n").encode("ascii")


def _plane_bytes(layout: _Layout, image: sitk.Image | None, pose: np.ndarray, pixel_mm: float) -> bytes:
    shape = (layout.size[1], layout.size[0]) + ((layout.components,) if layout.components > 1 else ())
    if image is None:
        glass = layout.glass if layout.components > 1 else layout.glass[0]
        return (
            np.ascontiguousarray(np.broadcast_to(glass, shape).astype(layout.dtype))
            .astype("<" + layout.dtype.str[1:])
            .tobytes()
        )
    image = layout.convert(image)
    plane = sitk.Image(layout.size, sitk.sitkUInt8)
    plane.SetSpacing((pixel_mm, pixel_mm))
    channels = (
        [image]
        if layout.components == 1
        else [sitk.VectorIndexSelectionCast(image, c) for c in range(layout.components)]
    )
    planes = [
        sitk.GetArrayFromImage(
            sitk.Resample(
                sitk.Cast(channel, sitk.sitkFloat32),
                plane,
                _affine(pose),
                sitk.sitkLinear,
                float(layout.glass[c]),
                sitk.sitkFloat32,
            )
        )
        for c, channel in enumerate(channels)
    ]
    array = planes[0] if layout.components == 1 else np.stack(planes, axis=-1)
    if np.issubdtype(layout.dtype, np.integer):
        info = np.iinfo(layout.dtype)
        array = np.clip(np.rint(array), info.min, info.max)
    return np.ascontiguousarray(array.astype(layout.dtype)).astype("<" + layout.dtype.str[1:]).tobytes()


def write_volume(
    path: str | os.PathLike, paths: list[Path], poses: np.ndarray, usable: list[bool], pixel_mm: float,
    section_mm: float, bright: bool, progress: Callable[[Iterable], Iterable] = iter, plane_size=None,
) -> None:  # fmt: skip
    """Stream the sections, each resampled through its pose, into one NRRD (memory: one section at a time).
    ``usable[k]`` False writes section k as glass; ``bright``: the slides are bright (the glass is the
    99th percentile) or dark (the 1st)."""
    first = next(k for k, ok in enumerate(usable) if ok)
    layout = _Layout(read_image_2d(paths[first], pixel_mm).image, bright)
    if plane_size is not None:  # the sections' images differ in size (see .frame)
        layout.size = tuple(int(n) for n in plane_size)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as out:
            out.write(layout.header(len(paths), pixel_mm, section_mm))
            for k in progress(range(len(paths))):
                image = read_image_2d(paths[k], pixel_mm).image if usable[k] else None
                out.write(_plane_bytes(layout, image, poses[k], pixel_mm))

    write_atomically(path, write)
