"""No false mirror verdicts (issue 13, item 3): a mirror refusal needs a margin well above the pair's
metric noise; within it, the search warns and goes on with the best rotation."""

import re

import numpy as np
import pytest
import SimpleITK as sitk
from cohort_data import mirrored_left_right
from MultimodalRegistrationLib.core.choices import DEFAULT_SEED
from MultimodalRegistrationLib.core.errors import InputError
from MultimodalRegistrationLib.core.phantom import mean_error_mm
from MultimodalRegistrationLib.core.transforms import Transform, rigid_transform
from MultimodalRegistrationLib.registration.pose import mirror
from MultimodalRegistrationLib.registration.pose.anypose import POLISH_SAMPLES, POLISH_SPACING_MM, search_any_pose
from MultimodalRegistrationLib.registration.pose.coarse import CoarseImage
from MultimodalRegistrationLib.registration.register import register

GLAND_RADII = np.array([21.0, 15.0, 17.0])  # LR, AP, IS semi-axes (mm) of a prostate-like gland


def _grid(size_mm, spacing_mm: float, center_mm) -> sitk.Image:
    size = np.ceil(np.asarray(size_mm, float) / spacing_mm).astype(int)
    image = sitk.Image([int(n) for n in size], sitk.sitkFloat32)
    image.SetSpacing([spacing_mm] * 3)
    image.SetOrigin((np.asarray(center_mm, float) - (size - 1) * spacing_mm / 2).tolist())
    return image


def _points(image: sitk.Image) -> np.ndarray:
    """(z, y, x, 3) LPS points of an image with an identity direction."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in image.GetSize()[::-1]], indexing="ij")[::-1], axis=-1)
    return np.asarray(image.GetOrigin()) + index * np.asarray(image.GetSpacing())


def _blob(points: np.ndarray, center, radii) -> np.ndarray:
    """Soft (2 mm ramp) membership of an ellipsoid."""
    distance = np.sqrt((((points - np.asarray(center, float)) / np.asarray(radii, float)) ** 2).sum(-1))
    return np.clip(0.5 + (1.0 - distance) * min(radii) / 2.0, 0.0, 1.0)


def _anatomy(points: np.ndarray, ultrasound: bool) -> np.ndarray:
    """A gland under a bladder and before a rectum, all symmetric about the left-right midplane, plus
    structures either modality shows and the other does not: on ultrasound, a hypoechoic cyst in the
    gland and a node beside it on the right; on MR, a T2-dark lesion and a node on the left. A mirror
    image lines them up."""
    gland = _blob(points, (0, 0, 0), GLAND_RADII)
    bladder = _blob(points, (0, -4, 30), (24, 18, 14))
    rectum = _blob(points, (0, 24, -2), (12, 8, 22))
    side = -1.0 if ultrasound else 1.0  # LPS: -x is right
    inner = _blob(points, (11 * side, -2, 2), (10, 8, 10)) * gland
    seen_once = np.maximum(inner, _blob(points, (26 * side, -4, -8), (7, 7, 9)))
    if ultrasound:
        values, bladder_value, rectum_value = 0.55 + 0.15 * gland - 0.5 * seen_once, 0.04, 0.3
    else:
        values, bladder_value, rectum_value = 0.8 - 0.3 * gland - 0.45 * seen_once, 1.0, 0.1
    values = values * (1 - bladder) + bladder_value * bladder
    return values * (1 - rectum) + rectum_value * rectum


def ultrasound_like_pair(truth: Transform, seed: int) -> tuple[sitk.Image, sitk.Image, np.ndarray]:
    """A transrectal-ultrasound-like fixed image (70 x 60 x 56 mm at 1 mm: Rayleigh speckle correlated
    over about 1 mm, a fan opening from the probe in the rectum) and a T2-MR-like moving one
    (120 x 120 x 100 mm at 1.5 mm, noise), ``truth`` (fixed -> moving) apart; and points in the gland."""
    rng = np.random.default_rng(seed)
    fixed = _grid((70, 60, 56), 1.0, (0, -2, 2))
    points = _points(fixed)
    values = _anatomy(points, ultrasound=True)
    smooth = sitk.SmoothingRecursiveGaussian
    quadratures = [
        sitk.GetArrayFromImage(smooth(sitk.GetImageFromArray(rng.normal(size=values.shape)), 1.0)) for _ in "iq"
    ]
    speckle = np.hypot(*quadratures)  # the envelope of a complex Gaussian field: Rayleigh
    values *= 1 + 0.6 * (speckle / speckle.mean() - 1)
    apex = points - np.array([0.0, 24.0, -2.0])  # the probe, in the rectum: the fan opens anteriorly
    angle = np.degrees(np.arctan2(apex[..., 0], -apex[..., 1]))
    reach = np.hypot(apex[..., 0], apex[..., 1])
    values = np.where((np.abs(angle) < 80) & (reach > 3) & (reach < 80), values, 0.0)
    ultrasound = sitk.GetImageFromArray(values.astype(np.float32))
    ultrasound.CopyInformation(fixed)

    moving = _grid((120, 120, 100), 1.5, truth.transform_points([[0.0, 0.0, 0.0]])[0] + [5.0, -4.0, 6.0])
    shape = moving.GetSize()[::-1]
    anatomy = _anatomy(truth.inverse().transform_points(_points(moving).reshape(-1, 3)).reshape(*shape, 3), False)
    anatomy = anatomy * (1 + 0.1 * rng.normal(size=shape)) + 0.03 * rng.normal(size=shape)
    mr = sitk.GetImageFromArray(np.clip(anatomy, 0, None).astype(np.float32))
    mr.CopyInformation(moving)

    inside = rng.uniform(-1, 1, (2000, 3)) * GLAND_RADII
    inside = inside[((inside / GLAND_RADII) ** 2).sum(axis=1) < 1][:300]
    return ultrasound, mr, inside


def old_rule_refuses(mirrored_metric: float, metric: float) -> bool:
    """The verdict before issue 13: refuse when the mirrored pose wins by 1.5% and 0.01 nats."""
    gap = mirrored_metric - metric
    return gap > 0.015 * metric and gap > 0.01


def test_the_margin_grows_with_the_noise_and_for_low_information():
    # The phantom with a flipped header: 0.767 against 0.717, standard error 0.005: clearly mirrored.
    flipped = mirror.MirrorMargin(mirrored_metric=0.767, metric=0.717, noise=0.005)
    assert flipped.information_factor == 1.0 and flipped.needed == pytest.approx(0.015)
    assert flipped.clear and flipped.summary()["verdict"] == "mirrored"
    # The MR-ultrasound pair of issue 13: 0.379 against 0.356. Its standard error is not published;
    # at what these fields of view give (0.006) the margin needed is 3 x 0.006 x 0.6 / 0.356.
    thin = mirror.MirrorMargin(mirrored_metric=0.379, metric=0.356, noise=0.006)
    assert old_rule_refuses(0.379, 0.356)
    assert thin.information_factor == pytest.approx(0.6 / 0.356)
    assert thin.needed == pytest.approx(0.0303, abs=1e-3)
    assert not thin.clear and thin.doubtful and thin.summary()["verdict"] == "doubtful"
    # Even with no noise at all, a low-information pair needs more than the floor.
    assert mirror.MirrorMargin(0.379, 0.356, noise=0.0).needed == pytest.approx(0.01 * 0.6 / 0.356)
    # Within a standard error and the floor it is neither a verdict nor worth a warning: a symmetric head.
    symmetric = mirror.MirrorMargin(mirrored_metric=0.702, metric=0.700, noise=0.005)
    assert not symmetric.clear and not symmetric.doubtful and symmetric.summary()["verdict"] == "proper"
    # Below the floor but by nearly two standard errors (a flipped phantom turned 173 degrees): a warning.
    weak = mirror.MirrorMargin(mirrored_metric=0.791, metric=0.782, noise=0.005)
    assert not old_rule_refuses(0.791, 0.782) and weak.doubtful and not weak.clear


def _bootstrap_differences(scorer, pose_a, pose_b, replicates: int, seed: int) -> np.ndarray:
    """MI(pose_a) - MI(pose_b) over Poisson-bootstrap replicates of the scorer's samples."""
    weights = np.random.default_rng(seed).poisson(1.0, (replicates, len(scorer.points))).astype(float)
    values = []
    for pose in (pose_a, pose_b):
        to_index = (scorer.moving.to_index @ pose).astype(np.float32)
        moving = scorer.moving(to_index[:3, :3] @ scorer.points.T + to_index[:3, 3:])
        low = np.minimum(moving.astype(np.int32), scorer.bins - 2)
        split = moving - low
        cells = scorer.bins * scorer.bins
        cell = (np.arange(replicates)[:, None] * cells + scorer.fixed_bins * scorer.bins + low).ravel()
        joint = np.bincount(cell, (weights * (1 - split)).ravel(), replicates * cells)
        joint += np.bincount(cell + 1, (weights * split).ravel(), replicates * cells)
        joint = joint.reshape(replicates, scorer.bins, scorer.bins) / weights.sum(axis=1)[:, None, None]
        product = joint.sum(2, keepdims=True) * joint.sum(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            values.append(np.where(joint > 0, joint * np.log(joint / product), 0.0).sum(axis=(1, 2)))
    return values[0] - values[1]


def test_the_noise_is_the_standard_error_of_the_difference(small_pair):
    fixed = CoarseImage.of(small_pair.fixed, POLISH_SPACING_MM, None)
    moving = CoarseImage.of(small_pair.moving, POLISH_SPACING_MM, None)
    scorer = fixed.scorer(moving, fixed.dilated(2), samples=POLISH_SAMPLES, bins=24, seed=0)
    truth = small_pair.truth.matrix
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])  # the head's left-right mirror image through its midplane
    twin = truth @ flip
    noise = mirror.difference_standard_error(scorer, twin, truth)
    # The influence of the samples reproduces the scorer's mutual information exactly ...
    _, value = mirror._sample_influence(scorer, truth)
    assert value == pytest.approx(scorer(truth[None])[0], abs=1e-9)
    # ... and its spread the bootstrap's standard error; the same every time.
    bootstrap = _bootstrap_differences(scorer, twin, truth, replicates=120, seed=1).std(ddof=1)
    assert 0.75 < noise / bootstrap < 1.33, f"influence {noise:.4f}, bootstrap {bootstrap:.4f}"
    assert mirror.difference_standard_error(scorer, twin, truth) == noise
    assert 0.002 < noise < 0.01


def test_a_truly_mirrored_phantom_is_still_refused_with_its_margin_and_noise(small_pair):
    flipped = mirrored_left_right(small_pair.moving)  # a header whose first axis points the wrong way
    with pytest.raises(InputError) as refused:
        register(small_pair.fixed, flipped, engine="elastix")
    message = str(refused.value)
    assert "mirrored compared with the fixed image" in message and "left-right axis (image axis 0)" in message
    numbers = r"mutual information (0\.\d+) against (0\.\d+): a margin of (0\.\d+), beyond this pair's metric noise"
    found = re.search(numbers + r" of ±(0\.\d+): 3 standard errors of (0\.\d+)\)", message)
    assert found, message
    mirrored, proper, gap, needed, noise = map(float, found.groups())
    assert gap > 2 * needed and needed >= 3 * noise > 0.0
    assert mirrored > proper > mirror.INFORMATIVE_MI  # an informative pair: no low-information factor


# Seed 13 of the generated ultrasound-like pairs, searched with the registration's default seed: the
# search lands 1.4 mm from the truth; the mirror image, lining up the structures each modality shows
# alone, scores 0.270 against 0.248 (+8.7%, standard error 0.007).
ULTRASOUND_SEED = 13


@pytest.fixture(scope="module")
def ultrasound_case():
    rng = np.random.default_rng(100 + ULTRASOUND_SEED)
    truth = rigid_transform(float(rng.uniform(0, 40)), tuple(rng.normal(size=3)), tuple(rng.uniform(-15, 15, 3)))
    fixed, moving, gland = ultrasound_like_pair(truth, ULTRASOUND_SEED)
    return fixed, moving, truth, gland


def test_a_low_information_pair_is_not_refused_but_warned(ultrasound_case):
    fixed, moving, truth, gland = ultrasound_case
    search = search_any_pose(fixed, moving, seed=DEFAULT_SEED)  # as register() runs it
    # The mirrored pose wins by several percent: the rule before issue 13 refused this pair.
    assert search.metric < 0.3 and search.mirrored_metric > search.metric * 1.05
    assert old_rule_refuses(search.mirrored_metric, search.metric)
    # Now: within the noise of this low-information pair, so a warning naming both numbers.
    margin = search.mirror
    assert margin.doubtful and not margin.clear and margin.gap < margin.needed / 1.5
    assert margin.needed == pytest.approx(3 * margin.noise * mirror.INFORMATIVE_MI / search.metric)
    (warning,) = search.warnings
    assert (
        f"a mirrored pose scores {search.mirrored_metric:.3f} against {search.metric:.3f} for the best rotation"
        in warning
    )
    assert f"within this pair's metric noise (±{margin.needed:.3f}: 3 standard errors of {margin.noise:.3f}" in warning
    assert "continuing with the rotation; if the result looks mirrored, check the image headers" in warning
    assert search.summary()["mirror"]["verdict"] == "doubtful" and search.summary()["warnings"] == [warning]
    # The start is the best rotation, near the truth.
    assert np.linalg.det(search.transform.matrix[:3, :3]) > 0
    assert mean_error_mm(search.transform, truth, gland) < 3.0


@pytest.fixture(scope="module")
def ultrasound_registered(ultrasound_case):
    fixed, moving, _, _ = ultrasound_case
    return register(fixed, moving, engine="elastix", preset="rigid")


@pytest.mark.slow
def test_the_low_information_pair_registers_from_the_rotation(ultrasound_case, ultrasound_registered):
    _, _, truth, gland = ultrasound_case
    result = ultrasound_registered
    search = result.provenance.any_pose
    assert search.mirror.verdict == "doubtful" and len(search.warnings) == 1
    assert np.linalg.det(result.transform.matrix[:3, :3]) > 0
    error = mean_error_mm(result.transform, truth, gland)
    assert error < 2.0, f"mean error {error:.2f} mm in the gland"


@pytest.mark.slow
def test_the_warning_reaches_the_registration_summary(ultrasound_registered):
    assert any("a mirrored pose scores" in warning for warning in ultrasound_registered.summary().warnings)
