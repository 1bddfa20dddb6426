"""A generated case as files for the command line and Slicer: images (.nrrd), labelmaps with Slicer segment
names (.seg.nrrd), points as Slicer markups (.mrk.json, RAS mm) and transforms (ITK .h5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from MultimodalRegistrationLib.core.images import write_image
from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points
from MultimodalRegistrationLib.landmarks.points_io import write_markups_json


def write_case(
    folder: str | Path,
    images: dict[str, sitk.Image],
    transforms: dict[str, Transform] | None = None,
    points: dict[str, tuple[np.ndarray, list[str]]] | None = None,
) -> dict[str, Path]:
    """Write ``images`` (name -> image; a name ending in ``_labels`` as .seg.nrrd, else .nrrd), ``transforms``
    (name -> .h5) and ``points`` (name -> (LPS mm points, labels) as .mrk.json in RAS) into ``folder``;
    returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, image in images.items():
        paths[name] = folder / (f"{name}.seg.nrrd" if name.endswith("_labels") else f"{name}.nrrd")
        write_image(image, paths[name])
    for name, transform in (transforms or {}).items():
        paths[name] = folder / f"{name}.h5"
        transform.write(paths[name])
    for name, (points_lps, labels) in (points or {}).items():
        paths[name] = folder / f"{name}.mrk.json"
        write_markups_json(paths[name], lps_ras_points(points_lps), labels)
    return paths
