"""Landmark files without MRML: Slicer markups JSON (.mrk.json), Slicer fiducial CSV (.fcsv) and plain CSV.

:func:`read_points` returns ``(points_ras, labels)``: an (N, 3) array of world RAS mm and one label per
point. :func:`read_points_file` also says which coordinate system the file declared and how (a
:class:`PointsSystem`), so a check that finds the points mirrored through RAS<->LPS can name the fix.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.file_headers import check_not_empty
from ..core.files import write_text_atomically
from ..core.output_safety import same_place
from ..core.transforms import lps_ras_points

# vtkMRMLStorageNode's coordinate-system codes, as written in older .fcsv headers
FCSV_SYSTEMS = {"ras": "RAS", "0": "RAS", "lps": "LPS", "1": "LPS"}
FCSV_COLUMNS = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc", "associatednodeid"]
FCSV_SLICER3 = ["label", "x", "y", "z", "sel", "vis"]  # a file with no '# columns' or version line
# vtkMRMLMarkupsNode's position status codes, as Slicer 5 writes them in .fcsv rows
FCSV_STATUS = {"undefined": "0", "preview": "1", "defined": "2", "missing": "3"}


@dataclass(frozen=True)
class PointsSystem:
    """How a points file declared its coordinates: ``system`` ("RAS" or "LPS") as read, ``declared`` in
    words (what in the file says so), ``fix`` how to make the file say the other system instead."""

    name: str  # the file's name, as the user knows it
    system: str
    declared: str
    fix: str

    @property
    def other(self) -> str:
        return "LPS" if self.system == "RAS" else "RAS"


@dataclass(frozen=True)
class PointsFile:
    """A points file read: world RAS mm, one label per point, how the file declared its coordinates, and the
    labels of points it marks skipped (left out)."""

    points_ras: np.ndarray
    labels: list[str]
    system: PointsSystem
    skipped: list[str] = field(default_factory=list)  # labels of points marked skipped, left out (skipped_ok)

    numbered: bool = False  # a point had no label: the reader numbered it by its place (1, 2, ..., skipped counted)


def read_points(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read landmarks from .mrk.json, .fcsv or .csv; returns (N, 3) world RAS mm and labels."""
    read = read_points_file(path)
    return read.points_ras, read.labels


def read_points_file(path: str | os.PathLike, skipped_ok: bool = False) -> PointsFile:
    """Read landmarks from .mrk.json, .fcsv or .csv, with the coordinate system the file declared.

    A point marked skipped in Slicer (``"positionStatus": "missing"`` in .mrk.json, status 3 after the named
    columns of a Slicer 5 .fcsv, ``defined`` 0 in an exported .csv) is refused, unless ``skipped_ok``: then it is
    left out, its label in :attr:`PointsFile.skipped`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"points file not found: {path}: check the path")
    if not path.is_file():  # a folder, or a pipe that would block the reader with no word
        raise InputError(f"points {path} is not a regular file (a folder, pipe or device): give the points file")
    check_not_empty(path, "points file", "save the point list again (.mrk.json, .fcsv, or .csv with a header "
                    "label,x,y,z)")  # fmt: skip
    name = path.name.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"points file {path} is not text: give a .mrk.json, .fcsv or .csv file") from None
    if name.endswith(".json"):
        points, labels, system, skipped, numbered = _read_markups_json(text, path)
    elif name.endswith(".fcsv"):
        points, labels, system, skipped, numbered = _read_fcsv(text, path)
    elif name.endswith(".csv"):
        points, labels, system, skipped, numbered = _read_csv(text, path)
    else:
        raise InputError(f"unknown points file type '{path.name}': save the points as .mrk.json, .fcsv or .csv")
    if skipped and not skipped_ok:
        raise InputError(
            f"{path}: point '{skipped[0]}' is marked skipped (Slicer's Skip: not visible in this image): "
            "delete it, or place it on the image"
        )
    if not len(points):
        placed = " placed" if skipped else ""
        raise InputError(f"points file {path} holds no{placed} points: place points and save the list again")
    finite = np.all(np.isfinite(np.asarray(points, float)), axis=1)
    if not finite.all():
        label = labels[int(np.argmin(finite))] if labels else str(int(np.argmin(finite)) + 1)
        raise InputError(
            f"points file {path}: point '{label}' has a coordinate that is not a number (NaN or infinity): "
            "place the point again or delete it"
        )
    return PointsFile(points, labels, system, skipped, numbered)


def read_point_lists(fixed_path: str | os.PathLike, moving_path: str | os.PathLike) -> tuple[PointsFile, PointsFile,
                                                                                           list[str]]:  # fmt: skip
    """Both lists of a landmark pairing, and warnings: a point marked skipped in either is left out, with its
    partner in the other list when they pair by label (else refused: see :func:`.labels.leave_out_skipped`)."""
    from .labels import leave_out_skipped

    fixed, moving = read_points_file(fixed_path, skipped_ok=True), read_points_file(moving_path, skipped_ok=True)
    _check_lists_apart(Path(fixed_path), Path(moving_path))
    # Unlabelled lists numbered past a skipped point (1, 3, 4, ...) had paired by those numbers with a list that
    # lacks the point (1, 2, 3, ...): every later pair shifted, TRE 35 mm at the truth (a helper's QA sweep).
    warnings = leave_out_skipped(fixed.labels, moving.labels, {"fixed": fixed.skipped, "moving": moving.skipped},
                                 {"fixed": fixed.system.name, "moving": moving.system.name},
                                 by_order=fixed.numbered or moving.numbered)  # fmt: skip
    return _without(fixed, moving.skipped), _without(moving, fixed.skipped), warnings


def _check_lists_apart(fixed_path: Path, moving_path: Path) -> None:
    """Refuse one file, or two files of the same bytes, as both lists: prealign had fitted the identity (FRE 0), and
    QA had measured how far the transform moves the points as their error (a helper's QA sweep)."""
    if same_place(fixed_path, moving_path):
        said = f"are the same file ({fixed_path})"
    elif fixed_path.read_bytes() == moving_path.read_bytes():
        said = f"hold the same points, byte for byte ({fixed_path.name} and {moving_path.name})"
    else:
        return
    raise InputError(f"--fixed-points and --moving-points {said}: give the points placed on the fixed image and, in "
                     "another file, the same landmarks placed on the moving one")


def without_labels(points: np.ndarray, labels: list[str], left_out: list[str]) -> tuple[np.ndarray, list[str]]:
    """The points (and labels) whose label is not in ``left_out``: the partners of points skipped in the other list."""
    kept = [label not in left_out for label in labels]
    return np.asarray(points)[kept], [label for label, keep in zip(labels, kept) if keep]


def _without(read: PointsFile, labels: list[str]) -> PointsFile:
    """``read`` without the points labelled ``labels`` (:func:`without_labels`)."""
    points, kept = without_labels(read.points_ras, read.labels, labels)
    return replace(read, points_ras=points, labels=kept)


def _system(value: str, path: Path) -> str:
    system = FCSV_SYSTEMS.get(str(value).strip().lower())
    if system is None:
        raise InputError(f"{path}: unknown coordinate system '{value}': it must be RAS or LPS")
    return system


def _to_ras(points: list[list[float]], system: str) -> np.ndarray:
    array = np.asarray(points, float).reshape(-1, 3)
    return lps_ras_points(array) if system == "LPS" else array


POINT_LIST_TYPES = ("Fiducial",)  # markups types whose control points are landmarks (not curves, planes, ROIs)


def _read_markups_json(text: str, path: Path) -> tuple[np.ndarray, list[str], PointsSystem, list[str]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path} is not valid JSON ({error.msg}, line {error.lineno}): save it again from Slicer"
        ) from None
    found = document.get("markups", []) if isinstance(document, dict) else []
    if not isinstance(found, list) or not all(isinstance(m, dict) for m in found):
        raise InputError(f'{path}: its "markups" is not a list of markups: save it again from Slicer')
    markups = [m for m in found if m.get("controlPoints")]
    if len(markups) != 1:
        found = "no point list" if not markups else f"{len(markups)} point lists"
        raise InputError(f"{path} holds {found}: save exactly one markups point list per file")
    markup = markups[0]
    kind = markup.get("type", "Fiducial")
    if kind not in POINT_LIST_TYPES:
        raise InputError(
            f"{path} holds a {kind} markup, not a point list: its control points are not landmarks; place the "
            "landmarks in a point list (Markups: Point List) and save that"
        )
    units = markup.get("coordinateUnits", "mm")
    if isinstance(units, list) and units[:1] == ["mm"]:  # the schema's code triple: ["mm", "UCUM", "millimeter"]
        units = "mm"
    if units != "mm":
        raise InputError(f"{path}: coordinates are in '{units}': convert them to mm")
    given = markup.get("coordinateSystem")
    system = _system(given or "LPS", path)  # Slicer's default is LPS
    other = "RAS" if system == "LPS" else "LPS"
    declared = f'its "coordinateSystem": "{given}"' if given else 'it has no "coordinateSystem" (LPS assumed)'
    described = PointsSystem(path.name, system, declared, f'set "coordinateSystem": "{other}" in {path.name}')
    points, labels, skipped, numbered = [], [], [], False
    controls = markup["controlPoints"]
    if not isinstance(controls, list):
        raise InputError(f'{path}: its "controlPoints" is not a list of points: save it again from Slicer')
    for index, control in enumerate(controls):
        if not isinstance(control, dict):
            raise InputError(f"{path}: point {index + 1} is not a control point record: save it again from Slicer")
        numbered = numbered or not control.get("label")
        label = str(control.get("label") or f"{index + 1}")
        status, position = control.get("positionStatus"), control.get("position")
        if status == "missing":  # Slicer's "Skip": the landmark is not visible in this image
            skipped.append(label)
            continue
        if status in ("undefined", "preview") or position is None:
            raise InputError(f"{path}: point '{label}' has no position (not placed): place it or delete it")
        try:
            points.append([float(value) for value in position][:4])
        except (TypeError, ValueError):
            points.append([])
        if len(points[-1]) != 3:
            raise InputError(
                f"{path}: point {index + 1} ('{label}') has no x, y, z numbers ({position!r}): "
                "place it again and save the list again from Slicer"
            )
        labels.append(label)
    return _to_ras(points, system), labels, described, skipped, numbered


def _read_fcsv(text: str, path: Path) -> tuple[np.ndarray, list[str], PointsSystem, list[str]]:
    system, columns, given, given_columns, versioned = "RAS", FCSV_COLUMNS, None, None, False
    rows = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            key, _, value = stripped.lstrip("#").partition("=")
            versioned = versioned or "version" in key.lower()
            if key.strip().lower() == "coordinatesystem":
                system, given = _system(value, path), value.strip()
            elif key.strip().lower() == "columns":
                columns = given_columns = [c.strip().lower() for c in value.split(",")]
        elif stripped:
            rows.append(line)
    if given_columns is None and not versioned and rows and len(next(csv.reader(rows[:1]))) <= len(FCSV_SLICER3):
        columns = FCSV_SLICER3  # no header lines, short rows: Slicer 3's layout, which Slicer still reads so
    missing = {"x", "y", "z"} - set(columns)
    if missing:
        raise InputError(f"{path}: the '# columns' header lacks {sorted(missing)}: save the file again from Slicer")
    x, y, z = (columns.index(c) for c in "xyz")
    label_column = columns.index("label") if "label" in columns else None
    points, labels, skipped, numbered = [], [], [], False
    for number, row in enumerate(csv.reader(rows), start=1):
        label = row[label_column] if label_column is not None and label_column < len(row) else ""
        numbered = numbered or not label
        label = label or f"{number}"
        # Slicer 5 writes each point's position status after the named columns (FCSV_STATUS), unnamed.
        status = row[len(columns)].strip() if len(row) > len(columns) else ""
        if status == FCSV_STATUS["missing"]:
            skipped.append(label)
            continue
        if status in (FCSV_STATUS["undefined"], FCSV_STATUS["preview"]):
            raise InputError(f"{path}: point '{label}' has no position (not placed): place it or delete it")
        try:
            points.append([float(row[x]), float(row[y]), float(row[z])])
        except (IndexError, ValueError):
            raise InputError(f"{path}: point line {number} has no x, y, z numbers: fix or delete that line") from None
        labels.append(label)
    other = "RAS" if system == "LPS" else "LPS"
    declared = (
        f"its '# CoordinateSystem = {given}' line" if given else "it has no '# CoordinateSystem' line (RAS assumed)"
    )
    fix = f"{'change' if given else 'add'} the line '# CoordinateSystem = {other}' in {path.name}"
    return _to_ras(points, system), labels, PointsSystem(path.name, system, declared, fix), skipped, numbered


def _read_csv(text: str, path: Path) -> tuple[np.ndarray, list[str], PointsSystem, list[str]]:
    reader = csv.reader(io.StringIO(text))
    header = [c.strip().lower() for c in next(reader, [])]
    for names, system in ((("x", "y", "z"), "RAS"), (("r", "a", "s"), "RAS"), (("l", "p", "s"), "LPS")):
        if all(name in header for name in names):
            break
    else:
        raise InputError(f"{path}: the first line must name the columns, e.g. 'label,x,y,z' (RAS mm)")
    columns = [header.index(name) for name in names]
    label_column = header.index("label") if "label" in header else None
    # Slicer's "Export to CSV" writes defined = 0 for a point skipped or not placed: its numbers mean nothing.
    defined_column = header.index("defined") if "defined" in header else None
    points, labels, skipped, numbered = [], [], [], False
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header) and any(cell.strip() for cell in row[len(header):]):
            # "L1,4,0,16,9,7,3": decimal commas had shifted the columns, TRE 5.6 mm at the truth (a helper's sweep)
            raise InputError(f"{path}: line {number} holds {len(row)} values under a header of {len(header)} "
                             "columns: write decimal points (4.5, not 4,5), or quote each value that holds a comma")
        label = row[label_column].strip() if label_column is not None else f"{len(labels) + len(skipped) + 1}"
        numbered = label_column is None
        if defined_column is not None and defined_column < len(row) and row[defined_column].strip() == "0":
            skipped.append(label)
            continue
        try:
            points.append([float(row[c]) for c in columns])
        except (IndexError, ValueError):
            raise InputError(f"{path}: line {number} has no {', '.join(names)} numbers: fix or delete it") from None
        labels.append(label)
    declared = f"its columns {','.join(names)}"
    instead = "l,p,s" if system == "RAS" else "x,y,z"
    fix = f"name the columns {instead} instead of {','.join(names)} in {path.name}"
    return _to_ras(points, system), labels, PointsSystem(path.name, system, declared, fix), skipped, numbered


def write_points_csv(path: str | os.PathLike, points_ras: np.ndarray, labels: Sequence[str] | None = None) -> None:
    """Write points as CSV with header ``label,x,y,z`` (world RAS mm), readable by :func:`read_points`."""
    points = np.asarray(points_ras, float).reshape(-1, 3)
    labels = list(labels) if labels is not None else [f"{i + 1}" for i in range(len(points))]
    if len(labels) != len(points):
        raise InputError(f"{len(labels)} labels for {len(points)} points: give one label per point")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["label", "x", "y", "z"])
    for label, point in zip(labels, points):
        writer.writerow([label, *(repr(float(v)) for v in point)])
    write_text_atomically(path, text.getvalue())


MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)


def write_markups_json(path: str | os.PathLike, points_ras: np.ndarray, labels: Sequence[str]) -> None:
    """Write a Slicer markups point list (.mrk.json, world RAS mm), readable by Slicer and :func:`read_points`."""
    points = np.asarray(points_ras, float).reshape(-1, 3)
    if len(labels) != len(points):
        raise InputError(f"{len(labels)} labels for {len(points)} points: give one label per point")
    control_points = [
        {"id": str(i + 1), "label": label, "position": [float(v) for v in point], "positionStatus": "defined"}
        for i, (label, point) in enumerate(zip(labels, points))
    ]
    markups = [{"type": "Fiducial", "coordinateSystem": "RAS", "coordinateUnits": "mm", "controlPoints": control_points}]
    text = json.dumps({"@schema": MARKUPS_SCHEMA, "markups": markups}, indent=2) + "\n"
    write_text_atomically(path, text)
