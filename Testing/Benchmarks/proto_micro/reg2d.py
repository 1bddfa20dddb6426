"""Prototype (issue 23): 2D registration, RGB to one channel, a 2D any-pose search, both engines, 2D QA.

Not library code. All 2D transforms are 3x3 homogeneous matrices mapping fixed points to moving points
(LPS x, y in mm): x_m = A x_f + t, like every library transform. They are written for Slicer and
SimpleITK as the 3D embedding (4x4 with z untouched: AffineTransform_double_3_3), see write_transform.

* RGB -> one channel (:func:`to_gray`): "od" (default): the total optical density
  -log10(I / I_glass) summed over R, G, B (Beer-Lambert: linear in the amount of any dye, 0 on bare
  glass, like air on MR; I_glass = the 99th percentile of each channel). Also "luminance" (Rec. 709)
  and "hematoxylin" (colour deconvolution, Ruifrok & Johnston 2001: the H channel's optical density).
* Pixel size: from the file when it carries one (TIFF/JPEG resolution tags, read by ITK; PNG pHYs via
  Pillow), else --spacing; 1.0 or a screen dpi (72/96) counts as unknown (see pixel_size).
* 2D any-pose search (:func:`search_2d`): every 5 deg, mirrored too (a section can be mounted
  face down), isotropic scales when asked, each translated so the foreground centroids meet; mutual
  information from samples *in the moving tissue* mapped into the fixed image (a histology section is
  tissue on glass: the glass says nothing about where the skull was), so the sample count is the same
  for every pose and no small overlap can win; the best few refined by a pattern search.
* Engines: elastix through itk-elastix's 2D float class (itkElastixRegistrationMethodIF2IF2, same module
  as the 3D one) with the project's parameter files unchanged; ANTs through antspyx 2D images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[3]
PRESETS = ROOT / "Resources" / "Presets"
RUIFROK = np.array([[0.650, 0.704, 0.286], [0.072, 0.990, 0.105], [0.268, 0.570, 0.776]])
SCREEN_DPI_MM = {round(25.4 / dpi, 6) for dpi in (72, 96)}


# ----------------------------------------------------------------------------------- input
def pixel_size(path: str | Path, image: sitk.Image, given_mm: float | None) -> tuple[float, str]:
    """(pixel size in mm, where it came from). ``given_mm`` (--spacing) wins; then the file's (ITK reads
    TIFF and JPEG resolution tags; Pillow reads PNG pHYs); 1.0 and 72/96 dpi are ITK's and the
    writers' defaults, not a measurement: unknown, and the caller must refuse without --spacing."""
    if given_mm:
        return float(given_mm), "--spacing"
    spacing = round(float(image.GetSpacing()[0]), 6)
    if str(path).lower().endswith(".png"):
        from PIL import Image

        dpi = Image.open(path).info.get("dpi")
        if dpi and dpi[0] > 0:
            spacing = round(25.4 / float(dpi[0]), 6)
    if spacing == 1.0 or spacing in SCREEN_DPI_MM:
        return float("nan"), "unknown"
    return spacing, "file"


def to_gray(image: sitk.Image, mode: str = "od") -> sitk.Image:
    """One float channel from an RGB(A) or scalar 2D image (see the module notes)."""
    if image.GetNumberOfComponentsPerPixel() == 1:
        return sitk.Cast(image, sitk.sitkFloat32)
    rgb = sitk.GetArrayFromImage(image)[..., :3].astype(np.float32)
    if mode == "luminance":
        gray = rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    else:
        glass = np.percentile(rgb.reshape(-1, 3), 99, axis=0) + 1.0
        density = -np.log10(np.clip((rgb + 1.0) / glass, 1e-3, 1.0))
        if mode == "od":
            gray = density.sum(axis=-1)
        elif mode == "hematoxylin":
            unmix = np.linalg.inv(RUIFROK / np.linalg.norm(RUIFROK, axis=1, keepdims=True))
            gray = np.clip((density @ unmix)[..., 0], 0, None)
        else:
            raise ValueError(mode)
    result = sitk.GetImageFromArray(gray.astype(np.float32))
    result.SetSpacing(image.GetSpacing())
    result.SetOrigin(image.GetOrigin())
    result.SetDirection(image.GetDirection())
    return result


# ----------------------------------------------------------------------------------- search
def _shrink(image: sitk.Image, spacing: float) -> sitk.Image:
    factor = max(1, int(round(spacing / image.GetSpacing()[0])))
    return sitk.Cast(sitk.BinShrink(image, [factor, factor]), sitk.sitkFloat32) if factor > 1 else image


def _foreground(image: sitk.Image) -> np.ndarray:
    mask = sitk.OtsuThreshold(image, 0, 1, 128)
    mask = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(mask, [2, 2]))
    array = sitk.GetArrayFromImage(mask).astype(bool)
    labels, count = ndimage.label(array)
    if count > 1:  # the largest piece: dust and labels on the slide are not the tissue
        sizes = ndimage.sum(array, labels, range(1, count + 1))
        array = labels == (1 + int(np.argmax(sizes)))
    return array


def _index_matrix(image: sitk.Image) -> np.ndarray:
    """3x3: continuous (i, j) index -> physical (x, y)."""
    matrix = np.eye(3)
    matrix[:2, :2] = np.asarray(image.GetDirection()).reshape(2, 2) @ np.diag(image.GetSpacing())
    matrix[:2, 2] = image.GetOrigin()
    return matrix


def _rank(values: np.ndarray, reference: np.ndarray, bins: int) -> np.ndarray:
    levels = np.percentile(reference, np.linspace(0, 100, bins + 1)[1:-1])
    return np.searchsorted(levels, values).astype(np.int32)


class MovingTissueScorer:
    """MI of 3x3 fixed -> moving poses from samples in the moving tissue mapped into the fixed image."""

    def __init__(self, fixed: sitk.Image, moving: sitk.Image, bins: int = 24, samples: int = 6000, seed: int = 0):
        self.bins = bins
        fixed_array = sitk.GetArrayFromImage(fixed).astype(np.float32)
        fixed_fg = _foreground(fixed)
        self.fixed_bins = np.pad(_rank(fixed_array, fixed_array[fixed_fg], bins - 1) + 1, 1)  # 0 = outside
        self.fixed_bins[1:-1, 1:-1][~ndimage.binary_dilation(fixed_fg, iterations=3)] = 0
        self.fixed_to_index = np.linalg.inv(_index_matrix(fixed))
        moving_array = sitk.GetArrayFromImage(moving).astype(np.float32)
        tissue = _foreground(moving)
        self.tissue = tissue
        rng = np.random.default_rng(seed)
        index = np.argwhere(tissue)[:, ::-1].astype(float)
        if len(index) > samples:
            index = index[rng.choice(len(index), samples, replace=False)]
        self.moving_bins = _rank(moving_array[index[:, 1].astype(int), index[:, 0].astype(int)],
                                 moving_array[tissue], bins)  # fmt: skip
        index += rng.uniform(-0.5, 0.5, index.shape)
        to_physical = _index_matrix(moving)
        self.points = index @ to_physical[:2, :2].T + to_physical[:2, 2]  # moving mm
        self.evaluations = 0

    def __call__(self, poses: np.ndarray) -> np.ndarray:
        poses = np.asarray(poses, float).reshape(-1, 3, 3)
        self.evaluations += len(poses)
        inverse = self.fixed_to_index @ np.linalg.inv(poses)  # moving mm -> fixed index
        index = np.einsum("kij,nj->kni", inverse[:, :2, :2], self.points) + inverse[:, None, :2, 2]
        column = np.rint(index[..., 0]).astype(np.int64) + 1
        row = np.rint(index[..., 1]).astype(np.int64) + 1
        shape = self.fixed_bins.shape
        inside = (column >= 0) & (column < shape[1]) & (row >= 0) & (row < shape[0])
        fixed = np.where(inside, self.fixed_bins[np.clip(row, 0, shape[0] - 1), np.clip(column, 0, shape[1] - 1)], 0)
        bins = self.bins
        cells = (np.arange(len(poses))[:, None] * bins + fixed) * bins + self.moving_bins[None]
        joint = np.bincount(cells.ravel(), minlength=len(poses) * bins * bins).reshape(-1, bins, bins)
        joint = joint / self.points.shape[0]
        product = joint.sum(2, keepdims=True) * joint.sum(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(joint > 0, joint * np.log(joint / product), 0).sum(axis=(1, 2))


def _pose(angle, scale, mirror, fixed_center, moving_center, shift=(0.0, 0.0)) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    linear = scale * np.array([[c, -s], [s, c]]) @ (np.diag([-1.0, 1.0]) if mirror else np.eye(2))
    pose = np.eye(3)
    pose[:2, :2] = linear
    pose[:2, 2] = moving_center - linear @ (fixed_center + np.asarray(shift))
    return pose


def _refine(score, poses, center, radius, start_mm, stop_mm, use_scale, rounds=40):
    """Pattern search over (turn, shift x, shift y, log scale) in mm at ``radius``, moves applied in fixed space."""
    poses, values = np.array(poses, float), score(poses)
    steps = np.full(len(poses), float(start_mm))
    dims = 4 if use_scale else 3
    unit = np.concatenate([np.eye(dims), -np.eye(dims)])

    def moves(deltas):
        out = np.tile(np.eye(3), (len(deltas), 1, 1))
        angle = deltas[:, 0] / radius
        scale = np.exp(deltas[:, 3] / radius) if deltas.shape[1] > 3 else np.ones(len(deltas))
        c, s = np.cos(angle) * scale, np.sin(angle) * scale
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
        out[:, :2, 2] = center - np.einsum("kij,j->ki", out[:, :2, :2], center) + deltas[:, 1:3]
        return out

    for _ in range(rounds):
        active = np.flatnonzero(steps >= stop_mm)
        if not len(active):
            break
        trials = poses[active][:, None] @ moves((unit[None] * steps[active, None, None]).reshape(-1, dims)).reshape(len(active), -1, 3, 3)
        trial_values = score(trials.reshape(-1, 3, 3)).reshape(len(active), -1)
        for row, pose in enumerate(active):
            best = int(np.argmax(trial_values[row]))
            if trial_values[row, best] > values[pose] + 1e-5:
                poses[pose], values[pose] = trials[row, best], trial_values[row, best]
            else:
                steps[pose] /= 2
    return poses, values


@dataclass
class Search2D:
    pose: np.ndarray
    metric: float
    mirrored: bool
    scale: float
    seconds: float
    evaluations: int


def search_2d(
    fixed: sitk.Image, moving: sitk.Image, scale: bool = False, mirror: bool = True, step_deg: float = 5.0,
    resolution: int = 96, seed: int = 0,
) -> Search2D:  # fmt: skip
    """Any-pose search in 2D (see the module notes). ``resolution``: coarse images of about that many
    pixels across the fixed foreground; refinement at twice that."""
    started = time.perf_counter()
    extent = max(np.asarray(fixed.GetSize()) * np.asarray(fixed.GetSpacing()))
    coarse_mm = extent / resolution
    fixed_c, moving_c = _shrink(fixed, coarse_mm), _shrink(moving, coarse_mm * 0.5)
    score = MovingTissueScorer(fixed_c, moving_c, bins=16, samples=3000, seed=seed)
    fixed_fg = _foreground(fixed_c)
    fixed_points = np.argwhere(fixed_fg)[:, ::-1] @ _index_matrix(fixed_c)[:2, :2].T + _index_matrix(fixed_c)[:2, 2]
    fixed_center = fixed_points.mean(axis=0)
    moving_center = score.points.mean(axis=0)
    radius = float(np.sqrt(((fixed_points - fixed_center) ** 2).sum(axis=1).mean()))
    scales = [1.0]
    if scale:  # seeds from the foreground areas; the grid brackets them widely (the fixed may show more)
        moving_area = score.tissue.sum() * np.prod(moving_c.GetSpacing())
        seed_scale = np.sqrt(moving_area / (fixed_fg.sum() * np.prod(fixed_c.GetSpacing())))
        scales = seed_scale * 2 ** (np.arange(-6, 7) / 8)
    angles = np.radians(np.arange(0, 360, step_deg))
    poses = np.stack([_pose(a, s, m, fixed_center, moving_center) for s in scales for m in ((False, True) if mirror else (False,)) for a in angles])
    values = score(poses)
    order = np.argsort(-values)[:8]
    refined, refined_values = _refine(score, poses[order], fixed_center, radius, 8 * coarse_mm, coarse_mm / 4, scale)
    fine = MovingTissueScorer(_shrink(fixed, coarse_mm / 2), _shrink(moving, coarse_mm / 4), bins=24, samples=8000, seed=seed)
    top = np.argsort(-fine(refined))[:3]
    polished, polished_values = _refine(fine, refined[top], fixed_center, radius, 2 * coarse_mm, coarse_mm / 8, scale)
    best = int(np.argmax(polished_values))
    pose = polished[best]
    return Search2D(pose, float(polished_values[best]), bool(np.linalg.det(pose[:2, :2]) < 0),
                    float(np.sqrt(abs(np.linalg.det(pose[:2, :2])))), time.perf_counter() - started,
                    score.evaluations + fine.evaluations)  # fmt: skip


# ----------------------------------------------------------------------------------- engines
def _read_preset(name: str) -> list[dict]:
    from MultimodalRegistrationLib.engines.presets import load_preset

    return [dict(m) for m in load_preset("elastix", name).elastix_maps]


def elastix_2d(fixed: sitk.Image, moving: sitk.Image, start: np.ndarray, preset: str, workdir: Path,
               seed: int = 0, threads: int = 2) -> np.ndarray:  # fmt: skip
    """elastix through itk-elastix's 2D float class, from ``start`` (3x3); returns the 3x3 result."""
    import itk
    from itk.elxParameterObjectPython import elastixParameterObject
    from itk.itkElastixRegistrationMethodPython import itkElastixRegistrationMethodIF2IF2

    def itk_image(image):
        result = itk.image_from_array(np.ascontiguousarray(sitk.GetArrayViewFromImage(image).astype(np.float32)))
        result.SetOrigin(image.GetOrigin())
        result.SetSpacing(image.GetSpacing())
        return result

    method = itkElastixRegistrationMethodIF2IF2.New()
    method.SetFixedImage(itk_image(fixed))
    method.SetMovingImage(itk_image(moving))
    parameters = elastixParameterObject.New()
    for stage in _read_preset(preset):
        stage.update({"AutomaticTransformInitialization": ["false"], "RandomSeed": [str(seed)],
                      "WriteResultImage": ["false"], "ITKTransformOutputFileNameExtension": ["h5"],
                      "WriteITKCompositeTransform": ["false"]})  # fmt: skip
        parameters.AddParameterMap(stage)
    method.SetParameterObject(parameters)
    initial = elastixParameterObject.New()
    initial.AddParameterMap({
        "Transform": ["AffineTransform"], "NumberOfParameters": ["6"],
        "TransformParameters": [repr(float(v)) for v in list(start[:2, :2].ravel()) + list(start[:2, 2])],
        "CenterOfRotationPoint": ["0", "0"], "InitialTransformParameterFileName": ["NoInitialTransform"],
        "HowToCombineTransforms": ["Compose"], "FixedImageDimension": ["2"], "MovingImageDimension": ["2"],
        "FixedInternalImagePixelType": ["float"], "MovingInternalImagePixelType": ["float"],
        "Size": [str(s) for s in fixed.GetSize()], "Index": ["0", "0"],
        "Spacing": [repr(float(s)) for s in fixed.GetSpacing()], "Origin": [repr(float(o)) for o in fixed.GetOrigin()],
        "Direction": [repr(float(d)) for d in fixed.GetDirection()], "UseDirectionCosines": ["true"],
    })  # fmt: skip
    method.SetInitialTransformParameterObject(initial)
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
    method.SetOutputDirectory(str(workdir))
    method.SetLogToConsole(False)
    method.UpdateLargestPossibleRegion()
    result = start
    for index in range(parameters.GetNumberOfParameterMaps()):
        result = matrix_of(sitk.ReadTransform(str(workdir / f"TransformParameters.{index}.h5"))) @ result
    return result


def matrix_of(transform: sitk.Transform) -> np.ndarray:
    """3x3 of any linear 2D SimpleITK transform (probing the origin and unit vectors)."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0)))
    matrix = np.eye(3)
    for axis in range(2):
        unit = [0.0, 0.0]
        unit[axis] = 1.0
        matrix[:2, axis] = np.asarray(transform.TransformPoint(unit)) - origin
    matrix[:2, 2] = origin
    return matrix


def sitk_affine_2d(matrix: np.ndarray) -> sitk.AffineTransform:
    affine = sitk.AffineTransform(2)
    affine.SetMatrix(matrix[:2, :2].ravel().tolist())
    affine.SetTranslation(matrix[:2, 2].tolist())
    return affine


def ants_2d(fixed: sitk.Image, moving: sitk.Image, start: np.ndarray, kind: str, workdir: Path) -> np.ndarray:
    """antspyx on 2D images from ``start`` (an ITK .mat initial transform); ``kind``: Rigid, Affine, SyN..."""
    import ants

    def ants_image(image):
        result = ants.from_numpy(sitk.GetArrayFromImage(image).astype(np.float32).T)
        result.set_spacing(image.GetSpacing())
        result.set_origin(image.GetOrigin())
        return result

    initial = workdir / "initial.mat"
    sitk.WriteTransform(sitk_affine_2d(start), str(initial))
    output = ants.registration(ants_image(fixed), ants_image(moving), type_of_transform=kind,
                               initial_transform=[str(initial)], outprefix=str(workdir / "ants_"),
                               aff_metric="mattes", verbose=False)  # fmt: skip
    linear = [p for p in output["fwdtransforms"] if p.endswith(".mat")]
    # ANTs writes the composed linear result (initial included) into its GenericAffine.mat
    return matrix_of(sitk.ReadTransform(linear[-1]))


# ----------------------------------------------------------------------------------- output and QA
def embed_3d(matrix: np.ndarray) -> np.ndarray:
    """The 4x4 (LPS) of a 3x3 2D transform, z untouched: what Slicer and 3D ITK tools apply to a 2D image
    loaded as a one-slice volume at z = its origin's (0)."""
    out = np.eye(4)
    out[:2, :2] = matrix[:2, :2]
    out[:2, 3] = matrix[:2, 2]
    return out


def write_transform(matrix: np.ndarray, path: str | Path, two_d: bool = False) -> None:
    """Write the fixed -> moving transform: as a 3D AffineTransform_double_3_3 (default: Slicer reads it
    exactly) or, with ``two_d``, as AffineTransform_double_2_2 (for 2D ITK tools; Slicer reads that too
    but sets its z scale to sqrt(|det A|), harmless at z = 0 only)."""
    if two_d:
        sitk.WriteTransform(sitk_affine_2d(matrix), str(path))
        return
    affine = sitk.AffineTransform(3)
    full = embed_3d(matrix)
    affine.SetMatrix(full[:3, :3].ravel().tolist())
    affine.SetTranslation(full[:3, 3].tolist())
    sitk.WriteTransform(affine, str(path))


def qa_2d(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray, truth_points=None, truth=None,
          checkerboard: str | Path | None = None) -> dict:  # fmt: skip
    """Landmark error (mm, when truth points and truth are given), Dice of the fixed foreground and the
    moving tissue resampled through the result, MI, and a checkerboard PNG."""
    transform = sitk_affine_2d(matrix)
    warped = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    tissue = sitk.GetImageFromArray(_foreground(moving).astype(np.uint8))
    tissue.CopyInformation(moving)
    warped_tissue = sitk.GetArrayFromImage(sitk.Resample(tissue, fixed, transform, sitk.sitkNearestNeighbor, 0)).astype(bool)
    result = {}
    if truth_points is not None and truth is not None:
        mapped = truth_points @ matrix[:2, :2].T + matrix[:2, 2]
        expected = truth_points @ truth[:2, :2].T + truth[:2, 2]
        back = (mapped - truth[:2, 2]) @ np.linalg.inv(truth[:2, :2]).T  # in fixed mm
        errors = np.linalg.norm(back - truth_points, axis=1)
        result.update(mean_error_mm=float(errors.mean()), max_error_mm=float(errors.max()),
                      moving_error_mm=float(np.linalg.norm(mapped - expected, axis=1).mean()))  # fmt: skip
    if checkerboard:
        a = sitk.RescaleIntensity(sitk.Cast(fixed, sitk.sitkFloat32), 0, 255)
        b = sitk.RescaleIntensity(warped, 0, 255)
        board = sitk.CheckerBoard(a, b, [8, 8])
        sitk.WriteImage(sitk.Cast(board, sitk.sitkUInt8), str(checkerboard))
    result["warped_tissue_fraction"] = float(warped_tissue.mean())
    return result
