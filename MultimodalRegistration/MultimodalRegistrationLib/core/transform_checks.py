"""Checks of a transform file before it is trusted (issue 25): numbers ITK would misread, and starting poses
no registration can begin from. Matrices are fixed -> moving, LPS mm.

ITK's text reader takes ``1,5`` as 1 and leaves the rest of the line to chance, and reads ``nan`` as a
parameter, so the text is checked first; the parameters read are then checked to be finite.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .files import suffix_of

TEXT_SUFFIXES = (".tfm", ".txt")
_TEXT_LIMIT = 1 << 20  # a linear transform file is a few hundred bytes; a larger text file is not read whole
# A starting matrix whose axes shrink or grow by more than this factor is not a pose: a typo or a wrong file.
MAX_SCALE_RATIO = 100.0
# The fix for a nonlinear Slicer transform saved the other way (its node holding it as ToParent) as .h5.
SLICER_AS_GRID = ("save it from Slicer as a .nrrd displacement field instead (a B-spline: Transforms module, "
                  "Convert it to a grid transform first), which is read and inverted")  # fmt: skip
_HEAD = 1 << 16  # enough of a text file to tell what it is


def check_transform_text(path: str | os.PathLike) -> None:
    """Refuse a text transform (.tfm, .txt) whose parameters use a decimal comma or are not finite numbers."""
    path = Path(path)
    if suffix_of(path) not in TEXT_SUFFIXES:
        return
    whole = path.stat().st_size <= _TEXT_LIMIT
    with open(path, "rb") as file:
        text = file.read(_TEXT_LIMIT if whole else _HEAD).decode("latin-1")
    if "(TransformParameters " in text and "(Transform " in text:  # ITK had said only "Tags must be delimited by :"
        raise InputError(
            f"transform file {path} is an elastix parameter file (TransformParameters.N.txt), which ITK cannot "
            "read: have elastix write an ITK file beside it (add (ITKTransformOutputFileNameExtension \"h5\") to "
            "its parameters and run it again: TransformParameters.0.h5), or save SlicerElastix's result transform "
            "node as .h5, and give that"
        )
    check_one_transform(path, text)
    if not whole:
        return
    for number, line in enumerate(text.splitlines(), start=1):
        key, colon, values = line.partition(":")
        if not colon or key.strip() not in ("Parameters", "FixedParameters"):
            continue
        for token in values.split():
            if "," in token:
                raise InputError(
                    f"transform file {path} line {number} writes '{token}' with a decimal comma: ITK would read "
                    "it as another number; write decimal points (1.5, not 1,5), or export the transform again"
                )
            try:
                value = float(token)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise InputError(
                    f"transform file {path} line {number}: {key.strip()} '{token}' is not a finite number: "
                    "fix the value or export the transform again"
                )


def check_one_transform(path: Path, text: str) -> None:
    """Refuse a text file ITK would read only the start of: several transforms without a composite one heading
    them (ITK uses the first and warns on its console), or a bare matrix of numbers (ITK's 'Tags must be delimited
    by :'), which states neither its frame nor its direction (a transform-file sweep: the first read, silently)."""
    kinds = [line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("Transform:")]
    if len(kinds) > 1 and not kinds[0].startswith("CompositeTransform"):
        raise InputError(f"transform file {path} holds {len(kinds)} transforms one after another ({', '.join(kinds)}), "
                         "and ITK would read only the first: save them as one composite transform (.h5 from Slicer, "
                         "with one transform hardened into the other), or give the one that is meant")  # fmt: skip
    try:
        numbers = [float(token) for token in text.replace(",", " ").split()]
    except ValueError:
        return
    if len(numbers) in (12, 16):
        raise InputError(f"transform file {path} is a bare matrix of {len(numbers)} numbers: it says neither its frame "
                         "(FSL's scaled voxels, RAS or LPS) nor which way it maps; write it as an ITK transform "
                         "(LPS mm, fixed -> moving; Slicer: make a linear transform with that matrix as "
                         "TransformFromParent and save it as .h5), or convert an FSL matrix (c3d_affine_tool -fsl2ras "
                         "-oitk)")  # fmt: skip


def saved_as_modeling(field: sitk.Image) -> bool:
    """Whether Slicer saved this displacement field the other way: its node held it as ToParent (moving -> fixed;
    an inverted grid transform), and its NRRD says ``displacement field type: modeling``. A transform-file sweep: it
    had been read as fixed -> moving, inverted, without a word."""
    keys = {key.lower(): key for key in field.GetMetaDataKeys()}
    kind = keys.get("displacement field type")
    return kind is not None and field.GetMetaData(kind).strip().lower() == "modeling"


def check_transform_numbers(transform, path: str | os.PathLike) -> None:
    """Refuse a transform read with a NaN or infinite parameter (any file type); ``transform`` is a Transform."""
    for part in transform.components():
        itk = part.sitk
        if itk.GetName() == "DisplacementFieldTransform":  # its parameters are the whole field: read as an array
            field = sitk.DisplacementFieldTransform(itk).GetDisplacementField()
            values = sitk.GetArrayViewFromImage(field).ravel()
        else:
            values = np.asarray(tuple(itk.GetParameters()) + tuple(itk.GetFixedParameters()), float)
        if not np.all(np.isfinite(values)):
            raise InputError(
                f"transform file {path} holds parameters that are not finite numbers (NaN or infinity): "
                "fix the file or export the transform again"
            )


def check_initial_transform(transform, path: str | os.PathLike) -> None:
    """Refuse a starting transform (a Transform read from ``path``) that is a mirror image (negative determinant),
    flattens an axis (zero or near-zero scale, a singular matrix) or scales by more than ``MAX_SCALE_RATIO``."""
    if not transform.is_linear:
        return
    matrix = transform.matrix[:3, :3]
    scales = np.linalg.svd(matrix, compute_uv=False)
    determinant = float(np.linalg.det(matrix))
    if scales.min() < 1.0 / MAX_SCALE_RATIO or scales.max() > MAX_SCALE_RATIO:
        raise InputError(
            f"initial transform {path} scales an axis by {scales.min():.3g} to {scales.max():.3g} (singular or "
            "nearly so): it cannot be a starting pose; check the file, or start without it (--init auto)"
        )
    if determinant < 0:
        raise InputError(
            f"initial transform {path} mirrors the image (its matrix has determinant {determinant:.3g}): a "
            "registration cannot undo a mirror; flip the image itself if it was acquired mirrored "
            "(or fix the transform), then start from a proper rotation"
        )
