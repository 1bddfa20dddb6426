"""What the module panels need from the library besides the nodes: the engines and their presets, the
status lines, the session's warm worker. Module files import this, the other ``nodes`` modules and
``core`` only (a test checks it), so the layers below can change without touching them."""

from __future__ import annotations

from ..engines.install import EngineInstallError, ensure_engines
from ..engines.presets import list_presets
from ..engines.registry import DEFAULT_ENGINE, ENGINE_NAMES
from ..landmarks.models import KINDS as LANDMARK_MODELS
from ..prep.options import PrepOptions
from ..process.warm_worker import WarmSlot
from ..registration.describe import describe_guidance, describe_result

__all__ = [
    "DEFAULT_ENGINE",
    "EngineInstallError",
    "ENGINE_NAMES",
    "LANDMARK_MODELS",
    "PrepOptions",
    "WarmSlot",
    "describe_guidance",
    "describe_result",
    "ensure_engines",
    "list_presets",
]
