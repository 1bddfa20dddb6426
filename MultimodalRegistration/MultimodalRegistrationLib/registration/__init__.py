"""registration: one registration in this process. The starting pose (any-pose search, image centres),
the engine run from each start, the mirror and collapse checks, and the result with its provenance."""
