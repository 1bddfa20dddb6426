"""A generated cohort for the batch tests and benchmark: phantom CT/MR pairs with known truth at poses up
to 180 degrees, and broken cases (a left-right mirrored MR header, an image of no anatomy, an unreadable file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.phantom import make_phantom_pair
from MultimodalRegistrationLib.core.transforms import rigid_transform

COARSE = dict(ct_spacing=(4.0, 4.0, 4.0), mr_spacing=(4.0, 4.0, 4.0))


def poses(count: int, seed: int = 7) -> list:
    """``count`` rigid truths (fixed -> moving, LPS), rotations spread from 10 to 180 degrees."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(10.0, 180.0, count)
    truths = []
    for angle in angles:
        axis = rng.normal(size=3)
        truths.append(rigid_transform(float(angle), tuple(axis / np.linalg.norm(axis)), tuple(rng.uniform(-25, 25, 3))))
    return truths


def mirrored_left_right(image: sitk.Image) -> sitk.Image:
    """The same voxels under a header whose first axis points the other way: the anatomy is mirrored."""
    mirrored = sitk.Image(image)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    direction[:, 0] *= -1
    mirrored.SetDirection(direction.ravel().tolist())
    return mirrored


def no_anatomy(like: sitk.Image, seed: int = 3) -> sitk.Image:
    """Smoothed noise on the grid of ``like``: an image that shows nothing the phantom shows."""
    array = np.random.default_rng(seed).normal(size=sitk.GetArrayViewFromImage(like).shape).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return sitk.SmoothingRecursiveGaussian(image, 8.0) * 1000.0


def write_cohort(folder: Path, good: int, broken: bool = True, **phantom) -> tuple[Path, dict]:
    """Write the images and ``manifest.csv`` into ``folder``; returns the manifest and case -> truth (None
    for a broken case)."""
    folder.mkdir(parents=True, exist_ok=True)
    phantom = phantom or COARSE
    rows, truths = ["case,fixed,moving"], {}
    pair = None
    for number, truth in enumerate(poses(good)):
        pair = make_phantom_pair(truth=truth, seed=number, **phantom)
        name = f"pose{number:02d}"
        write_image(pair.fixed, folder / f"{name}_ct.nrrd")
        write_image(pair.moving, folder / f"{name}_mr.nrrd")
        rows.append(f"{name},{name}_ct.nrrd,{name}_mr.nrrd")
        truths[name] = (truth, pair.head_points)
    if broken:
        write_image(mirrored_left_right(pair.moving), folder / "mirrored_mr.nrrd")
        rows.append(f"mirrored,pose{good - 1:02d}_ct.nrrd,mirrored_mr.nrrd")
        write_image(no_anatomy(pair.moving), folder / "noise.nrrd")
        rows.append(f"other_anatomy,pose{good - 1:02d}_ct.nrrd,noise.nrrd")
        (folder / "unreadable.nrrd").write_bytes(b"NRRD0004\nthis is not an image\n")
        rows.append("unreadable,pose00_ct.nrrd,unreadable.nrrd")
        truths.update({"mirrored": None, "other_anatomy": None, "unreadable": None})
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest, truths
