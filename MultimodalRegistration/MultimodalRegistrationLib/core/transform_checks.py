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


def check_transform_text(path: str | os.PathLike) -> None:
    """Refuse a text transform (.tfm, .txt) whose parameters use a decimal comma or are not finite numbers."""
    path = Path(path)
    if suffix_of(path) not in TEXT_SUFFIXES or path.stat().st_size > _TEXT_LIMIT:
        return
    text = path.read_bytes().decode("latin-1")
    if "(TransformParameters " in text and "(Transform " in text:  # ITK had said only "Tags must be delimited by :"
        raise InputError(
            f"transform file {path} is an elastix parameter file (TransformParameters.N.txt), which ITK cannot "
            "read: have elastix write an ITK file beside it (add (ITKTransformOutputFileNameExtension \"h5\") to "
            "its parameters and run it again: TransformParameters.0.h5), or save SlicerElastix's result transform "
            "node as .h5, and give that"
        )
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
