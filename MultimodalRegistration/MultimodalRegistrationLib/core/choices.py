"""Names a user chooses from, in one place, free of heavy imports so that ``mmreg`` starts fast.

The engines and their default are declared with the engines (``engines/registry.py``)."""

# How a registration finds its starting pose: see initialize.py.
INIT_METHODS = ("auto", "any-pose", "geometry", "moments", "none")
DEFAULT_INIT = "auto"
# The any-pose search's widest rotation (degrees): the whole sphere.
FULL_ROTATION_DEG = 180.0

# What the metric compares: the intensities (mutual information) plus any guidance, or only the
# guidance (segments and landmarks) for modalities whose intensities do not correspond.
GUIDANCE_METRICS = ("intensity", "segments")

# The defaults of every entry point (CLI, worker jobs, node-level calls, the modules).
DEFAULT_PRESET = "rigid"
# A fixed seed by default, so that the same inputs give the same transform.
DEFAULT_SEED = 20251121

# Landmark fits (FiducialPrealign, mmreg prealign), simplest first.
LANDMARK_TRANSFORMS = ("translation", "rigid", "similarity", "affine", "tps")

# The stability check's restarts: how many, how far each start is perturbed, and the verdict's
# threshold on the 95th-percentile spread (mm) above which a result is called unstable.
DEFAULT_RESTARTS = 5
DEFAULT_SHIFT_MM = 5.0
DEFAULT_ROTATION_DEG = 5.0
DEFAULT_THRESHOLD_MM = 2.0


def comma_names(value: str, option: str) -> list[str] | None:
    """The names of a comma-separated ``value`` (None for an empty one); InputError naming ``option`` when it holds
    commas and no name ("," ran as if the option had not been given)."""
    from .errors import InputError

    names = [part.strip() for part in value.split(",") if part.strip()]
    if value.strip() and not names:
        raise InputError(f"{option} '{value}' names no segment: give names separated by commas, e.g. {option} sacrum,left_hip")
    return names or None
