"""`mmreg stack`: a section laid face down on its slide (its image mirrored) is found and turned back
(stack/mirror.py); symmetric and ordinary sections are left as they are."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import stack_data
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.images2d import BT601
from MultimodalRegistrationLib.stack.mirror import MirrorCheck
from MultimodalRegistrationLib.stack.output import read_transforms_csv
from MultimodalRegistrationLib.stack.sections import SectionReport, working_section
from scipy import ndimage

PIXEL_MM, SECTION_MM = 0.5, 1.0


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_a_mirrored_middle_section_is_turned_back_through_the_command_line(tmp_path, capsys):
    """8 sections, section 4 mirrored (columns reversed). Before stack/mirror.py it was placed 61 mm off (mean
    over the head, after the one global fit) and reported ok; now it is reported mirrored, its CSV row is a mirror
    (determinant -1) within the bound of the upside-down test (0.6 mm), and its volume slice matches its neighbours."""
    data = stack_data.serial_sections(tmp_path / "s", 8, PIXEL_MM, SECTION_MM, first_z=-5.0, mirrored=(4,))
    csv, volume, summary = tmp_path / "T.csv", tmp_path / "V.nrrd", tmp_path / "S.json"
    code = main(["stack", "--sections", str(tmp_path / "s"), "--pixel-size", str(PIXEL_MM), "--section-spacing",
                 str(SECTION_MM), "--output-volume", str(volume), "--output-transforms", str(csv),
                 "--json", str(summary)])  # fmt: skip
    assert code == 0
    assert "section 4 (section_0004.png): mirrored: mirrored on its slide" in capsys.readouterr().err
    sections = json.loads(summary.read_text())["sections"]
    assert [(s["status"], s["mirrored"]) for s in sections] == [("ok", False)] * 4 + [("mirrored", True)] + [
        ("ok", False)
    ] * 3
    assert "turned back" in sections[4]["note"]
    poses = read_transforms_csv(csv)
    assert np.linalg.det(poses[4][:2, :2]) == pytest.approx(-1.0, abs=1e-6)
    error = stack_data.residuals_after_global_fit(poses, data.truth, data.points, range(8))
    print(f"mirrored section: {error[4]:.2f} mm, the others {np.median(np.delete(error, 4)):.2f} mm")
    assert error[4] < 0.6 and error.max() < 1.0
    slices = sitk.GetArrayFromImage(sitk.ReadImage(str(volume))).astype(float) @ BT601
    turned = _correlation(slices[4], slices[3])
    as_stored = _correlation(slices[3], slices[4][:, ::-1])
    normal = _correlation(slices[2], slices[3])
    print(f"volume slice 4 against 3: {turned:.3f} (its mirror {as_stored:.3f}); 2 against 3: {normal:.3f}")
    assert turned > normal - 0.02 and turned > as_stored + 0.05


def test_a_mirrored_first_and_last_section_are_turned_back(tmp_path):
    """The first section is judged by the two after it, the last by the two before it (one stack for both)."""
    from MultimodalRegistrationLib.stack.align import align_sections

    mirrored = (0, 7)
    data = stack_data.serial_sections(tmp_path / "s", 8, PIXEL_MM, SECTION_MM, first_z=-5.0, mirrored=mirrored)
    alignment = align_sections(data.paths, PIXEL_MM, threads=2)
    assert [s.mirrored for s in alignment.sections] == [k in mirrored for k in range(8)]
    error = stack_data.residuals_after_global_fit(alignment.poses, data.truth, data.points, range(8))
    print(f"sections 0 and 7 mirrored: {error[0]:.2f}, {error[7]:.2f} mm, worst {error.max():.2f} mm")
    assert error[0] < 0.6 and error[7] < 0.6 and error.max() < 1.0


# --------------------------------------------------------------------------- the decision on small images
def _section(index: int, pixels: np.ndarray) -> tuple:
    image = sitk.GetImageFromArray(pixels.astype(np.float32))
    image.SetSpacing((1.0, 1.0))
    report = SectionReport(index, f"s{index}.png", size=list(image.GetSize()))
    return working_section(image, report), report


def _tissue(asymmetric: bool, angle_deg: float, shift, seed: int) -> np.ndarray:
    """A 160 x 180 mm dark slide with bright tissue (1 mm pixels): an ellipse, with a lobe on one side when
    ``asymmetric``, turned by ``angle_deg`` and moved by ``shift`` (mm); noise drawn anew (``seed``)."""
    jj, ii = np.mgrid[0:180, 0:160].astype(float)
    a = np.radians(angle_deg)
    x, y = ii - 80 - shift[0], jj - 90 - shift[1]
    x, y = np.cos(a) * x + np.sin(a) * y, -np.sin(a) * x + np.cos(a) * y
    tissue = 100.0 * ((x / 55) ** 2 + (y / 70) ** 2 < 1)
    if asymmetric:
        tissue += 80.0 * (((x - 30) / 14) ** 2 + ((y + 35) / 20) ** 2 < 1)
        tissue -= 60.0 * (((x + 20) / 10) ** 2 + ((y - 30) / 10) ** 2 < 1)
    noise = np.random.default_rng(seed).normal(0, 5.0, tissue.shape)
    return ndimage.gaussian_filter(tissue, 1.5) + 10.0 + noise


def _decide(images: list[np.ndarray]) -> list[bool]:
    check = MirrorCheck(1.0)
    for k, pixels in enumerate(images):
        check.add(*_section(k, pixels))
    check.finish()
    return [k in check.mirrors for k in range(len(images))]


@pytest.mark.parametrize(
    "mirrored", [(), (2,), (0,), (4,), (3,), (1,)], ids=["none", "middle", "first", "last", "next-to-last", "second"]
)
def test_only_a_section_whose_mirror_agrees_clearly_better_is_turned_back(mirrored):
    """Five asymmetric sections (turned up to 10 deg, moved up to 6 mm), the chosen ones mirrored: exactly those are
    turned back; a normal section next to a mirrored one (one judge for, one against) is left."""
    rng = np.random.default_rng(3)
    images = []
    for k in range(5):
        pixels = _tissue(True, rng.uniform(-10, 10), rng.uniform(-6, 6, 2), seed=k)
        images.append(pixels[:, ::-1] if k in mirrored else pixels)
    assert _decide(images) == [k in mirrored for k in range(5)]
    assert _decide(images[2:3]) == [False]  # a lone section has no judge
    # Two sections, one judge each: either mirrored turned the first back (a right section made a mirror image).
    assert _decide([images[0], images[1][:, ::-1]]) == [False, False]


def test_a_symmetric_section_is_left_as_it_is():
    """Mirror and stored agree alike with the neighbours (an ellipse): no section is turned, even mirrored ones
    (they cannot be told apart; a rigid motion places them)."""
    rng = np.random.default_rng(4)
    images = [_tissue(False, rng.uniform(-10, 10), rng.uniform(-6, 6, 2), seed=k) for k in range(5)]
    images[2] = images[2][:, ::-1]
    assert _decide(images) == [False] * 5
