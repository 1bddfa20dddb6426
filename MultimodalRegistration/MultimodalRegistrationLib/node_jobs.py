"""A node-level job (registration, preparation) whose work runs in a worker process."""

from __future__ import annotations

from .worker import WorkerFailure, WorkerJob


class NodeJob:
    """Progress, blocking wait, non-blocking poll and cancel around a :class:`.worker.WorkerJob`.

    Subclasses set ``self._worker`` and implement :meth:`_complete`, which applies the outcome to
    the scene (or records the error) and sets ``summary`` or ``error``.
    """

    _worker: WorkerJob
    summary: dict | None = None
    error: WorkerFailure | None = None

    @property
    def running(self) -> bool:
        return self.summary is None and self.error is None

    @property
    def fraction(self) -> float:
        return self._worker.fraction

    @property
    def stage(self) -> str:
        return self._worker.stage

    def poll(self) -> bool:
        """Handle what the worker sent; True while it still runs. Never blocks."""
        if self.running and not self._worker.poll():
            self._complete()
        return self.running

    def wait(self, timeout: float | None = None) -> dict:
        """Block until done; return the JSON summary or raise :class:`.worker.WorkerFailure`."""
        if self.running:
            try:
                self._worker.wait(timeout)
            except WorkerFailure:
                pass
            self._complete()
        if self.error is not None:
            raise self.error
        return self.summary

    def cancel(self) -> None:
        """Stop the worker; the scene stays as it was."""
        if self.running:
            self._worker.cancel()
            self._complete()

    def _complete(self) -> None:
        raise NotImplementedError
