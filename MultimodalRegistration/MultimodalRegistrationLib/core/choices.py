"""Names a user chooses from, and the ranges of the numbers every command shares (seed, threads, a time
budget), in one place, free of heavy imports so that ``mmreg`` starts fast.

The engines and their default are declared with the engines (``engines/registry.py``)."""

import math

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
MAX_SEED = 2**31 - 1  # the engines take a 32-bit signed seed
# The most engine threads (or parallel pairs) a run may ask for: far above any machine's cores, so a script
# moved to a larger machine keeps running, yet a typo (100000) is refused rather than run oversubscribed.
MAX_THREADS = 1024

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


def check_seed(seed, option: str = "--seed") -> None:
    """Refuse a random seed the engines cannot take (None: the default)."""
    from .errors import InputError

    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED):
        raise InputError(f"{option} {seed} is out of range: give a whole number from 0 to {MAX_SEED}")


def check_threads(threads, unset: str = "the engine's default", option: str = "--threads") -> None:
    """Refuse a thread count below 1 or above :data:`MAX_THREADS` (None: ``unset``, which the message names as
    what leaving the option out gives)."""
    from .errors import InputError

    if threads is None:
        return
    leave = f" (or leave it out: {unset})" if unset else ""
    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise InputError(f"{option} {threads}: give 1 or more{leave}")
    if threads > MAX_THREADS:
        from .cores import usable_cores

        cores = usable_cores()
        raise InputError(f"{option} {threads} is far more than this machine's {cores} cores: give 1 to "
                         f"{MAX_THREADS}, e.g. {cores}{leave}")  # fmt: skip


def check_timeout(seconds, option: str = "--timeout", unset: str = "no limit") -> None:
    """Refuse a time budget that is not a positive number of seconds (None: ``unset``)."""
    from .errors import InputError

    if seconds is not None and not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
        raise InputError(f"{option} {seconds} s: give a positive number of seconds (or leave it out: {unset})")
