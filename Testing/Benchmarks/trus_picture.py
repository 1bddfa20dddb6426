"""The README's MR -> TRUS picture: one hard generated pair (trus_data.py) at the image centres, at the glands'
centroids and after guided ANTs deformable, the MR in the TRUS's checkerboard squares inside the fan, with both
drawn gland segmentations.

The pair is a middle one (13th of 24) of `make bench`'s third hard table (seed 121, TRUS echo share drawn 0-1): not a
chosen success. Run: .venv/bin/python Testing/Benchmarks/trus_picture.py
"""

from __future__ import annotations

import warnings

import bench_paths  # noqa: F401 (first: the library and the test-data makers on sys.path)
import numpy as np
import SimpleITK as sitk
from guided_common import ROOT
from guided_picture import _slice_grid, draw_glands, grey, on_grid, save_small_png, squares
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.guided.guidance import Guidance, prepare_guidance
from MultimodalRegistrationLib.registration.guided.start import segment_centroid_alignment
from MultimodalRegistrationLib.registration.pose.centres import centre_alignment
from MultimodalRegistrationLib.registration.register import register
from trus_data import trus_pair

PICTURE = ROOT / "Resources" / "Screenshots" / "trus_guided.png"
SEED, SHARE = 121, (0.0, 1.0)


def _panel(pair, transform: Transform, grid: sitk.Image, square_mm: float = 8.0):
    """(RGB checkerboard, TRUS gland mask, MR gland mask mapped into the TRUS) on ``grid``, as 2D arrays."""
    trus, fan = on_grid(pair.fixed, grid, sitk.sitkLinear), on_grid(pair.fixed_fov, grid, sitk.sitkNearestNeighbor) > 0
    mr = on_grid(pair.moving, grid, sitk.sitkLinear, transform)
    board = squares(trus.shape, grid.GetSpacing()[0], square_mm)
    shown = np.where(fan, np.where(board, grey(trus, fan), grey(mr, fan)), 0.15)
    glands = (on_grid(pair.fixed_labels, grid, sitk.sitkNearestNeighbor),
              on_grid(pair.moving_labels, grid, sitk.sitkNearestNeighbor, transform))
    return np.repeat(shown[..., None], 3, axis=-1), *(gland > 0 for gland in glands)


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pair = trus_pair(SEED, echo_mr_share=SHARE)
    guidance = Guidance(pair.fixed_labels, pair.moving_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register(pair.fixed, pair.moving, engine="ants", preset="deformable", guidance=guidance, threads=1)
    panels = [(centre_alignment(pair.fixed, pair.moving, None, "geometry"), "image centres"),
              (segment_centroid_alignment(prepare_guidance(pair.fixed, pair.moving, guidance, "elastix")),
               "gland centroids"),
              (result.transform, "guided ANTs deformable")]  # fmt: skip
    centre = np.array(pair.fixed_labels.TransformContinuousIndexToPhysicalPoint(
        np.argwhere(sitk.GetArrayViewFromImage(pair.fixed_labels) > 0).mean(axis=0)[::-1].tolist()))  # fmt: skip
    grid = _slice_grid(centre, 40.0, 0.4)
    figure, axes = plt.subplots(1, 3, figsize=(10.5, 4.0), dpi=100)
    for axis, (transform, title) in zip(axes, panels):
        rgb, trus_gland, mr_gland = _panel(pair, transform, grid)
        draw_glands(axis, rgb, (trus_gland - 0.5, "#ff9500"), (mr_gland - 0.5, "#00e5ff"),
                    f"{title}\nmedian landmark error {np.median(pair.tre(transform)):.1f} mm")
    figure.text(0.5, 0.02, "TRUS / MR checkerboard (8 mm squares, inside the fan), transverse slice through the TRUS "
                "gland; drawn glands: TRUS orange, MR cyan", ha="center", fontsize=8.5)  # fmt: skip
    figure.subplots_adjust(left=0.01, right=0.99, top=0.87, bottom=0.07, wspace=0.03)
    save_small_png(figure, PICTURE)
    print(f"{PICTURE} ({result.provenance.start}; kept {result.provenance.kept})")


if __name__ == "__main__":
    main()
