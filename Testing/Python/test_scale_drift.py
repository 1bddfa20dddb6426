"""A similarity result whose size left the start search's far behind, where the images confirm the start, returns the
start: the reviewer's skull-stripped MNI T1 against a pseudo-CT of the same head with its skull had ended 8.5 mm off
(start 0.15 mm), exit 0, without a word. (Rebuilt here with another noise, the same run lands 1.9 mm off without
drifting: the rule is tested on the poses.)"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from conftest import shared_data
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.pose.centres import foreground_center
from MultimodalRegistrationLib.registration.rules.scale_drift import SCALE_DRIFT, scale_drift_reason


def _rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    matrix = np.eye(3)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    matrix[i, i] = matrix[j, j] = c
    matrix[i, j], matrix[j, i] = -s, s
    return matrix


def _pseudo_ct_with_skull(t1: sitk.Image, scale: float) -> tuple[sitk.Image, np.ndarray]:
    """A CT-like image of the brain the skull-stripped T1 holds (from its grey and white matter maps), with CSF,
    skull and scalp rings around it, on a grid ``scale`` times as fine, turned and shifted by its header (the
    reviewer's case); and the truth (4x4, fixed -> moving, LPS mm)."""
    maps = [sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data("mni_icbm152", f"mni_icbm152_{name}_tal_nlin_sym_09a_"
                                                                   "converted.nii.gz")))).astype(float)
            for name in ("gm", "wm")]  # fmt: skip
    grey, white = (array / max(array.max(), 1.0) for array in maps)
    brain = sitk.GetArrayFromImage(t1) > 0
    csf = np.clip(brain - grey - white, 0, 1)
    outside = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        sitk.GetImageFromArray(brain.astype(np.uint8)), insideIsPositive=False, useImageSpacing=True))  # fmt: skip
    ct = np.full(brain.shape, -1000.0)
    ct[brain] = (10 * csf + 40 * grey + 28 * white)[brain]
    for low, high, value in ((0, 3, 15), (3, 9, 900), (9, 13, 30)):
        ct[(outside > low) & (outside <= high)] = value
    ct += np.random.default_rng(1).normal(0, 4, ct.shape)
    moving = sitk.GetImageFromArray(np.round(ct).astype(np.int16))
    fixed_direction, fixed_origin = np.asarray(t1.GetDirection()).reshape(3, 3), np.asarray(t1.GetOrigin())
    direction = _rotation(0, 5) @ _rotation(1, 12) @ _rotation(2, -10) @ fixed_direction
    centre = fixed_origin + fixed_direction @ (np.asarray(t1.GetSize()) / 2.0)
    origin = centre + np.array([6.0, 4.0, -10.0]) - direction @ (scale * np.asarray(t1.GetSize()) / 2.0)
    moving.SetSpacing([scale] * 3)
    moving.SetDirection(direction.ravel().tolist())
    moving.SetOrigin(origin.tolist())
    linear = direction * scale @ np.linalg.inv(fixed_direction)
    truth = np.eye(4)
    truth[:3, :3], truth[:3, 3] = linear, origin - linear @ fixed_origin
    return moving, truth


def _scaled_about(matrix: np.ndarray, factor: float, centre: np.ndarray) -> np.ndarray:
    """``matrix`` (fixed -> moving) with the moving anatomy scaled by ``factor`` about where it takes ``centre``."""
    moved = matrix[:3, :3] @ centre + matrix[:3, 3]
    scale = np.eye(4)
    scale[:3, :3] *= factor
    scale[:3, 3] = moved - factor * moved
    return scale @ matrix


def test_a_result_that_drifted_in_size_from_a_start_the_images_confirm_is_refused():
    """The rule on the reviewer's kind of pair: the truth as the start, the result grown 16% as elastix grew it
    (0.90 -> 1.04). On the reviewer's own file the run now returns its start: 8.5 -> 0.16 mm."""
    t1 = sitk.ReadImage(str(shared_data("mni_icbm152", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")))
    moving, truth = _pseudo_ct_with_skull(t1, 0.9)
    centre = foreground_center(t1)
    grown = Transform.from_matrix(_scaled_about(truth, 1.16, centre))
    reason = scale_drift_reason(t1, moving, Transform.from_matrix(truth), grown)
    assert reason is not None and reason.startswith(f"{SCALE_DRIFT} from the start search's 0.90 to 1.04 (+16%")
    # Within 10% of the start: not questioned. A start the images confirm less than the result: kept result.
    near = Transform.from_matrix(_scaled_about(truth, 1.05, centre))
    assert scale_drift_reason(t1, moving, Transform.from_matrix(truth), near) is None
    assert scale_drift_reason(t1, moving, grown, Transform.from_matrix(truth)) is None


def _similarity(scale: float, degrees: float = 0.0) -> Transform:
    matrix = np.eye(4)
    matrix[:3, :3] = scale * _rotation(2, degrees)
    matrix[:3, 3] = [3.0, -2.0, 5.0]
    return Transform.from_matrix(matrix)


def test_a_one_scale_result_drifted_far_from_its_start_is_warned():
    """Poses as the real cord pair's run had them (the search's 1.18, the result 0.62); drifts as right results show
    (0.97 on cleared stacks, 0.916 on the phantom's anisotropic grids) and an affine result (its isotropic size 0.85 of the start, as right affine results on shrunken stacks)
    are not warned."""
    from MultimodalRegistrationLib.registration.rules.scale_drift import SIZE_DRIFTED, size_drift_warning

    warning = size_drift_warning(_similarity(1.18, 179.0), _similarity(0.62, 150.0))
    assert warning is not None and warning.startswith(f"{SIZE_DRIFTED} 1.18 for 0.62 (-47%")
    assert size_drift_warning(_similarity(0.67), _similarity(0.65)) is None
    assert size_drift_warning(_similarity(1.084), _similarity(0.993)) is None  # the phantom's grids: 8.4%
    assert size_drift_warning(_similarity(1.084), _similarity(0.85)) is not None
    stretched = _similarity(0.67).matrix @ np.diag([0.9, 0.9, 0.7, 1.0])
    assert size_drift_warning(_similarity(0.67), Transform.from_matrix(stretched)) is None


def test_the_real_cord_pair_under_similarity_is_warned_for_its_size():
    """The SCT T1w (fixed) and T2 of one subject, elastix similarity: the search started at 1.18 turned 179 degrees,
    and the result shrank to 0.62, 34 mm from the rigid result with the cords apart; it had passed unwarned."""
    from MultimodalRegistrationLib.registration.register import register
    from MultimodalRegistrationLib.registration.rules.scale_drift import SIZE_DRIFTED

    t1 = sitk.ReadImage(str(shared_data("sct", "t1w.nii.gz")), sitk.sitkFloat32)
    t2 = sitk.ReadImage(str(shared_data("sct", "t2.nii.gz")), sitk.sitkFloat32)
    result = register(t1, t2, engine="elastix", preset="similarity")
    drifted = [warning for warning in result.warnings if warning.startswith(SIZE_DRIFTED)]
    assert len(drifted) == 1 and "1.18 for 0.62" in drifted[0], result.warnings
    assert abs(np.linalg.det(result.transform.matrix[:3, :3])) ** (1 / 3) < 0.7
