"""Preparing a fixed/moving pair for registration: spacing, downsampling, cropping, masks, bias.

``prepare(fixed, moving, options)`` is used by ``mmreg prep`` (which writes the results) and by
``mmreg register --prep`` (which registers them on the fly). Every output is a new image; the
originals are untouched. Crops and downsampled copies keep their physical placement, so the
transform found on them (fixed -> moving, LPS mm) applies to the full-resolution originals, as long as
no spacing was set: with ``spacing_moving`` it applies to the moving image with that spacing (a warning
says so). Whether an image is CT, and a CT's HU offset, are judged once on the whole input
(:mod:`.modality`), before any crop or downsampling.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import SimpleITK as sitk

from ..core.errors import InputError
from ..core.file_checks import MIN_VOXELS_PER_AXIS
from ..core.files import OutputSet, scratch
from ..core.images import colour_source_as_grey, read_image, validate_image
from ..core.plausible_spacing import sizes_apart_message
from ..core.transforms import Transform, resample
from .bias import MIN_N4_VOXELS, check_n4_size, correct_bias
from .crop import check_cropped_size, crop_common, oriented_box_halfspaces
from .downsample import check_downsampled_size, downsample, read_downsampled, read_header
from .exclusion import check_not_all_excluded, exclusion_from_full_resolution
from .mask_option import mask_for
from .masks import coverage_warning, exclusion_mask, resolve_modality, voxel_sample
from .modality import judge, modality_hint, not_ct_hint, sample_of, sample_stride
from .options import ROLES, PrepOptions
from .spacing import (
    check_spacing,
    downsample_targets,
    mask_with_spacing,
    metaimage_with_spacing,
    parse_spacing,
    set_spacing,
)
from .summary import ImageGrid, ImageModality, PrepStep, PrepSummary


@dataclass
class PreparedPair:
    """The prepared images, masks and what was done. Transforms found on them apply to the originals."""

    fixed: sitk.Image
    moving: sitk.Image
    fixed_mask: sitk.Image | None = None
    moving_mask: sitk.Image | None = None
    # Full-resolution originals (with spacing fixes), None when read straight into a downsampled copy.
    fixed_original: sitk.Image | None = None
    moving_original: sitk.Image | None = None
    steps: list[dict] = field(default_factory=list)  # {"step", "image", "why", ...}
    warnings: list[str] = field(default_factory=list)
    modality: dict[str, ImageModality] = field(default_factory=dict)  # by role, judged on the whole input
    # By role: the input's grid as stored (size, spacing, origin, direction) and the spacing given for it, or None.
    input_grids: dict[str, tuple] = field(default_factory=dict)
    spacing_given: dict[str, tuple | None] = field(default_factory=dict)

    def summary(self) -> PrepSummary:
        """What was done and the prepared grids, as a record (``prep.json``)."""

        def grid(image) -> ImageGrid | None:
            if image is None:
                return None
            spacing, origin = [round(s, 6) for s in image.GetSpacing()], [round(o, 4) for o in image.GetOrigin()]
            return ImageGrid(list(image.GetSize()), spacing, origin, [round(d, 6) for d in image.GetDirection()])

        steps = [PrepStep.from_dict(step) for step in self.steps]
        grids = [grid(image) for image in (self.fixed, self.moving, self.fixed_mask, self.moving_mask)]
        return PrepSummary(steps, list(self.warnings), *grids, modality=dict(self.modality) or None)

    def registration_mask(self, mask: sitk.Image | None, role: str) -> sitk.Image | None:
        """A mask given to the registration beside the preparation (``mmreg register --moving-mask FILE
        --spacing-moving ...``), with the spacing fix carried over as for a prep mask (see
        :func:`.spacing.mask_with_spacing`; another grid is refused)."""
        spacing = self.spacing_given.get(role)
        if mask is None or spacing is None:
            return mask
        return mask_with_spacing(mask, self.input_grids[role], spacing, role)[0]

    def resample_moving(self, transform: Transform) -> sitk.Image:
        """The moving image (full resolution when held) on the fixed grid (original when held) through ``transform``."""
        fixed = self.fixed_original if self.fixed_original is not None else self.fixed
        moving = self.moving_original if self.moving_original is not None else self.moving
        return resample(moving, fixed, transform)


# A file under MIN_N4_VOXELS along an axis is under the registration's minimum too: N4 off does not save it.
WHOLE_VOLUME = (
    f"give the whole volume (a registration needs {MIN_VOXELS_PER_AXIS} or more voxels along every axis too, N4 or not)"
)

Source = Union[str, os.PathLike, sitk.Image]


def _grid_of(source, role: str, spacing_given: bool = False) -> tuple[tuple, tuple, tuple, tuple]:
    """The input's size, spacing, origin and direction as stored (before any spacing fix)."""
    if isinstance(source, sitk.Image):
        if source.GetDimension() != 3 or source.GetNumberOfComponentsPerPixel() != 1:
            validate_image(source, role)  # raises: 4D, vector or 2D, with how to pick one volume
        return source.GetSize(), source.GetSpacing(), source.GetOrigin(), source.GetDirection()
    header = read_header(source, role, spacing_given=spacing_given)
    if header.dimension != 3 or header.components != 1:
        validate_image(read_image(source, role, spacing_given=spacing_given), role)
    return header.size, header.spacing, header.origin, header.direction


def _load(source, role: str, spacing, target, pair_steps: list, given=None) -> tuple:
    """The working image, the full-resolution original (None when streamed straight to ``target``) and a
    sample of the full-resolution voxels. ``given``: the user's file (``source`` may be a patched copy)."""
    if target is not None and not isinstance(source, sitk.Image):
        parts: list = []
        image, record = read_downsampled(source, target[0], spacing, role, sample=parts, sample_stride=sample_stride)
        record["source"] = str(given if given is not None else source)  # not a patched copy deleted afterwards
        pair_steps.append({"step": "downsample", "image": role, "why": target[1], "to_mm": target[0], **record})
        return image, None, sample_of(parts)
    original = source if isinstance(source, sitk.Image) else read_image(source, role, spacing_given=spacing is not None)
    if spacing is not None:
        original = set_spacing(original, spacing)
    if target is None:
        return original, original, voxel_sample(original)
    image = downsample(original, target[0])
    pair_steps.append({"step": "downsample", "image": role, "why": target[1], "to_mm": target[0],
                       "size": list(image.GetSize()), "read": "in memory"})  # fmt: skip
    return image, original, voxel_sample(original)


def _exclusion(role: str, image: sitk.Image, source, original, spacing, offset: float, options: PrepOptions,
               steps: list):  # fmt: skip
    """The exclusion mask on the working grid; measured on the full-resolution voxels when the image was
    downsampled (averaging hides small metal). ``offset``: the CT's HU offset, judged on the whole input."""
    if not any(step["step"] == "downsample" and step["image"] == role for step in steps):
        return exclusion_mask(image, options.exclude_above, options.exclude_margin_mm, offset=offset)
    above = options.exclude_above - offset
    full = original if original is not None else source
    return exclusion_from_full_resolution(full, above, image, options.exclude_margin_mm, spacing, f"{role} image")


def _spacing_warning(role: str, header_spacing, spacing) -> str:
    """What a spacing fix means for the transform found on the prepared pair."""
    new, old = ("x".join(f"{v:g}" for v in values) for values in (spacing, header_spacing))
    return (f"the {role} spacing was set to {new} mm (the input says {old} mm): a transform found on the prepared "
            f"images applies to the {role} image with {new} mm voxels, not to the original as stored; set that "
            f"spacing on the original file (or volume) too before using the transform with it")  # fmt: skip


def _n4_roles(options: PrepOptions) -> tuple[str, ...]:
    """The images N4 is asked to correct."""
    return () if not options.n4 else ROLES if options.n4 == "both" else (options.n4,)


def _n4_may_run(source, size, modality: str, role: str, spacing_given: bool) -> bool:
    """Whether N4 would run on an image it was asked for: not on CT, given, or guessed from the voxels of an
    image too thin for N4 (only those are read this early; they are small)."""
    if modality != "auto" or min(size[:3]) >= MIN_N4_VOXELS:
        return modality != "ct"
    image = source if isinstance(source, sitk.Image) else read_image(source, role, spacing_given=spacing_given)
    return resolve_modality(image, modality) != "ct"


def _n4_corrected(options: PrepOptions, modality: dict[str, str]) -> list[str]:
    """The images N4 will run on: those asked for, except CT (given or guessed), which has no MR bias field."""
    return [role for role in _n4_roles(options) if modality[role] != "ct"]


def prepare(
    fixed: Source,
    moving: Source,
    options: PrepOptions | None = None,
    initial_transform: Transform | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> PreparedPair:
    """Prepare a pair: set spacing, downsample, crop to the common region, build masks, correct bias.

    ``fixed`` and ``moving`` are SimpleITK images or file paths (a path lets a large image be read
    slab by slab straight into its downsampled copy). ``initial_transform`` (fixed -> moving)
    places the images for the common region; without it their physical placement is used.
    Raises :class:`InputError` with the fix for 4D or vector input, an implausible size without a
    spacing given, or images that do not overlap.
    """
    # The scratch folder holds a header copy with the given spacing.
    with scratch("mmreg-prep-") as folder:
        return _prepare(fixed, moving, options or PrepOptions(), initial_transform, progress, folder)


def _prepare(fixed, moving, options: PrepOptions, initial_transform, progress, folder: Path) -> PreparedPair:
    options.check()
    report = progress or (lambda fraction, stage: None)
    pair = PreparedPair(fixed=None, moving=None)  # type: ignore[arg-type]
    sources = {"fixed": fixed, "moving": moving}
    given_spacing = {"fixed": options.spacing_fixed, "moving": options.spacing_moving}

    report(0.0, "prep: checking spacing")
    spacings, grids = {}, {}
    for role in ROLES:
        spacing = parse_spacing(given_spacing[role]) if given_spacing[role] else None
        stored = None
        if spacing is not None and not isinstance(sources[role], sitk.Image):
            # before any voxel is read: ITK reads no MetaImage whose header spacing is 0, and an RGB one is read
            # whole just below (it had been called damaged; a helper's prep sweep)
            stored = read_header(sources[role], f"{role} image", spacing_given=True).spacing
            sources[role] = metaimage_with_spacing(sources[role], stored, spacing, folder) or sources[role]
        sources[role], colour = colour_source_as_grey(sources[role], f"{role} image", bool(given_spacing[role]))
        if colour:  # as registration reads it; the prepared image is its grey copy
            pair.warnings.append(colour)
        grids[role] = _grid_of(sources[role], f"{role} image", bool(given_spacing[role]))
        if stored is not None:  # the file as the user stored it, not the copy with the given spacing
            grids[role] = (grids[role][0], tuple(stored), *grids[role][2:])
        size, header_spacing = grids[role][:2]
        if spacing is not None:
            pair.steps.append({"step": "set spacing", "image": role, "why": "given by the user (no resampling)",
                               "from_mm": list(header_spacing), "to_mm": list(spacing)})  # fmt: skip
            pair.warnings.append(_spacing_warning(role, header_spacing, spacing))
        check = check_spacing(size, spacing or header_spacing, role=f"{role} image")
        if not check.plausible:
            raise InputError(f"{check.message} (--spacing-{role} sx,sy,sz)")
        given_spacing[role] = spacing
        spacings[role] = spacing or header_spacing
        if role in _n4_roles(options) and _n4_may_run(sources[role], size, getattr(options, f"modality_{role}"),
                                                      f"{role} image", bool(given_spacing[role])):  # fmt: skip
            check_n4_size(size, f"{role} image", WHOLE_VOLUME)  # before reading: crops and downsampling only shrink it

    if initial_transform is None and (apart := sizes_apart_message({role: grids[role][0] for role in ROLES}, spacings)):
        raise InputError(apart)  # cropped to their common region, they had left an empty image (exit 0)

    report(0.05, "prep: reading")
    targets, steps, warnings = downsample_targets(options.downsample_to, spacings)
    for role, (target_mm, _) in targets.items():
        check_downsampled_size(grids[role][0], spacings[role], target_mm, role, options.downsample_to == "auto")
    pair.steps += steps
    pair.warnings += warnings
    images, originals = {}, {}
    given_files = {"fixed": fixed, "moving": moving}
    for role in ROLES:
        images[role], originals[role], sample = _load(sources[role], role, given_spacing[role], targets.get(role),
                                                      pair.steps, given_files[role])  # fmt: skip
        validate_image(images[role], f"{role} image")
        # Judged here, on the whole input: a crop inside the body or an averaged copy can pass CT for MR.
        pair.modality[role] = judge(sample, getattr(options, f"modality_{role}"))

    if options.crop_common or options.roi_lps is not None:
        report(0.3, "prep: cropping")
        roi = oriented_box_halfspaces(*options.roi_lps) if options.roi_lps is not None else None
        fixed_crop, moving_crop = crop_common(
            images["fixed"], images["moving"], initial_transform, options.margin_mm, roi, options.crop_common
        )
        why = "both images cover only this region" if options.crop_common else "the region of interest"
        if options.crop_common and roi is not None:
            why += ", within the region of interest"
        placement = "the initial transform" if initial_transform is not None else "their own physical coordinates"
        for role, crop in (("fixed", fixed_crop), ("moving", moving_crop)):
            check_cropped_size(crop.image, role, bool(options.crop_common), options.roi_lps is not None)
            images[role] = crop.image
            pair.steps.append({"step": "crop", "image": role, "why": f"{why} (placed by {placement}), "
                               f"with a {options.margin_mm:g} mm margin", **crop.describe()})  # fmt: skip

    report(0.45, "prep: masks")
    modality = {role: pair.modality[role].modality for role in ROLES}
    masks = {role: mask_for(getattr(options, f"mask_{role}"), images[role], role, pair.modality[role], pair.steps,
                         grids[role], given_spacing[role], folder) for role in ROLES}  # fmt: skip
    if options.exclude_above is not None:
        ct_roles = [role for role in ROLES if modality[role] == "ct"]
        if not ct_roles:
            pair.warnings.append("--exclude-above is for CT, and neither image looks like CT: nothing excluded; if one "
                                 "is a CT stored with other values than Hounsfield units, say so: "
                                 f"{modality_hint('fixed', 'ct')}, or {modality_hint('moving', 'ct')}")
        for role in ct_roles:
            excluded = _exclusion(role, images[role], sources[role], originals[role], given_spacing[role],
                                  pair.modality[role].hu_offset or 0.0, options, pair.steps)  # fmt: skip
            count = int(sitk.GetArrayViewFromImage(excluded).sum())
            masked = masks[role] is not None
            base = masks[role] if masked else sitk.Cast(images[role] * 0 + 1, sitk.sitkUInt8)
            masks[role] = sitk.Cast(base & (1 - excluded), sitk.sitkUInt8)
            check_not_all_excluded(masks[role], role, options, masked)
            pair.steps.append({"step": "exclude", "image": role, "why": f"voxels above {options.exclude_above:g} HU "
                               f"(metal) and {options.exclude_margin_mm:g} mm around them mislead the metric",
                               "voxels_excluded": count})  # fmt: skip
    for role in ROLES:
        if masks[role] is not None:
            warning = coverage_warning(masks[role], f"{role} mask", options.crop_common)
            if warning:
                pair.warnings.append(warning)

    if options.n4:
        report(0.6, "prep: bias correction")
        for role in _n4_corrected(options, modality):  # a guessed modality is known only now; refused before any N4
            check_n4_size(images[role].GetSize(), f"{role} image")
        for role in _n4_roles(options):
            if modality[role] == "ct":
                said = "was given as CT" if getattr(options, f"modality_{role}") == "ct" else "looks like CT"
                pair.warnings.append(f"N4 corrects MR bias fields: skipped on the {role} image, which {said}")
                if not pair.modality[role].given:
                    pair.warnings.append(f"the {role} image was taken for CT ({pair.modality[role].share_at_air:.0%} "
                                         f"of it at -500 or below): if it is not CT (an MR stored with a negative "
                                         f"background), give {not_ct_hint(role)}")  # fmt: skip
                continue
            result = correct_bias(images[role], masks[role], options.n4_shrink, role=f"{role} image")
            images[role] = result.corrected
            if options.n4_shrink is not None and min(result.shrink_factors) < options.n4_shrink:
                pair.warnings.append(f"--n4-shrink {options.n4_shrink} would leave too few voxels of the {role} "
                                     f"image to fit: shrunk by {result.shrink_factors} instead")  # fmt: skip
            why = "a smooth MR intensity bias makes one tissue look like several"
            pair.steps.append({"step": "bias correction", "image": role, "why": why, **result.describe()})

    report(1.0, "prep: done")
    pair.input_grids, pair.spacing_given = grids, dict(given_spacing)
    pair.fixed, pair.moving = images["fixed"], images["moving"]
    pair.fixed_mask, pair.moving_mask = masks["fixed"], masks["moving"]
    pair.fixed_original, pair.moving_original = originals["fixed"], originals["moving"]
    return pair


def write_prepared(
    pair: PreparedPair, output_dir: str | os.PathLike, suffix: str = ".nrrd", staged: OutputSet | None = None
) -> dict[str, str]:
    """Write the prepared images and masks into ``output_dir``; returns {name: path}. They appear together (an
    :class:`OutputSet`; give ``staged`` to add them to a set of the caller's, which moves them into place).

    A mask of an earlier run into the same folder that this run does not make is removed: beside the new
    images it would pass for theirs. Only a mask that run's ``prep.json`` names as its own: a file of the
    same name that a user keeps there is left alone (audit: a prep into the current folder deleted it).
    """
    from ..core.images import write_image

    output_dir = Path(output_dir)
    earlier = _earlier_outputs(output_dir / "prep.json")
    outputs = staged if staged is not None else OutputSet()
    written = {}
    try:
        for name in ("fixed", "moving", "fixed_mask", "moving_mask"):
            image = getattr(pair, name)
            path = output_dir / f"{name}{suffix}"
            if image is not None:
                outputs.write(path, lambda tmp, image=image: write_image(image, tmp))
                written[name] = str(path)
            elif str(path.resolve()) in earlier:
                outputs.remove(path)
        if staged is None:
            outputs.commit()
    finally:
        if staged is None:
            outputs.discard()
    return written


def _earlier_outputs(summary: Path) -> set[str]:
    """The files an earlier prep run's ``prep.json`` says it wrote (resolved paths); none without one."""
    import json

    try:
        outputs = json.loads(summary.read_text()).get("outputs") or {}
    except (OSError, ValueError, AttributeError):
        return set()
    # Older records hold the paths as typed: relative to the folder that run was started in, which may not be this
    # one; the files are named as they lie in the record's own folder.
    return {str((summary.parent / Path(path).name).resolve()) for path in outputs.values() if isinstance(path, str)}
