"""Landmark files given to `mmreg register` (and the registration panel) are checked as `mmreg prealign` checks
them: a point whose label the other file lacks is left out with a warning, pairs in the wrong order are named, and
a list saved in the other coordinate system but still inside its image (a half-turn about S, which neither the
mirror check nor the points-outside check sees) is pointed at. Hard TRUS-like pair 100: 5 landmarks, 27 degrees."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from MultimodalRegistrationLib.cli.main import main
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.transforms import lps_ras_points
from MultimodalRegistrationLib.landmarks.fit import fit_landmarks
from MultimodalRegistrationLib.landmarks.points_io import write_markups_json
from MultimodalRegistrationLib.process.guidance_inputs import read_guidance_points
from trus_data import trus_pair

LABELS = ["cyst", "calcification-1", "calcification-2", "urethra-base", "calcification-3"]


@pytest.fixture(scope="module")
def pair():
    return trus_pair(100)


def _files(tmp_path, pair, fixed_ras=None, moving_ras=None, fixed_labels=LABELS, moving_labels=LABELS):
    fixed_ras = lps_ras_points(pair.landmarks_fixed) if fixed_ras is None else fixed_ras
    moving_ras = lps_ras_points(pair.landmarks_moving) if moving_ras is None else moving_ras
    write_markups_json(tmp_path / "trus.mrk.json", fixed_ras, fixed_labels)
    write_markups_json(tmp_path / "mr.mrk.json", moving_ras, moving_labels)
    return str(tmp_path / "trus.mrk.json"), str(tmp_path / "mr.mrk.json")


def test_the_pairs_clicked_on_the_hard_pair_read_without_a_warning(pair, tmp_path):
    assert len(pair.landmarks_fixed) == len(LABELS)
    fixed, moving, warnings = read_guidance_points(*_files(tmp_path, pair), pair.fixed, pair.moving)
    assert warnings == []
    np.testing.assert_allclose(fixed, pair.landmarks_fixed, atol=1e-9)
    np.testing.assert_allclose(moving, pair.landmarks_moving, atol=1e-9)


def test_a_point_without_a_partner_is_left_out(pair, tmp_path):
    moving_ras = np.vstack([lps_ras_points(pair.landmarks_moving), [[0.0, 0.0, 0.0]]])
    files = _files(tmp_path, pair, moving_ras=moving_ras, moving_labels=[*LABELS, "extra"])
    _, moving, warnings = read_guidance_points(*files, pair.fixed, pair.moving)
    assert warnings == ["landmarks without a partner were left out: extra"]
    np.testing.assert_allclose(moving, pair.landmarks_moving, atol=1e-9)


def test_lps_values_saved_as_ras_are_pointed_at(pair, tmp_path):
    # The TRUS list's LPS numbers written into a file that says RAS: read, they are the true points turned 180
    # degrees about S, still inside the TRUS.
    files = _files(tmp_path, pair, fixed_ras=np.asarray(pair.landmarks_fixed))
    _, _, warnings = read_guidance_points(*files, pair.fixed, pair.moving)
    (warning,) = warnings
    assert "one list is probably RAS read as LPS" in warning and "trus.mrk.json says RAS" in warning
    assert 'set "coordinateSystem": "LPS" in trus.mrk.json if trus.mrk.json is the one' in warning  # its own fix
    assert "fit the images" not in warning  # it compares the lists as placed, with or without images
    turned, flipped = (float(v) for v in re.search(r"turned (\d+) degrees .*, and (\d+) degrees", warning).groups())
    assert turned > 150 and flipped < 30, warning
    # With an initial transform the headers are not the prior: no word.
    assert read_guidance_points(*files, pair.fixed, pair.moving, initial_transform=True)[2] == []


def test_pairs_in_the_wrong_order_are_named(pair, tmp_path):
    # Labels the two lists do not share pair by order: two points swapped in the MR list.
    moving_ras = lps_ras_points(pair.landmarks_moving)[[0, 2, 1, 3, 4]]
    files = _files(tmp_path, pair, moving_ras=moving_ras, moving_labels=[f"M-{i}" for i in range(1, 6)])
    _, _, warnings = read_guidance_points(*files, pair.fixed, pair.moving)
    assert any("'calcification-1' and 'calcification-2' look swapped" in w and "order in the two lists" in w
               for w in warnings), warnings  # fmt: skip


def test_prealign_points_at_the_same_mistake(pair, tmp_path):
    fixed_ras, moving_ras = lps_ras_points(pair.landmarks_fixed), lps_ras_points(pair.landmarks_moving)
    files = _files(tmp_path, pair, fixed_ras=np.asarray(pair.landmarks_fixed))  # the fixed list's LPS numbers
    arguments = ["prealign", "--fixed-points", files[0], "--moving-points", files[1], "--output-transform",
                 str(tmp_path / "T.h5"), "--json", str(tmp_path / "p.json")]  # fmt: skip
    assert main(arguments) == 0
    record = json.loads((tmp_path / "p.json").read_text())
    assert any("RAS read as LPS" in w and "trus.mrk.json says RAS" in w for w in record["warnings"])
    right = fit_landmarks(fixed_ras, moving_ras, "rigid")
    assert record["fre_mm"]["rms"] == pytest.approx(right.fre_rms_mm, abs=1e-3)  # the FRE cannot tell


def test_lists_that_share_too_few_labels_are_refused_and_a_fit_left_short_names_the_labels(pair, tmp_path):
    # Six fixed labels against five moving ones sharing one: one landmark would guide. Refused, as before.
    fixed = np.vstack([lps_ras_points(pair.landmarks_fixed), [[1.0, 2.0, 3.0]]])
    files = _files(tmp_path, pair, fixed_ras=fixed, fixed_labels=[*LABELS, "extra"],
                   moving_labels=["cyst", "b", "c", "d", "e"])  # fmt: skip
    with pytest.raises(InputError, match="6 fixed landmarks but 5 moving landmarks, and they cannot be paired by label"):
        read_guidance_points(*files, pair.fixed, pair.moving)
    # An affine fit of four points, one label mistyped: too few pairs left, and the error says why.
    four = lps_ras_points(pair.landmarks_fixed)[:4], lps_ras_points(pair.landmarks_moving)[:4]
    with pytest.raises(InputError, match=r"needs at least 4 point pairs .* got 3.*left out: calcification-2, "
                                         r"calcification-2x: check their labels"):  # fmt: skip
        fit_landmarks(*four, "affine", LABELS[:4], [*LABELS[:2], "calcification-2x", LABELS[3]])


def test_the_frame_check_speaks_of_files_only(pair):
    # Slicer's prealign fits node lists (no file declares a system): a real half-turn gets no file advice.
    moving_ras = lps_ras_points(np.asarray(pair.landmarks_moving) * [-1.0, -1.0, 1.0])
    fit = fit_landmarks(lps_ras_points(pair.landmarks_fixed), moving_ras, "rigid")
    assert not any("RAS read as LPS" in w for w in fit.warnings)


def test_a_moving_point_outside_its_image_is_named_by_its_own_label(pair, tmp_path):
    moving_ras = lps_ras_points(pair.landmarks_moving)
    moving_ras[2] += (0.0, 0.0, 400.0)  # 'M-3' placed far above the MR
    files = _files(tmp_path, pair, moving_ras=moving_ras, moving_labels=[f"M-{i}" for i in range(1, 6)])
    _, _, warnings = read_guidance_points(*files, pair.fixed, pair.moving)
    assert any(w.startswith("moving points 'M-3' lie outside the moving image") for w in warnings), warnings


def test_the_record_names_the_landmarks_and_how_they_paired(pair, tmp_path):
    """The guidance's record had said only "points": 5; which five, and paired how, was lost."""
    from MultimodalRegistrationLib.process.guidance_inputs import guidance_from_job
    from MultimodalRegistrationLib.process.jobs import RegistrationJob
    from MultimodalRegistrationLib.registration.guided.guidance import prepare_guidance

    files = _files(tmp_path, pair, moving_labels=list(reversed(LABELS)), moving_ras=lps_ras_points(
        pair.landmarks_moving[::-1]))  # fmt: skip
    job = RegistrationJob(fixed="f.nrrd", moving="m.nrrd", guidance_fixed_points=files[0],
                          guidance_moving_points=files[1])  # fmt: skip
    guidance, _ = guidance_from_job(job, pair.fixed, pair.moving)
    record = prepare_guidance(pair.fixed, pair.moving, guidance, "elastix").describe()
    assert record["points"] == 5 and record["point_labels"] == LABELS and record["points_paired_by"] == "label"
    unlabelled = _files(tmp_path, pair, fixed_labels=[f"F-{i}" for i in range(5)],
                        moving_labels=[f"M-{i}" for i in range(5)])  # no label in common: paired by order
    job = RegistrationJob(fixed="f.nrrd", moving="m.nrrd", guidance_fixed_points=unlabelled[0],
                          guidance_moving_points=unlabelled[1])  # fmt: skip
    guidance, _ = guidance_from_job(job, pair.fixed, pair.moving)
    assert guidance.points_paired_by == "order" and guidance.point_labels == [f"F-{i}" for i in range(5)]
