"""Any engine behind one call, and the advice a user gets when an engine fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..core.errors import DiskError, EngineError, InputError
from ..core.memory import OUT_OF_MEMORY_HINT
from ..core.write_trouble import DISK_HINT, write_trouble
from .output import EngineOutput
from .registry import EngineSpec, engine_spec
from .request import EngineRequest
from .request_2d import EngineOutput2D, EngineRequest2D

T = TypeVar("T")


def run_engine(request: EngineRequest) -> EngineOutput:
    """Run ``request.preset`` with its engine (see :class:`.request.EngineRequest`).

    An engine that is not installed, or whose run fails, raises :class:`EngineError` with its message,
    a hint the user can act on and the engine's log.
    """
    spec = engine_spec(request.preset.engine)
    if request.guidance is not None:
        request.guidance.check()
    return _translating_errors(spec, request.workdir, lambda: spec.implementation().run(request))


def run_engine_2d(request: EngineRequest2D) -> EngineOutput2D:
    """Run a 2D preset with its engine's 2D runner (see :class:`.request_2d.EngineRequest2D`); errors as
    :func:`run_engine`. An engine without a 2D runner is refused (InputError) before it loads."""
    spec = engine_spec(request.preset.engine)
    runner = spec.implementation_2d()
    return _translating_errors(spec, request.workdir, lambda: runner.run_2d(request))


def _translating_errors(spec: EngineSpec, workdir: Path, call: Callable[[], T]) -> T:
    """``call()``, with a missing engine and an engine's RuntimeError turned into :class:`EngineError`."""
    try:
        return call()
    except (InputError, EngineError):
        raise
    except ImportError as error:
        from .install import kept_as_they_are, manual_command, requirement

        # Resources/requirements.txt had been named: a path in the source tree, with pins that downgrade Slicer's
        # numpy and have no macOS wheel (a helper's packaging sweep)
        wanted = requirement(spec.distribution)
        raise EngineError(
            f"{spec.label} is not installed ({error})",
            hint=f'outside Slicer: pip install "{wanted}"; in Slicer, {manual_command([wanted, *kept_as_they_are()])}',
        ) from None
    except RuntimeError as error:
        message = str(error).strip()
        trouble, log = write_trouble(error, [workdir]), _logs_in(workdir)
        if trouble is not None:  # its scratch files: had read as the engine's failure, or as a bad input
            raise DiskError(f"{spec.label} failed: {trouble[-2000:]}", hint=DISK_HINT, log=log) from None
        raise EngineError(f"{spec.label} failed: {message[-2000:]}", hint=engine_hint(message), log=log) from None


def _logs_in(workdir: Path) -> str:
    """The logs an engine left in its folder, for the user to read after a failure."""
    return "\n".join(path.read_text(errors="replace") for path in sorted(Path(workdir).glob("*.log")))


# What an engine says when its optimiser moved the images apart: no sample of one falls on the other.
OVERLAP_LOST = ("too many samples map outside", "joint pdf summed to zero", "all samples map outside")


def lost_overlap(message: str) -> bool:
    """Whether an engine's error text says the images stopped overlapping during the run."""
    lowered = message.lower()
    return any(text in lowered for text in OVERLAP_LOST)


def engine_hint(message: str) -> str:
    """Turn an engine's error text into advice a user can act on."""
    lowered = message.lower()
    if lost_overlap(message):
        return (
            "the images, or their masks, barely overlap during the run: prealign with landmarks (mmreg prealign), "
            "crop both to the common region, or give masks that cover the same anatomy"
        )
    if any(text in lowered for text in ("could not find enough image samples", "sampledpointset")):
        return "the mask is too small for the sampler: crop the image instead of masking, or enlarge the mask"
    # "memory" alone had matched ANTs's image dump ("Container manages memory: true") under another failure
    if any(text in lowered for text in ("bad_alloc", "out of memory", "memoryerror", "allocat", "not enough mem")):
        return OUT_OF_MEMORY_HINT
    return "check the engine log; try the rigid preset first, or prealign with landmarks"
