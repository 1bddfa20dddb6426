"""The exception types of the library. Every message names the fix."""


class InputError(ValueError):
    """Bad input: the message says what is wrong and how to fix it (exit code 2)."""


class EngineError(RuntimeError):
    """The registration engine failed: carries the engine's own error and a hint (exit code 1)."""

    def __init__(self, message: str, hint: str = "", log: str = ""):
        self.hint = hint
        self.log = log
        super().__init__(f"{message}\nhint: {hint}" if hint else message)
