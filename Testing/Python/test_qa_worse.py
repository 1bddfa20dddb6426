"""QA says when the landmarks or segments got worse, and when the transform was given the wrong way round
(qa/worse.py), on an MR -> TRUS-like pair, where the images' mutual information moves too little to tell."""

from __future__ import annotations

import numpy as np
import pytest
from MultimodalRegistrationLib.core.rotations import orthogonal_fit
from MultimodalRegistrationLib.core.transforms import Transform, lps_ras_points
from MultimodalRegistrationLib.qa.assess import QAOptions, assess_registration
from MultimodalRegistrationLib.qa.point_frames import OTHER_FRAME
from MultimodalRegistrationLib.qa.worse import WRONG_WAY
from trus_data import trus_pair


@pytest.fixture(scope="module")
def pair_and_fit():
    """TRUS-like pair 101 and the truth's best rigid fit over its 40 targets: the right result, 2-3 mm (the truth
    also deforms)."""
    pair = trus_pair(101)
    return pair, Transform.from_matrix(orthogonal_fit(pair.targets_fixed, pair.targets_moving, scale=False))


def _qa(pair, transform: Transform, landmarks: bool = True, segments: bool = True):
    points = {"fixed_points_ras": lps_ras_points(pair.targets_fixed),
              "moving_points_ras": lps_ras_points(pair.targets_moving)}  # fmt: skip
    labels = {"fixed_labels": pair.fixed_labels, "moving_labels": pair.moving_labels}
    options = QAOptions(**(points if landmarks else {}), **(labels if segments else {}))
    return assess_registration(pair.fixed, pair.moving, transform, options)


def _doubts(report) -> list[str]:
    return [w for w in report.warnings if w.startswith((WRONG_WAY, OTHER_FRAME)) or "than before" in w]


def test_the_result_and_its_mistakes_are_told_apart_by_the_landmarks_and_segments(pair_and_fit):
    pair, right = pair_and_fit
    report = _qa(pair, right)
    assert report.landmarks.tre_after.median_mm < 4.0 and report.landmarks.tre_before.median_mm > 10.0
    assert _doubts(report) == []

    # Its inverse, given by mistake: farther than before, and the mutual information does not say so.
    inverse = _qa(pair, right.inverse())
    assert inverse.landmarks.tre_after.median_mm > inverse.landmarks.tre_before.median_mm + 10.0
    assert not any("agree less" in w for w in inverse.warnings)
    assert len(_doubts(inverse)) == 1 and _doubts(inverse)[0].startswith(WRONG_WAY + ": the landmarks' median error")
    # The QA panel's summary called the inverse's TRE 'the number to trust' above that warning (a helper's sweep).
    from MultimodalRegistrationLib.nodes.qa_table import summary_text

    assert "the number to trust" in summary_text(report) and "the number to trust" not in summary_text(inverse)
    assert "read the warning below first" in summary_text(inverse)
    # With the segments only, their Dice says it.
    by_segments = _doubts(_qa(pair, right.inverse(), landmarks=False))
    assert len(by_segments) == 1 and by_segments[0].startswith(WRONG_WAY + ": the segments' Dice")

    # A result 25 mm off, the right way round: worse than before, not the inverse.
    off = np.eye(4)
    off[:3, 3] = [0.0, 25.0, 0.0]
    worse = _qa(pair, Transform.from_matrix(right.matrix @ off))
    said = _doubts(worse)
    assert [w.split(" (")[0] for w in said] == [
        "the landmarks are farther apart after the transform than before",
        "the segments overlap less after the transform than before",
    ]


def test_an_inverse_that_does_not_undo_the_transform_is_named(pair_and_fit):
    pair, right = pair_and_fit
    assert not any("does not undo" in w for w in assess_registration(
        pair.fixed, pair.moving, right, QAOptions(inverse=right.inverse())).warnings)  # fmt: skip
    report = assess_registration(pair.fixed, pair.moving, right, QAOptions(inverse=right))  # the transform itself
    (said,) = [w for w in report.warnings if "does not undo" in w]
    assert said.startswith(f"the inverse given does not undo the transform: a round trip misses by "
                           f"{report.inverse_consistency.mean_mm:.1f} mm on average")  # fmt: skip
    assert report.inverse_consistency.mean_mm > 10.0


def test_landmarks_in_the_other_frame_are_named(pair_and_fit):
    pair, right = pair_and_fit
    moving_lps_as_ras = pair.targets_moving  # LPS numbers in a list read as RAS: x and y negated
    options = QAOptions(fixed_points_ras=lps_ras_points(pair.targets_fixed), moving_points_ras=moving_lps_as_ras)
    said = _doubts(assess_registration(pair.fixed, pair.moving, right, options))
    assert len(said) == 1 and said[0].startswith(OTHER_FRAME + ": the moving list is ")


def test_a_large_structure_given_the_wrong_way_round_is_named_by_its_segments():
    """A brain-sized segment (an ellipsoid over most of the box) under a 12 degree, 10 mm motion, the inverse given:
    as given its Dice stays high (0.6-0.8), so 'twice the Dice the other way' could never hold (a helper's
    skull-stripped MNI pair: 0.71 as given, 0.96 the other way, only "overlap less" said)."""
    import SimpleITK as sitk
    from MultimodalRegistrationLib.core.transforms import rigid_transform
    from MultimodalRegistrationLib.qa.overlap import segmentation_overlap
    from MultimodalRegistrationLib.qa.worse import worse_or_wrong_way

    axis = -60.0 + 2.0 * np.arange(61)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    points = np.stack([x, y, z], axis=-1)
    truth = rigid_transform(12.0, (0.2, 1.0, 0.3), (6.0, -8.0, 3.0))  # fixed -> moving (LPS mm)

    def labels(at: np.ndarray) -> sitk.Image:
        inside = np.sum((at / np.array([45.0, 38.0, 32.0])) ** 2, axis=-1) <= 1.0
        image = sitk.GetImageFromArray(inside.astype(np.uint8))
        image.SetSpacing((2.0,) * 3)
        image.SetOrigin((-60.0,) * 3)
        return image

    fixed = labels(points)
    moving = labels(truth.inverse().transform_points(points.reshape(-1, 3)).reshape(points.shape))
    right = segmentation_overlap(fixed, moving, truth)
    assert right.after[0].dice > 0.97 and worse_or_wrong_way(truth, None, right, fixed, moving) == []
    given = segmentation_overlap(fixed, moving, truth.inverse())
    assert 0.5 < given.after[0].dice < 0.85 and given.after[0].dice < given.before[0].dice - 0.05, given.after[0]
    (warning,) = worse_or_wrong_way(truth.inverse(), None, given, fixed, moving)
    assert warning.startswith(WRONG_WAY + ": the segments' Dice"), warning
    # Two labels (the ellipsoid's halves): the Dice quoted is their mean, as the table's (it had quoted the
    # foregrounds' Dice, 0.60, against a mean per label of 0.42; a helper's QA check).

    def halves(at: np.ndarray) -> sitk.Image:
        image = labels(at)
        side = sitk.GetImageFromArray((at[..., 0] > 0).astype(np.uint8))
        side.CopyInformation(image)
        return image * (1 + side)

    fixed = halves(points)
    moving = halves(truth.inverse().transform_points(points.reshape(-1, 3)).reshape(points.shape))
    given = segmentation_overlap(fixed, moving, truth.inverse())
    (warning,) = worse_or_wrong_way(truth.inverse(), None, given, fixed, moving)
    quoted = float(warning.split("Dice is ")[1].split(" as given")[0])
    assert len(given.after) == 2 and abs(quoted - np.mean([row.dice for row in given.after])) < 0.02, warning

    # A small structure apart before and after (Dice 0 -> 0: it never 'fell') is named too (a helper's sweep: the
    # inverse given, nothing said); one that stays apart either way is not called the wrong way round.
    small = rigid_transform(0.0, (0.0, 0.0, 1.0), (0.0, 0.0, 20.0))

    def blob(at: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray((np.sum(at**2, axis=-1) <= 8.0**2).astype(np.uint8))
        image.SetSpacing((2.0,) * 3)
        image.SetOrigin((-60.0,) * 3)
        return image

    fixed = blob(points)
    moving = blob(small.inverse().transform_points(points.reshape(-1, 3)).reshape(points.shape))
    given = segmentation_overlap(fixed, moving, small.inverse())
    assert given.before[0].dice == 0.0 and given.after[0].dice == 0.0
    (warning,) = worse_or_wrong_way(small.inverse(), None, given, fixed, moving)
    assert warning.startswith(WRONG_WAY + ": the segments' Dice is 0.00 as given and 1.00"), warning
    apart = rigid_transform(0.0, (0.0, 0.0, 1.0), (0.0, 30.0, 0.0))  # neither way
    assert worse_or_wrong_way(apart, None, segmentation_overlap(fixed, moving, apart), fixed, moving) == []


def test_two_swapped_labels_among_good_landmarks_are_named():
    """12 landmarks mapped exactly, two of the moving list's labels swapped: 10 at 0.0 mm and two at 60-90 mm read
    'TRE 15.3 mm mean' without a word (a helper's sweep)."""
    from MultimodalRegistrationLib.core.transforms import rigid_transform
    from MultimodalRegistrationLib.qa.landmarks import landmark_errors

    rng = np.random.default_rng(5)
    truth = rigid_transform(10.0, (0.0, 0.3, 1.0), (5.0, 2.0, -4.0))
    fixed = rng.uniform(-50.0, 50.0, (12, 3))
    moving = truth.transform_points(fixed)
    labels = [f"L{i + 1}" for i in range(12)]
    moving_labels = list(labels)
    moving_labels[2], moving_labels[7] = moving_labels[7], moving_labels[2]
    clean = landmark_errors(lps_ras_points(fixed), lps_ras_points(moving), truth, labels, labels)
    assert clean.tre_after.max_mm < 1e-6 and not any("far off" in w for w in clean.warnings)
    errors = landmark_errors(lps_ras_points(fixed), lps_ras_points(moving), truth, labels, moving_labels)
    assert errors.tre_after.max_mm > 20.0
    (warning,) = [w for w in errors.warnings if "far off the others" in w]
    assert "'L3'" in warning and "'L8'" in warning and "L3 and L8 look swapped" in warning, warning
