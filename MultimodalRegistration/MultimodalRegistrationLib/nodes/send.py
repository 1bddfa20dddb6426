"""Handing a prealignment, or prepared volumes, to the registration panel's parameters: what the Send buttons of
FiducialPrealign and RegistrationPrep do before they open Multimodal Registration. ``registration`` is that
module's parameter node, or :func:`.registration.registration_parameters` in a script (the same names)."""

from __future__ import annotations

from ..core.errors import InputError
from . import mrml
from .node_links import recorded_node
from .prep import ATTRIBUTE_PREFIX as PREP_PREFIX
from .prep import was_prepared


def send_prealignment(registration, transform_node) -> bool:
    """Make ``transform_node`` the registration's initial transform; False, with the initial transform cleared, when
    the registration's moving volume is already under it: a run starts from the moving volume's parent transforms,
    and counting the prealignment twice would apply it twice."""
    moving = registration.movingVolume
    if moving is not None and mrml.is_under(moving, transform_node):
        registration.initialTransform = None
        return False
    registration.initialTransform = transform_node
    return True


def send_prepared(registration, fixed, moving, fixed_mask=None, moving_mask=None):
    """Make the prepared volumes and masks the registration's inputs, and the current transform the preparation
    assumed (recorded on the prepared moving volume) its initial transform, so that it starts from the pose the crop
    assumed; returns that transform node, or None (none: the initial transform is cleared). Volumes that were not
    prepared are refused (:class:`InputError`)."""
    if not all(was_prepared(volume) for volume in (fixed, moving)):
        raise InputError("prepare the volumes first: there are no prepared volumes to send")
    current = recorded_node(moving, PREP_PREFIX + "currentTransformNodeID")[1]
    registration.fixedVolume, registration.movingVolume = fixed, moving
    registration.fixedMask, registration.movingMask = fixed_mask, moving_mask
    registration.initialTransform = current
    return current
