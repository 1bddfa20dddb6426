"""One displacement field from several rigid motions: a log-Euclidean polyrigid blend that does not fold.

Each piece is a segment (a mask in fixed space) with its own rigid transform; a background transform
(the global registration) holds far from every segment. All transforms map fixed points to moving
points (LPS mm), and so does the field.

The blend, on an axis-aligned grid over the fixed image:

1. Relative motions. Each piece's motion relative to the background, ``B^-1 T_i`` (fixed -> fixed),
   is small; its matrix logarithm ``L_i`` is a velocity that is linear in the point.
2. Weights (Shepard's inverse distance weighting). With ``d_i`` the distance (mm) outside segment i
   (0 inside) and ``s_i = (reach / d_i)^power``, piece i weighs ``s_i / (1 + sum s_j)`` and the
   background ``1 / (1 + sum s_j)``: exactly 1 inside a segment, halfway ``reach`` mm from a lone
   one, tending to the background far from all. The weights are smooth where the distances are.
3. Velocity ``v(x) = sum_i w_i(x) L_i [x, 1]``, integrated as a stationary velocity field by scaling
   and squaring: ``exp(v)`` is a diffeomorphism however fast the weights change, so it does not fold.
   Where a segment's velocity holds all along the path (its inside, away from its edge) the flow is
   exactly that segment's relative motion.
4. Exactness. Near a segment's edge the flow is pulled by the neighbours' velocities; the nodes
   within one grid cell (diagonal) of a segment, its inside included, are set to the exact rigid
   motion, fading back to the flow across a band ``band_mm`` wide, so that the field interpolated
   at any point inside a segment is that segment's motion. Where two segments are too close for
   both exact motions to hold without folding (a joint a few millimetres wide), the exact share is
   halved around the folding nodes, round after round, until the Jacobian determinant stays above
   a floor: there the flow takes over, and how far the field then leaves each segment's motion is
   reported (``exact_error_mm``).
5. The transform is ``B`` after the residual ``phi(x) - x`` (``phi`` the flow after step 4), a field that is 0
   beyond the grid, so ``B`` holds there; ``field`` is the whole displacement ``B(phi(x)) - x`` on the grid. Its
   smallest Jacobian determinant is measured as the field is interpolated, at every cell's corners
   (:mod:`...core.cell_jacobian`), in the giving way of step 4 too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.linalg import logm
from scipy.ndimage import map_coordinates

from ...core.cell_jacobian import cell_jacobian_minimum, nodes_of_cells
from ...core.errors import InputError
from ...core.images import box_grid
from ...core.transforms import Transform

DEFAULT_SPACING_MM = 2.0
DEFAULT_REACH_MM = 20.0
DEFAULT_POWER = 2.0  # >1: the weights leave a segment with zero slope
MAX_GRID_NODES = 3_000_000
FADE_CELLS = 4  # cells beyond the fixed image's box over which the residual field fades to 0  # a finer grid is coarsened: the blend holds about ten (nodes x 3) float64 arrays
MIN_SQUARINGS = 6
# Each scaling-and-squaring step starts from a velocity moving a node at most this share of a grid cell.
MAX_STEP_CELLS = 0.25
# Where the exact motions would bring the Jacobian determinant below this (or below half the flow's own
# minimum), they give way to the flow; at most this many rounds of halving.
FOLD_FLOOR = 0.1
MAX_RELAX_ROUNDS = 12
# Then the exact motions give way entirely where a cell still folds, round after round (each widens the flow's
# share by a cell), for at most this many rounds.
MAX_FLOW_ROUNDS = 24


@dataclass
class RigidPiece:
    """One segment and its motion: ``mask`` (non-zero inside, any grid in fixed space) and ``transform``
    (linear, fixed -> moving, LPS mm) that holds exactly inside it."""

    name: str
    mask: sitk.Image
    transform: Transform


@dataclass
class PolyrigidField:
    """The blended field and how it was made.

    ``transform`` (fixed -> moving) is the background after a residual field, and equals ``field`` (LPS
    displacements in mm on an axis-aligned grid over the fixed image) on the grid; beyond it, the background.
    ``minimum_jacobian`` is the smallest Jacobian determinant of ``field`` as interpolated (no unit;
    <= 0 would mean folding). ``flow_to_exact_mm`` is, per piece, how far (mm) the overwrite moved the
    flow's nodes inside the segment: ~0 where the flow was already exact.
    """

    transform: Transform
    field: sitk.Image
    minimum_jacobian: float
    flow_minimum_jacobian: float
    squarings: int
    relax_rounds: int
    spacing_mm: float
    reach_mm: float
    band_mm: float
    power: float
    flow_to_exact_mm: dict[str, float]
    exact_error_mm: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "grid_size": list(self.field.GetSize()),
            "grid_spacing_mm": round(self.spacing_mm, 4),
            "grid_origin_lps_mm": [round(o, 4) for o in self.field.GetOrigin()],
            "reach_mm": self.reach_mm,
            "band_mm": round(self.band_mm, 4),
            "power": self.power,
            "squarings": self.squarings,
            "minimum_jacobian": round(self.minimum_jacobian, 6),
            "flow_minimum_jacobian": round(self.flow_minimum_jacobian, 6),
            "relax_rounds": self.relax_rounds,
            "flow_to_exact_mm": {name: round(value, 4) for name, value in self.flow_to_exact_mm.items()},
            "exact_error_mm": {name: round(value, 4) for name, value in self.exact_error_mm.items()},
        }


def blend_grid(reference: sitk.Image, spacing_mm: float = DEFAULT_SPACING_MM) -> sitk.Image:
    """An empty axis-aligned grid (identity direction, LPS) every ``spacing_mm`` mm over ``reference``'s box and
    FADE_CELLS cells beyond it on every side; coarsened if it would hold more than MAX_GRID_NODES nodes."""
    grid = box_grid(reference, spacing_mm, MAX_GRID_NODES, "field")
    spacing = float(grid.GetSpacing()[0])
    padded = sitk.Image([n + 2 * FADE_CELLS for n in grid.GetSize()], sitk.sitkUInt8)
    padded.SetSpacing(grid.GetSpacing())
    padded.SetOrigin([o - FADE_CELLS * spacing for o in grid.GetOrigin()])
    return padded


def _fade(grid: sitk.Image) -> np.ndarray:
    """1 over the fixed image's box, falling smoothly to 0 at the grid's outer nodes across the FADE_CELLS cells
    beyond it, shaped (z, y, x): the residual field ends at 0, so the background takes over without a step
    (a residual cut off at the grid's edge jumped by up to 2.4 mm there, review)."""
    size = np.asarray(grid.GetSize())
    axes = [_smoothstep(np.minimum(np.arange(n), n - 1 - np.arange(n)) / FADE_CELLS) for n in size[::-1]]
    return axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]


def _grid_points(grid: sitk.Image) -> np.ndarray:
    """Every node of an axis-aligned grid in LPS mm, shaped (z, y, x, 3)."""
    axes = [
        origin + spacing * np.arange(n)
        for origin, spacing, n in zip(grid.GetOrigin(), grid.GetSpacing(), grid.GetSize())
    ]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    return np.stack([x, y, z], axis=-1).transpose(2, 1, 0, 3)


def _distance_outside(mask: sitk.Image, grid: sitk.Image, name: str) -> np.ndarray:
    """Distance (mm) from each grid node to the segment's voxel centres, 0 inside them, shaped (z, y, x).

    Computed on the mask's own grid (exact Euclidean distances) and interpolated linearly onto ``grid``:
    the segment's edge on the grid runs through its outermost voxel centres.
    """
    binary = sitk.Cast(mask != 0, sitk.sitkUInt8)
    if not np.any(sitk.GetArrayViewFromImage(binary)):
        raise InputError(f"segment '{name}' is empty: give a mask with the segment's voxels")
    distance = sitk.SignedMaurerDistanceMap(binary, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    far = float(np.linalg.norm(np.asarray(grid.GetSize()) * grid.GetSpacing()))
    on_grid = sitk.Resample(distance, grid, sitk.Transform(), sitk.sitkLinear, far, sitk.sitkFloat64)
    return np.maximum(sitk.GetArrayFromImage(on_grid), 0.0)


def blend_weights(distances: np.ndarray, reach_mm: float, power: float = DEFAULT_POWER) -> np.ndarray:
    """Shepard weights of the pieces, shaped like ``distances`` (pieces first, mm outside each, 0 inside).

    Piece i weighs ``s_i / (1 + sum s_j)`` with ``s_i = (reach / d_i)^power``; the background takes the
    rest, ``1 - sum w_i``. Where a node lies inside several segments they share it equally.
    """
    inside = distances <= 0
    safe = np.where(inside, 1.0, distances / reach_mm)
    closeness = np.where(inside, 0.0, safe ** (-power))
    weights = closeness / (1.0 + closeness.sum(axis=0))
    anywhere = inside.any(axis=0)
    shared = inside / np.maximum(inside.sum(axis=0), 1)
    return np.where(anywhere, shared, weights)


def relative_logarithm(background: Transform, transform: Transform) -> np.ndarray:
    """The 4x4 matrix logarithm of ``background^-1 @ transform`` (fixed -> fixed, LPS mm): a velocity
    that is linear in the point, ``L @ [x, 1]``."""
    relative = np.linalg.inv(background.matrix) @ transform.matrix
    angle = np.degrees(np.arccos(np.clip((np.trace(relative[:3, :3]) - 1) / 2, -1, 1)))
    if angle > 150.0:
        raise InputError(f"a piece turns {angle:.0f} degrees from the background transform: too far to blend")
    logarithm = logm(relative)
    return np.real(logarithm)


def _velocity(points: np.ndarray, weights: np.ndarray, logarithms: list[np.ndarray]) -> np.ndarray:
    velocity = np.zeros_like(points)
    for weight, logarithm in zip(weights, logarithms):
        velocity += weight[..., None] * (points @ logarithm[:3, :3].T + logarithm[:3, 3])
    return velocity


def _sample(displacement: np.ndarray, grid: sitk.Image, points: np.ndarray) -> np.ndarray:
    """``displacement`` (z, y, x, 3) linearly interpolated at LPS ``points`` (..., 3); the border value beyond it."""
    index = (points - np.asarray(grid.GetOrigin())) / np.asarray(grid.GetSpacing())
    coordinates = [index[..., 2], index[..., 1], index[..., 0]]  # array order z, y, x
    return np.stack(
        [map_coordinates(displacement[..., c], coordinates, order=1, mode="nearest") for c in range(3)], axis=-1
    )


def exponential(velocity: np.ndarray, grid: sitk.Image, points: np.ndarray) -> tuple[np.ndarray, int]:
    """The displacement (mm) of ``exp(v)`` by scaling and squaring, and the number of squarings.

    ``v`` is scaled down until a step moves no node more than MAX_STEP_CELLS of a cell, then the map is
    composed with itself: ``u <- u + u(x + u)``, each time doubling the time it covers.
    """
    spacing = float(min(grid.GetSpacing()))
    largest = float(np.linalg.norm(velocity, axis=-1).max())
    squarings = max(MIN_SQUARINGS, int(np.ceil(np.log2(max(largest / (MAX_STEP_CELLS * spacing), 1.0)))))
    displacement = velocity / 2.0**squarings
    for _ in range(squarings):
        displacement = displacement + _sample(displacement, grid, points + displacement)
    return displacement, squarings


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _as_field(displacement: np.ndarray, grid: sitk.Image) -> sitk.Image:
    field = sitk.GetImageFromArray(displacement, isVector=True)
    field.CopyInformation(grid)
    return field


def jacobian_minimum(displacement: np.ndarray, grid: sitk.Image) -> float:
    """The smallest Jacobian determinant of x -> x + u(x) as it is interpolated (every cell's 8 corners)."""
    return float(cell_jacobian_minimum(displacement, grid.GetSpacing()).min())


def exact_shares(distances: np.ndarray, weights: np.ndarray, spacing: float, band: float) -> np.ndarray:
    """How much of each piece's exact motion replaces the flow at each node (0..1; pieces first).

    Full within one cell diagonal of the segment (a point inside it interpolates nodes that far out),
    fading to none over ``band`` mm beyond. The pieces share a node by their weights among themselves,
    not the background's: next to a lone segment its exact motion holds fully, two close ones meet halfway.
    """
    near = np.sqrt(3.0) * spacing
    among_pieces = weights / np.maximum(weights.sum(axis=0), 1e-300)
    return among_pieces * (1.0 - _smoothstep((distances - near) / max(band, 1e-9)))


def _relative_matrices(background: Transform, pieces: list[RigidPiece]) -> list[np.ndarray]:
    inverse = np.linalg.inv(background.matrix)
    return [inverse @ piece.transform.matrix for piece in pieces]


def _with_exact(flow: np.ndarray, points: np.ndarray, shares: np.ndarray, relatives: list[np.ndarray]) -> np.ndarray:
    """The flow (fixed -> fixed) moved towards each piece's exact relative motion by its share."""
    result = flow.copy()
    for share, relative in zip(shares, relatives):
        result += share[..., None] * (points @ relative[:3, :3].T + relative[:3, 3] - flow)
    return result


def _relax_folds(
    flow: np.ndarray,
    points: np.ndarray,
    shares: np.ndarray,
    relatives: list[np.ndarray],
    grid: sitk.Image,
    floor: float,
) -> tuple[np.ndarray, int]:
    """The relative map with the exact shares halved, round after round, around nodes whose Jacobian
    determinant is below ``floor``: there the exact motions of two close segments cannot both hold
    without folding, and the flow (which does not fold) takes over. Returns the map and the rounds."""
    relative_map, rounds = _with_exact(flow, points, shares, relatives), 0
    while True:
        low = nodes_of_cells(cell_jacobian_minimum(relative_map - points, grid.GetSpacing()) < floor)
        if not low.any():
            break
        if rounds >= MAX_RELAX_ROUNDS:  # the flow alone where a cell still folds, and around it, until none does
            shares = np.where(low, 0.0, shares)
            relative_map, rounds = _with_exact(flow, points, shares, relatives), rounds + 1
            if rounds >= MAX_RELAX_ROUNDS + MAX_FLOW_ROUNDS:
                break
            continue
        spread = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(low * 1.0), 1.0))
        shares = shares * (1.0 - 0.5 * np.clip(spread / max(float(spread.max()), 1e-12) * 3.0, 0.0, 1.0))
        relative_map, rounds = _with_exact(flow, points, shares, relatives), rounds + 1
    return relative_map, rounds


def _distance_from_exact(
    relative_map: np.ndarray, points: np.ndarray, distances: np.ndarray, relatives: list[np.ndarray]
) -> list[float]:
    """Per piece, the largest distance (mm) at its inside nodes between ``relative_map`` and its exact motion."""
    found = []
    for distance, relative in zip(distances, relatives):
        inside = distance <= 0
        exact = points[inside] @ relative[:3, :3].T + relative[:3, 3]
        found.append(float(np.linalg.norm(relative_map[inside] - exact, axis=-1).max()) if inside.any() else 0.0)
    return found


def polyrigid_field(
    reference: sitk.Image,
    background: Transform,
    pieces: list[RigidPiece],
    spacing_mm: float = DEFAULT_SPACING_MM,
    reach_mm: float = DEFAULT_REACH_MM,
    band_mm: float | None = None,
    power: float = DEFAULT_POWER,
) -> PolyrigidField:
    """Blend the pieces' rigid motions and the ``background`` (all fixed -> moving, LPS mm) into one
    displacement field over ``reference`` (the fixed image), every ``spacing_mm`` mm.

    ``reach_mm``: how far (mm) from a segment its motion still weighs as much as the background.
    ``band_mm`` (default: one grid spacing): the width over which the exact motion near a segment fades
    into the flow. See the module's docstring for the method.
    """
    if not pieces:
        raise InputError("a polyrigid blend needs at least one segment")
    if not background.is_linear or not all(piece.transform.is_linear for piece in pieces):
        raise InputError("a polyrigid blend needs linear transforms: give rigid ones")
    grid = blend_grid(reference, spacing_mm)
    spacing = float(grid.GetSpacing()[0])
    band = spacing if band_mm is None else float(band_mm)
    points = _grid_points(grid)
    distances = np.stack([_distance_outside(piece.mask, grid, piece.name) for piece in pieces])
    weights = blend_weights(distances, reach_mm, power)
    logarithms = [relative_logarithm(background, piece.transform) for piece in pieces]
    displacement, squarings = exponential(_velocity(points, weights, logarithms), grid, points)
    flow = points + displacement
    flow_minimum = jacobian_minimum(displacement, grid)
    relatives = _relative_matrices(background, pieces)
    shares = exact_shares(distances, weights, spacing, band)
    floor = min(FOLD_FLOOR, flow_minimum / 2)
    relative_map, rounds = _relax_folds(flow, points, shares, relatives, grid, floor)
    relative_map = points + _fade(grid)[..., None] * (relative_map - points)
    moved = relative_map @ background.matrix[:3, :3].T + background.matrix[:3, 3]
    field = _as_field(moved - points, grid)
    # As a transform: the background after the relative map's residual, which is 0 outside the grid, so that the
    # background holds beyond the fixed image's box too (a bare field is the identity there).
    residual = Transform.from_displacement_field(_as_field(relative_map - points, grid))
    names = [piece.name for piece in pieces]
    return PolyrigidField(
        transform=Transform.chain([background, residual]),
        field=field,
        minimum_jacobian=jacobian_minimum(moved - points, grid),
        flow_minimum_jacobian=flow_minimum * float(np.linalg.det(background.matrix[:3, :3])),
        squarings=squarings,
        relax_rounds=rounds,
        spacing_mm=spacing,
        reach_mm=float(reach_mm),
        band_mm=band,
        power=float(power),
        flow_to_exact_mm=dict(zip(names, _distance_from_exact(flow, points, distances, relatives))),
        exact_error_mm=dict(zip(names, _distance_from_exact(relative_map, points, distances, relatives))),
    )
