"""Registration engines behind one call. Each engine module imports its package lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from ..core.errors import EngineError, InputError
from ..core.transforms import Transform
from .guidance_terms import EngineGuidance
from .output import EngineOutput
from .presets import Preset


def run_engine(
    engine: str,
    fixed: sitk.Image,
    moving: sitk.Image,
    preset: Preset,
    fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None,
    initial: Transform,
    seed: int,
    threads: int | None,
    workdir: Path,
    progress: Callable[..., None],
    guidance: EngineGuidance | None = None,
) -> EngineOutput:
    """Run ``preset`` with ``engine``, starting from ``initial`` (fixed -> moving).

    ``guidance`` adds segment channels and corresponding points (LPS mm) to the image metric; None
    runs the preset unchanged.
    """
    if engine == "elastix":
        from . import elastix as module
    elif engine == "ants":
        from . import ants as module
    else:
        raise InputError(f"unknown engine '{engine}': choose elastix or ants")
    if guidance is not None:
        guidance.check()
    arguments = (fixed, moving, preset, fixed_mask, moving_mask, initial, seed, threads, workdir, progress)
    try:
        return module.run(*arguments, guidance=guidance)
    except (InputError, EngineError):
        raise
    except ImportError as error:
        package = {"elastix": "itk-elastix", "ants": "antspyx"}[engine]
        raise EngineError(
            f"{engine} is not installed ({error})",
            hint=f"pip install -r Resources/requirements.txt (or pip install {package})",
        ) from None
    except RuntimeError as error:
        message = str(error).strip()
        hint, log = engine_hint(message), _logs_in(workdir)
        raise EngineError(f"{engine} failed: {message[-2000:]}", hint=hint, log=log) from None


def _logs_in(workdir: Path) -> str:
    """The logs an engine left in its folder, for the user to read after a failure."""
    return "\n".join(path.read_text(errors="replace") for path in sorted(Path(workdir).glob("*.log")))


def engine_hint(message: str) -> str:
    """Turn an engine's error text into advice a user can act on."""
    lowered = message.lower()
    if any(text in lowered for text in ("too many samples map outside", "joint pdf summed to zero",
                                        "all samples map outside")):  # fmt: skip
        return (
            "the images, or their masks, barely overlap during the run: prealign with landmarks (mmreg prealign), "
            "crop both to the common region, or give masks that cover the same anatomy"
        )
    if any(text in lowered for text in ("could not find enough image samples", "sampledpointset")):
        return "the mask is too small for the sampler: crop the image instead of masking, or enlarge the mask"
    if "memory" in lowered or "bad_alloc" in lowered:
        return "not enough memory: downsample the larger image (mmreg prep --downsample-to MM)"
    return "check the engine log; try the rigid preset first, or prealign with landmarks"
