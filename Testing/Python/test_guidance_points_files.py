"""Landmark files given to `mmreg register` (and the registration panel) are checked as `mmreg prealign` checks
them: a point whose label the other file lacks is left out with a warning, pairs in the wrong order are named, and
a list saved in the other coordinate system but still inside its image (a half-turn about S, which neither the
mirror check nor the points-outside check sees) is pointed at. Hard TRUS-like pair 100: 5 landmarks, 27 degrees."""

from __future__ import annotations

import re

import numpy as np
import pytest
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


def test_prealign_points_at_the_same_mistake(pair):
    fixed_ras, moving_ras = lps_ras_points(pair.landmarks_fixed), lps_ras_points(pair.landmarks_moving)
    assert not any("RAS read as LPS" in w for w in fit_landmarks(fixed_ras, moving_ras, "rigid").warnings)
    wrong = fit_landmarks(np.asarray(pair.landmarks_fixed), moving_ras, "rigid")  # the fixed list's LPS numbers
    assert any("RAS read as LPS" in w for w in wrong.warnings)
    assert wrong.fre_rms_mm == pytest.approx(fit_landmarks(fixed_ras, moving_ras, "rigid").fre_rms_mm, abs=1e-6)
