"""Registration engines: declared in :mod:`.registry`, run through :func:`.run.run_engine`.

Nothing heavy is imported here: an engine's package loads only when it runs (:mod:`.loading`).
"""
