"""Prototypes (c) and (d): deformable registration driven by the gland's distance maps, as SlicerProstate's
Distance Map Based Registration (DMBR, Fedorov et al. 2015) does it: rigid, then affine, then B-spline on
the signed distance maps of the two segmentations.

* :func:`distance_maps`: the fixed and the moving map (mm, negative inside, clamped at ``CLAMP_MM``), each
  the distance to its segment's *real* surface: where the fixed image's field of view cuts the segment (a
  TRUS fan), the cut face is not a surface, so it is left out of the map and the metric does not sample
  beyond the field of view (``metric_mask``).
* (c) :func:`elastix_deformable`, :func:`ants_deformable`: from a linear start (prototype (a)'s, judged by
  (b)), the moving map is resampled through the start onto the fixed grid, an optional affine stage and a
  B-spline (elastix: AdvancedMeanSquares + bending energy) or SyN (ANTs: mean squares) stage register the
  two maps, and the result is start o warp. The maps are smooth, so resampling them once costs nothing.
* (d) :func:`sitk_dmbr`: the whole DMBR chain in SimpleITK only (ImageRegistrationMethod, MeanSquares on
  the maps): Euler3D from the gland centroids (header rotation), affine, then B-spline (LBFGSB).

Every result maps fixed to moving points (LPS mm) and is checked for folding (min Jacobian determinant).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import surfaces as S
from MultimodalRegistrationLib.core.transforms import Transform
from MultimodalRegistrationLib.registration.rules.keep import minimum_jacobian

CLAMP_MM = 20.0
GRID_MM = 20.0  # B-spline control point spacing (final level)
BENDING_WEIGHT = 1.0  # relative to the mean squares (elastix UseRelativeWeights)


def _real_surface_distance(mask: sitk.Image, image: sitk.Image | None) -> sitk.Image:
    """Signed distance (mm, negative inside) to the mask's surface voxels that do not lie on the edge of the
    image's data (the field of view), clamped at CLAMP_MM."""
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    contour = sitk.BinaryContour(mask, fullyConnected=False)
    if image is not None:
        fov = S.fov_mask(image)
        edge = S._edge_distance(fov)
        contour = sitk.And(contour, sitk.Cast(edge >= S.FOV_MARGIN_MM, sitk.sitkUInt8))
    to_surface = sitk.Abs(sitk.SignedMaurerDistanceMap(contour, insideIsPositive=False, squaredDistance=False,
                                                       useImageSpacing=True))  # fmt: skip
    sign = sitk.Cast(1 - 2 * sitk.Cast(mask, sitk.sitkInt16), sitk.sitkFloat32)
    signed = sitk.Cast(to_surface, sitk.sitkFloat32) * sign
    return sitk.Clamp(signed, sitk.sitkFloat32, -CLAMP_MM, CLAMP_MM)


def distance_maps(fixed, moving, fixed_mask, moving_mask):
    """(fixed map, moving map, metric mask on the fixed grid): the mask is the fixed data (FOV) eroded by
    one voxel, within CLAMP_MM of the fixed segment."""
    fixed_map = _real_surface_distance(fixed_mask, fixed)
    moving_map = _real_surface_distance(moving_mask, moving)
    fov = sitk.BinaryErode(S.fov_mask(fixed), [1, 1, 1])
    near = sitk.Cast(fixed_map < CLAMP_MM - 1.0, sitk.sitkUInt8)
    return fixed_map, moving_map, sitk.And(fov, near)


def _resampled(moving_map: sitk.Image, fixed_map: sitk.Image, start: Transform) -> sitk.Image:
    return sitk.Resample(moving_map, fixed_map, start.sitk, sitk.sitkLinear, CLAMP_MM, sitk.sitkFloat32)


def _crop_box(mask: sitk.Image, margin_mm: float = 25.0):
    """Index box of a mask's voxels grown by ``margin_mm`` (for cropping; lower index, size)."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
    x, y, z, sx, sy, sz = stats.GetBoundingBox(1)
    grow = [int(np.ceil(margin_mm / s)) for s in mask.GetSpacing()]
    low = [max(0, v - g) for v, g in zip((x, y, z), grow)]
    high = [min(n, v + s + g) for v, s, g, n in zip((x, y, z), (sx, sy, sz), grow, mask.GetSize())]
    return low, [h - l for h, l in zip(high, low)]


def _crop(image: sitk.Image, box) -> sitk.Image:
    return sitk.RegionOfInterest(image, box[1], box[0])


def field_transform(field: sitk.Image) -> Transform:
    return Transform.from_displacement_field(sitk.Cast(field, sitk.sitkVectorFloat64))


# (c) elastix ------------------------------------------------------------------------------------------------
def _elastix_map(transform: str, grid_mm: float, bending: float, iterations: int, seed: int) -> dict:
    parameters = {
        "Registration": ["MultiMetricMultiResolutionRegistration"],
        "FixedImagePyramid": ["FixedSmoothingImagePyramid"], "MovingImagePyramid": ["MovingSmoothingImagePyramid"],
        "Interpolator": ["LinearInterpolator"], "ResampleInterpolator": ["FinalLinearInterpolator"],
        "Resampler": ["DefaultResampler"], "Optimizer": ["AdaptiveStochasticGradientDescent"],
        "Transform": [transform], "ImageSampler": ["RandomCoordinate"], "NewSamplesEveryIteration": ["true"],
        "NumberOfSpatialSamples": ["3000"], "NumberOfResolutions": ["3"],
        "MaximumNumberOfIterations": [str(iterations)], "HowToCombineTransforms": ["Compose"],
        "FixedInternalImagePixelType": ["float"], "MovingInternalImagePixelType": ["float"],
        "ErodeMask": ["false"], "WriteResultImage": ["false"], "DefaultPixelValue": [str(CLAMP_MM)],
        "ASGDParameterEstimationMethod": ["DisplacementDistribution"], "RandomSeed": [str(seed)],
        "AutomaticTransformInitialization": ["false"], "AutomaticScalesEstimation": ["true"],
    }  # fmt: skip
    if transform == "BSplineTransform":
        parameters.update({
            "Metric": ["AdvancedMeanSquares", "TransformBendingEnergyPenalty"],
            "UseRelativeWeights": ["true"], "Metric0RelativeWeight": ["1.0"],
            "Metric1RelativeWeight": [repr(float(bending))],
            "FinalGridSpacingInPhysicalUnits": [repr(float(grid_mm))], "GridSpacingSchedule": ["4.0", "2.0", "1.0"],
            "MaximumStepLength": ["0.3"],
        })  # fmt: skip
    else:
        parameters.update({"Registration": ["MultiResolutionRegistration"], "Metric": ["AdvancedMeanSquares"],
                           "MaximumStepLength": ["0.3"]})
    return parameters


def _elastix_run(fixed_c, moving_c, mask_c, parameters: dict) -> np.ndarray:
    """One elastix run (one map) on cropped images; its displacement field (z, y, x, 3) on the crop."""
    import itk

    from MultimodalRegistrationLib.engines.elastix import to_itk_image
    from MultimodalRegistrationLib.engines.itk_elastix import classes

    elastix = classes()
    parameter_object = elastix.parameter_object.New()
    parameter_object.AddParameterMap(parameters)
    method = elastix.registration_method.New()
    method.SetFixedImage(to_itk_image(fixed_c))
    method.SetMovingImage(to_itk_image(moving_c))
    method.SetFixedMask(to_itk_image(mask_c, np.uint8))
    method.SetParameterObject(parameter_object)
    method.SetLogToConsole(False)
    with tempfile.TemporaryDirectory(prefix="proto-elx-") as scratch:
        method.SetOutputDirectory(scratch)
        method.SetLogToFile(True)
        try:
            method.UpdateLargestPossibleRegion()
        except RuntimeError:
            log = (Path(scratch) / "elastix.log").read_text(errors="replace").splitlines()
            raise RuntimeError("\n".join(log[-40:])) from None
        field = itk.transformix_deformation_field(to_itk_image(moving_c), method.GetTransformParameterObject())
    return itk.array_from_image(field).astype(np.float64)


def _full_field(array: np.ndarray, box, reference: sitk.Image) -> Transform:
    """A displacement field on a crop, extended with zeros to the whole ``reference`` grid, as a Transform."""
    full = np.zeros(tuple(reversed(reference.GetSize())) + (3,))
    (x0, y0, z0), (sx, sy, sz) = box
    full[z0:z0 + sz, y0:y0 + sy, x0:x0 + sx] = array
    image = sitk.GetImageFromArray(full, isVector=True)
    image.CopyInformation(reference)
    return field_transform(image)


def elastix_deformable(fixed_map, moving_map, metric_mask, start: Transform, affine: bool = True,
                       grid_mm: float = GRID_MM, bending: float = BENDING_WEIGHT, seed: int = 0,
                       threads: int = 1) -> Transform:  # fmt: skip
    """(optional affine, then) B-spline on the maps from ``start``: each stage one elastix run on the maps
    cropped around the gland, the moving map resampled through everything before it."""
    import itk

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
    box = _crop_box(metric_mask)
    fixed_c, mask_c = _crop(fixed_map, box), _crop(metric_mask, box)
    current = start
    for transform in (["AffineTransform"] if affine else []) + ["BSplineTransform"]:
        moving_c = _crop(_resampled(moving_map, fixed_map, current), box)
        parameters = _elastix_map(transform, grid_mm, bending, 200 if transform == "AffineTransform" else 250, seed)
        step = _full_field(_elastix_run(fixed_c, moving_c, mask_c, parameters), box, fixed_map)
        if transform == "AffineTransform":  # an affine field is exactly linear: keep it as a matrix
            step = _linear_from_field(step, fixed_c)
        current = current @ step
    return current


def _linear_from_field(step: Transform, grid: sitk.Image) -> Transform:
    from MultimodalRegistrationLib.core.rotations import orthogonal_fit  # noqa: F401

    points = S.mask_voxels(sitk.Cast(grid * 0 + 1, sitk.sitkUInt8))[::97]
    moved = step.transform_points(points)
    design = np.c_[points, np.ones(len(points))]
    solution, *_ = np.linalg.lstsq(design, moved, rcond=None)
    matrix = np.eye(4)
    matrix[:3, :] = solution.T
    return Transform.from_matrix(matrix)


# (c) ANTs -------------------------------------------------------------------------------------------------
def _to_ants(image: sitk.Image):
    import ants

    return ants.from_numpy(sitk.GetArrayFromImage(image).T.astype(np.float32), origin=list(image.GetOrigin()),
                           spacing=list(image.GetSpacing()), direction=np.asarray(image.GetDirection()).reshape(3, 3))


def ants_deformable(fixed_map, moving_map, metric_mask, start: Transform, affine: bool = False,
                    syn: str = "SyN[0.2,3,0.5]", iterations=(40, 20, 10), seed: int = 0) -> Transform:  # fmt: skip
    """SyN (mean squares on the maps) after the start; ``affine`` adds an affine stage first."""
    import ants

    box = _crop_box(metric_mask)
    fixed_c = _crop(fixed_map, box)
    moving_c = _crop(_resampled(moving_map, fixed_map, start), box)
    mask_c = _crop(metric_mask, box)
    f, m, k = _to_ants(fixed_c), _to_ants(moving_c), _to_ants(sitk.Cast(mask_c, sitk.sitkFloat32))
    with tempfile.TemporaryDirectory(prefix="proto-ants-") as scratch:
        prefix = str(Path(scratch) / "w")
        out = ants.registration(
            f, m, type_of_transform="SyNOnly" if not affine else "SyN", syn_metric="meansquares", aff_metric="meansquares",
            syn_transform=syn, reg_iterations=iterations, mask=k, mask_all_stages=True, outprefix=prefix,
            random_seed=seed, verbose=False,
        )  # fmt: skip
        parts = [Transform.read(path) for path in out["fwdtransforms"]]
    # ANTs applies the list's last transform to fixed points first: x -> parts[0](parts[1](...(x)))
    warp = Transform.chain(parts)
    full = warp.displacement_field(fixed_map) if warp.kind != "linear" else None
    return start @ (field_transform(full) if full is not None else warp)


# (d) SimpleITK-only DMBR -------------------------------------------------------------------------------------
def _method(mask: sitk.Image, shrink=(4, 2, 1), smooth=(2.0, 1.0, 0.0), seed: int = 0):
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricFixedMask(mask)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.25, seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(list(shrink))
    method.SetSmoothingSigmasPerLevel(list(smooth))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def sitk_dmbr(fixed_map, moving_map, metric_mask, start: Transform | None = None, stages=("rigid", "affine", "bspline"),
              grid_mm: float = GRID_MM, seed: int = 0) -> tuple[Transform, dict]:  # fmt: skip
    """DMBR in SimpleITK: from ``start`` (default: the gland centroids, header rotation), each stage
    registers the maps (MeanSquares) on top of the previous; returns the result and each stage's transform."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    box = _crop_box(metric_mask)
    fixed_c = _crop(fixed_map, box)
    mask_c = _crop(metric_mask, box)
    if start is None:
        centroid_f = S.mask_voxels(sitk.Cast(fixed_map < 0, sitk.sitkUInt8)).mean(axis=0)
        centroid_m = S.mask_voxels(sitk.Cast(moving_map < 0, sitk.sitkUInt8)).mean(axis=0)
        start = Transform.from_matrix(np.block([[np.eye(3), (centroid_m - centroid_f)[:, None]], [np.zeros((1, 3)), 1]]))
    current = start
    stages_out = {"start": start}
    centre = S.mask_voxels(sitk.Cast(fixed_c < 0, sitk.sitkUInt8)).mean(axis=0)
    for stage in stages:
        moving_c = _crop(_resampled(moving_map, fixed_map, current), box)
        if stage in ("rigid", "affine"):
            transform = sitk.Euler3DTransform() if stage == "rigid" else sitk.AffineTransform(3)
            transform.SetCenter(tuple(centre))
            method = _method(mask_c, seed=seed)
            method.SetOptimizerAsRegularStepGradientDescent(2.0, 0.01, 200, relaxationFactor=0.6)
            method.SetOptimizerScalesFromPhysicalShift()
            method.SetInitialTransform(transform, inPlace=True)
            method.Execute(fixed_c, moving_c)
            step = Transform(transform)
        else:
            physical = np.asarray(fixed_c.GetSize()) * np.asarray(fixed_c.GetSpacing())
            mesh = [max(1, int(round(p / grid_mm))) for p in physical]
            bspline = sitk.BSplineTransformInitializer(fixed_c, mesh, order=3)
            method = _method(mask_c, shrink=(2, 1), smooth=(1.0, 0.0), seed=seed)
            method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=100,
                                        maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=400)  # fmt: skip
            method.SetInitialTransform(bspline, inPlace=True)
            method.Execute(fixed_c, moving_c)
            field = sitk.TransformToDisplacementField(bspline, sitk.sitkVectorFloat64, fixed_map.GetSize(),
                                                      fixed_map.GetOrigin(), fixed_map.GetSpacing(),
                                                      fixed_map.GetDirection())  # fmt: skip
            step = field_transform(field)
        current = current @ step
        stages_out[stage] = current
    return current, stages_out


def folds(transform: Transform, fixed: sitk.Image) -> float:
    """The smallest Jacobian determinant of ``transform`` over the fixed image (4 mm grid): > 0 does not fold."""
    return minimum_jacobian(transform, fixed) if not transform.is_linear else float(np.linalg.det(transform.matrix[:3, :3]))
