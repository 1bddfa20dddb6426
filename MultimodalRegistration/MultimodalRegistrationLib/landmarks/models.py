"""The transforms a landmark fit can produce, fitted to paired points in LPS mm, and the export of a
thin-plate spline as a displacement field sampled on a grid.

Every model maps fixed points to moving points (the resampling direction): a 4x4 LPS matrix for the
linear types, a :class:`ThinPlateSpline` for ``tps``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..core.choices import LANDMARK_TRANSFORMS
from ..core.images import index_to_physical_matrix
from ..core.rotations import affine_fit, orthogonal_fit

KINDS = LANDMARK_TRANSFORMS
MIN_POINTS = {"translation": 1, "rigid": 3, "similarity": 3, "affine": 4, "tps": 4}
_FIT_NAMES = {"tps": "thin-plate spline"}  # as a message says a kind (the option's value is the short name)


def fit_name(kind: str) -> str:
    """A kind of fit as a message says it: "affine", "thin-plate spline"."""
    return _FIT_NAMES.get(kind, kind)


def a_fit(kind: str) -> str:
    """"an affine fit", "a thin-plate spline fit": a kind of fit with its article, for a message."""
    name = fit_name(kind)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} fit"
FIELD_SPACING_MM = 2.0  # TPS field spacing when no reference image is given
FIELD_MARGIN_MM = 20.0
MAX_FIELD_VOXELS = 4_000_000  # a finer reference grid is coarsened (integer factors) to stay under this


# --------------------------------------------------------------------------- thin-plate spline
def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances (mm)."""
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _kernel(distances: np.ndarray) -> np.ndarray:
    """The thin-plate kernel ``r^2 log r`` (0 at r = 0). Smooth at the points, unlike ``|r|``, so the
    spline survives sampling on a grid; with the affine part, the result does not depend on the unit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(distances > 0, distances**2 * np.log(distances), 0.0)


class ThinPlateSpline:
    """Thin-plate spline through paired points, fixed LPS -> moving LPS (mm).

    ``f(x) = A x + t + sum_i w_i U(|x - p_i|)`` with ``U(r) = r^2 log r``: exact at the points, smooth
    between them. Needs 4 points not all in one plane.
    """

    def __init__(self, fixed: np.ndarray, moving: np.ndarray):
        self.centre = fixed.mean(axis=0)
        self.points = fixed - self.centre
        count = len(fixed)
        system = np.zeros((count + 4, count + 4))
        system[:count, :count] = _kernel(pairwise_distances(self.points, self.points))
        polynomial = np.hstack([np.ones((count, 1)), self.points])
        system[:count, count:] = polynomial
        system[count:, :count] = polynomial.T
        right = np.zeros((count + 4, 3))
        right[:count] = moving
        solution = np.linalg.solve(system, right)
        self.weights, self.polynomial = solution[:count], solution[count:]

    def __call__(self, points_lps: np.ndarray, chunk_values: int = 2_000_000) -> np.ndarray:
        x = np.asarray(points_lps, float).reshape(-1, 3) - self.centre
        out = np.empty_like(x)
        step = max(1, chunk_values // len(self.points))
        for start in range(0, len(x), step):
            part = x[start : start + step]
            out[start : start + step] = (
                _kernel(pairwise_distances(part, self.points)) @ self.weights
                + self.polynomial[0]
                + part @ self.polynomial[1:]
            )
        return out

    @property
    def affine(self) -> np.ndarray:
        """The affine part as a 4x4 LPS matrix."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.polynomial[1:].T
        matrix[:3, 3] = self.polynomial[0] - matrix[:3, :3] @ self.centre
        return matrix


# --------------------------------------------------------------------------- any model
def fit_model(kind: str, fixed_lps: np.ndarray, moving_lps: np.ndarray) -> np.ndarray | ThinPlateSpline:
    """Fit ``kind`` mapping fixed to moving points (LPS mm): a 4x4 matrix, or a spline for ``tps``."""
    if kind == "translation":
        matrix = np.eye(4)
        matrix[:3, 3] = (moving_lps - fixed_lps).mean(axis=0)
        return matrix
    if kind in ("rigid", "similarity"):
        return orthogonal_fit(fixed_lps, moving_lps, scale=kind == "similarity")
    if kind == "affine":
        return affine_fit(fixed_lps, moving_lps)
    return ThinPlateSpline(fixed_lps, moving_lps)


def apply_model(model: np.ndarray | ThinPlateSpline, points: np.ndarray) -> np.ndarray:
    """Where the model sends (N, 3) LPS points."""
    if isinstance(model, ThinPlateSpline):
        return model(points)
    return points @ model[:3, :3].T + model[:3, 3]


def linear_part(model: np.ndarray | ThinPlateSpline) -> np.ndarray:
    """The model's 4x4 matrix; for a spline, its affine part."""
    return model.affine if isinstance(model, ThinPlateSpline) else model


def rms(values: np.ndarray) -> float:
    """Root mean square (0 for no values)."""
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else 0.0


def fit_rms(kind: str, fixed: np.ndarray, moving: np.ndarray) -> float:
    """RMS residual (mm) of a ``kind`` fit to these pairs."""
    model = fit_model(kind, fixed, moving)
    return rms(np.linalg.norm(apply_model(model, fixed) - moving, axis=1))


# --------------------------------------------------------------------------- TPS export
def distance_outside(points_lps: np.ndarray, image: sitk.Image) -> np.ndarray:
    """Distance (mm) of each point outside the image's voxel box (0 inside)."""
    inverse = np.linalg.inv(index_to_physical_matrix(image))
    index = points_lps @ inverse[:3, :3].T + inverse[:3, 3]
    upper = np.asarray(image.GetSize(), float) - 0.5
    beyond = np.maximum(np.maximum(-0.5 - index, index - upper), 0.0) * np.asarray(image.GetSpacing())
    return np.linalg.norm(beyond, axis=1)


def field_margin_mm(points_lps: np.ndarray) -> float:
    """The margin (mm) of the box a TPS field is sampled on without a reference: 20 mm, or a quarter of the
    points' extent if larger."""
    return max(FIELD_MARGIN_MM, 0.25 * float((points_lps.max(axis=0) - points_lps.min(axis=0)).max()))


def field_grid(reference: sitk.Image | None, points_lps: np.ndarray, margin_mm: float | None = None) -> sitk.Image:
    """The grid a TPS field is sampled on: the reference's grid (coarsened if huge), else a box
    around the points with a margin (default :func:`field_margin_mm`), at ``FIELD_SPACING_MM`` or coarser if huge."""
    if reference is None:
        low, high = points_lps.min(axis=0), points_lps.max(axis=0)
        margin = field_margin_mm(points_lps) if margin_mm is None else margin_mm
        spacing = FIELD_SPACING_MM
        while np.prod(np.ceil((high - low + 2 * margin) / spacing) + 1) > MAX_FIELD_VOXELS:
            spacing *= 1.25
        size = np.ceil((high - low + 2 * margin) / spacing).astype(int) + 1
        grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
        grid.SetSpacing([spacing] * 3)
        grid.SetOrigin(tuple(float(v) for v in low - margin))
        return grid
    size = np.asarray(reference.GetSize()[:3], int)
    spacing = np.asarray(reference.GetSpacing()[:3], float)
    factors = np.ones(3, int)
    shrunk = size
    while np.prod(shrunk.astype(float)) > MAX_FIELD_VOXELS:
        axis = int(np.argmin(spacing * factors))
        factors[axis] += 1
        shrunk = (size - 1 + factors - 1) // factors + 1  # nodes still reach the last voxel centre
    grid = sitk.Image([int(s) for s in shrunk], sitk.sitkUInt8)
    grid.SetSpacing(tuple(float(s) for s in spacing * factors))
    grid.SetOrigin(reference.GetOrigin()[:3])
    grid.SetDirection(tuple(np.asarray(reference.GetDirection(), float).reshape(-1)[:9]))
    return grid


def bend_mm(spline: ThinPlateSpline, points_lps: np.ndarray) -> np.ndarray:
    """The spline's bend beyond its affine part at ``points_lps`` (mm), in the frame before that part:
    ``L^-1 (spline(x) - affine(x))``, (N, 3)."""
    affine = spline.affine
    return (spline(points_lps) - (points_lps @ affine[:3, :3].T + affine[:3, 3])) @ np.linalg.inv(affine[:3, :3]).T


def bend_box(spline: ThinPlateSpline, points_lps: np.ndarray) -> tuple[float, float]:
    """(margin, taper) mm of the box a spline's bend is stored on without a reference: the taper at least half the
    usual margin (:func:`field_margin_mm`) and four times the bend it fades out at the box's faces, so that the
    fade cannot fold space (its gradient stays under about 0.4); the margin is half the usual one plus the taper.
    The bend grows slowly away from the points, so the faces are measured again once the box has grown."""
    low, high = points_lps.min(axis=0), points_lps.max(axis=0)
    inner = field_margin_mm(points_lps) / 2
    taper = inner
    for _ in range(4):
        faces = _box_faces(low - inner - taper, high + inner + taper)
        needed = 4.0 * float(np.linalg.norm(bend_mm(spline, faces), axis=1).max())
        if needed <= taper:
            break
        taper = needed
    return inner + taper, taper


def _box_faces(low: np.ndarray, high: np.ndarray, count: int = 9) -> np.ndarray:
    """Points on a grid of ``count`` x ``count`` on each of the box's six faces (LPS mm)."""
    steps = [np.linspace(low[axis], high[axis], count) for axis in range(3)]
    faces = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        u, v = np.meshgrid(steps[others[0]], steps[others[1]], indexing="ij")
        for value in (low[axis], high[axis]):
            face = np.empty((u.size, 3))
            face[:, axis], face[:, others[0]], face[:, others[1]] = value, u.ravel(), v.ravel()
            faces.append(face)
    return np.concatenate(faces)


def padded_for_taper(spline: ThinPlateSpline, grid: sitk.Image) -> tuple[sitk.Image, float]:
    """A given grid (a reference image's) grown on every side by the taper its faces need, and that taper (mm): four
    times the bend at the faces, as :func:`bend_box` has it (at least two voxels, at most half the grid's smallest
    extent), so that the spline is exact on the grid itself and fades to its affine part beyond it, with no tear."""
    size, spacing = np.asarray(grid.GetSize(), float), np.asarray(grid.GetSpacing(), float)
    matrix = index_to_physical_matrix(grid)
    faces = _box_faces(np.zeros(3), size - 1) @ matrix[:3, :3].T + matrix[:3, 3]
    needed = 4.0 * float(np.linalg.norm(bend_mm(spline, faces), axis=1).max())
    taper = min(max(needed, 2 * float(spacing.max())), float(((size - 1) * spacing).min()) / 2)
    pad = np.ceil(taper / spacing).astype(int)
    padded = sitk.Image([int(v) for v in size.astype(int) + 2 * pad], sitk.sitkUInt8)
    padded.SetSpacing(grid.GetSpacing())
    padded.SetDirection(grid.GetDirection())
    padded.SetOrigin(tuple(float(v) for v in matrix[:3, 3] - matrix[:3, :3] @ pad))
    return padded, taper


def tps_bend_field(spline: ThinPlateSpline, grid: sitk.Image, taper_mm: float) -> sitk.Image:
    """The spline's bend beyond its affine part, as a displacement field to apply before that part (LPS mm):
    ``d(x) = L^-1 (spline(x) - affine(x))`` at every node of ``grid``, faded smoothly to 0 over the outer
    ``taper_mm`` of the grid so that ``affine(x + d(x))`` is the spline inside and the affine part beyond,
    with no tear at the grid's edge."""
    size = np.asarray(grid.GetSize())
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in size[::-1]], indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)
    matrix = index_to_physical_matrix(grid)
    physical = index @ matrix[:3, :3].T + matrix[:3, 3]
    bend = bend_mm(spline, physical)
    to_edge = np.minimum(index, size - 1 - index) * np.asarray(grid.GetSpacing())  # mm to the nearest face
    ramp = np.clip(to_edge.min(axis=1) / taper_mm, 0.0, 1.0)
    weight = ramp * ramp * (3 - 2 * ramp)  # smoothstep: 0 at the edge, 1 from taper_mm inward
    field_image = sitk.GetImageFromArray((bend * weight[:, None]).reshape(*size[::-1], 3), isVector=True)
    field_image.CopyInformation(grid)
    return field_image
