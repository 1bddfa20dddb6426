"""What an engine hands back."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.transforms import Transform


@dataclass
class EngineOutput:
    transform: Transform  # fixed -> moving (LPS mm), initial transform included
    inverse: Transform | None  # moving -> fixed, when the engine gives one
    log: str
    version: str
    threads: int
    timings: dict = field(default_factory=dict)
    guidance: dict | None = None  # what guided the run (EngineGuidance.describe() and engine notes); None: unguided
    # (stage name, cumulative fixed -> moving transform after that stage, initial included), in preset order;
    # the last entry is ``transform`` itself. Engines that merge stages report the merged ones once (see each engine).
    stages: list[tuple[str, Transform]] = field(default_factory=list)
