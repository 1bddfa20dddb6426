"""Messages in the words of the Slicer panels: the library's errors and warnings name ``mmreg``'s options
(``--fixed-segmentation``); a panel or console user sees the panel's label and, where it is not the label
in other words, the parameter-node name instead ("'Fixed segmentation' (fixedSegmentation)", "'Metric'").

The option -> parameter names come from the jobs' own fields (:func:`..process.jobs.option_flag`,
:func:`.panel.panel_names`); only the labels the ``.ui`` files show are listed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from functools import cache

from ..core.errors import InputError
from ..prep.options import PrepOptions
from ..process.jobs import PrealignJob, PrepJob, QAJob, RegistrationJob, option_flag
from .panel import panel_names

# Parameter-node name -> the label beside its widget (Resources/UI/*.ui), where the two differ in more than case.
PANEL_LABELS = {
    "preset": "Preset", "fixedVolume": "Fixed volume", "movingVolume": "Moving volume", "customPresetFile": "Custom preset file",
    "fixedMask": "Fixed mask", "movingMask": "Moving mask", "initialTransform": "Initial transform",
    "init": "Start pose", "maxRotationDeg": "Search rotations up to", "seed": "Random seed",
    "outputTransform": "Output transform", "outputVolume": "Output volume",
    "fixedSegmentation": "Fixed segmentation", "movingSegmentation": "Moving segmentation",
    "fixedLandmarks": "Fixed landmarks", "movingLandmarks": "Moving landmarks", "guidanceWeight": "Guidance weight",
    "fixedPoints": "Fixed points", "movingPoints": "Moving points", "transformType": "Transform type",
    "referenceVolume": "Reference volume", "fixedTargetPoints": "Fixed targets", "movingTargetPoints": "Moving targets",
    "stabilityRestarts": "Stability", "reportPath": "Export report", "currentTransform": "Current transform",
    "cropCommon": "Crop to the common region", "marginMm": "Margin around the common region",
    "maskFixed": "Automatic fixed mask", "maskMoving": "Automatic moving mask", "excludeAboveHu": "Exclude CT above",
    "n4Fixed": "N4 bias correction", "downsampleMm": "Downsample to",
    "piecewise": None,  # a script's parameter only: no widget
}
PREP_MODULE = "Registration Prep's "
# A spacing is each volume's own, set in the Volumes module, not a panel field (the Prep panel sets the moving one
# too): "(--spacing-fixed sx,sy,sz)" had been a fix the panel does not offer (a helper's sweep).
_SPACING = re.compile(r"(?:mmreg prep )?--spacing-fixed ?/ ?--spacing-moving"
                      r"|(?:mmreg prep )?--spacing-(fixed|moving)(?: [a-z]{1,2},[a-z]{1,2},[a-z]{1,2})?")  # fmt: skip
VOLUMES_MODULE = "set in the Volumes module, Volume Information"


# The Prep panel has no initial transform: its start is the moving volume's parent transforms and its current
# transform. The refusal of images that do not overlap had blamed "the initial transform given" (a helper's sweep).
_PREP_PHRASES = (
    ("the initial transform given places the images apart", "the moving volume's parent transforms and the 'Current "
     "transform' place the images apart"),
    ("(not its inverse), or leave it out", "(not its inverse), or take the moving volume out of it"),
    ("give an initial transform (from mmreg prealign, or the result of a first mmreg register without cropping, "
     "whose pose search finds images far apart)", "put the moving volume under a prealignment (FiducialPrealign), "
     "or register once without cropping (Multimodal Registration searches every pose) and choose that result as "
     "the 'Current transform'"),
)  # fmt: skip


def _spacing_words(match: re.Match, job_class: type) -> str:
    role = match.group(1)
    if role is None:
        return f"each volume's spacing ({VOLUMES_MODULE})"
    here = ", or this panel's moving spacing" if role == "moving" and job_class is PrepJob else ""
    return f"the {role} volume's spacing ({VOLUMES_MODULE}{here})"
# An option, with the command that owns it when the text names one ("mmreg prep --downsample-to").
_OPTION = re.compile(r"(?:\bmmreg (?:prep|register|qa|prealign) )?(--[a-z][a-z0-9-]*)")


@cache  # the fields of a class do not change; messages are worded one by one
def _words(record_class: type) -> dict[str, str]:
    """Option -> "'Label' (parameterName)" for the fields of ``record_class`` that a panel sets (read only)."""
    words = {}
    for field in fields(record_class):
        if field.metadata.get("cli") is None or not field.metadata.get("panel"):
            continue
        names = panel_names(field)  # the last holds the choice, unless only an earlier one has a label (N4)
        name = next((n for n in reversed(names) if n in PANEL_LABELS), names[-1])
        label = PANEL_LABELS.get(name, name[:1].upper() + re.sub(r"([A-Z])", r" \1", name[1:]).lower())
        if label is None:
            words[option_flag(field)] = name
        else:
            words[option_flag(field)] = f"'{label}'" if label.lower() == name.lower() else f"'{label}' ({name})"
    return words


def field_words(job_class: type, field) -> str:
    """How a panel names a field of ``job_class``: "'Fixed mask' (fixedMask)"."""
    return _words(job_class).get(option_flag(field), panel_names(field)[-1])


def in_panel_words(text: str, job_class: type = RegistrationJob) -> str:
    """``text`` with each ``mmreg`` option a panel sets named as the panel of ``job_class`` names it; options
    of another step (QA's stability, Registration Prep's downsampling) as that panel names them; the rest as
    they are."""
    own = _words(job_class)
    if not own and job_class is not PrepJob:  # a job no panel sets (a stack): its options are its own
        return text
    others = {flag: words for cls in (RegistrationJob, QAJob, PrealignJob) for flag, words in _words(cls).items()}
    prep = _words(PrepOptions)

    def name(match: re.Match) -> str:
        flag = match.group(1)
        if flag in own:
            return own[flag]
        if flag in prep and (match.group(0).startswith("mmreg prep") or flag not in others):
            return ("" if job_class is PrepJob else PREP_MODULE) + prep[flag]
        return others.get(flag, match.group(0))

    if job_class is PrepJob:
        for said, meant in _PREP_PHRASES:
            text = text.replace(said, meant)
    else:  # "crop the images to the region instead (mmreg prep)" had reached the panel so (a node sweep)
        text = text.replace("(mmreg prep)", "(the Registration Prep module)")
    return _OPTION.sub(name, _SPACING.sub(lambda match: _spacing_words(match, job_class), text))


@contextmanager
def panel_errors(job_class: type = RegistrationJob) -> Iterator[None]:
    """Re-raise an :class:`InputError` from inside with its options in the panel's words."""
    try:
        yield
    except InputError as error:
        worded = in_panel_words(str(error), job_class)
        if worded == str(error):
            raise
        raise InputError(worded) from error
