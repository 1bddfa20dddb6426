"""A node-level job (registration, preparation) whose work runs in a worker process."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import InputError
from ..core.files import scratch_folder
from ..process.results import JobResult
from ..process.worker import WorkerFailure, WorkerJob
from . import mrml
from .node_state import NodeState
from .panel import node_of, panel_noun
from .panel_words import in_panel_words

# A registration result node carries how it was made as attributes under this prefix (3D and 2D alike).
REGISTRATION_ATTRIBUTE_PREFIX = "MultimodalRegistration."
PREALIGN_ATTRIBUTE_PREFIX = "FiducialPrealign."  # a landmark fit's, on its transform node
RESULT_PREFIXES = (REGISTRATION_ATTRIBUTE_PREFIX, PREALIGN_ATTRIBUTE_PREFIX)
POLL_INTERVAL_MS = 200  # how often a GUI polls a running job: often enough for a smooth progress bar


def forget_earlier_result(node) -> None:
    """Take the attributes of the result a transform node held off it, before it holds a new one: a prealignment
    chosen as a registration's output kept its landmark fit's type, residuals and point lists (a helper's sweep),
    and an unguided run into a guided run's node would keep the guidance figures."""
    for name in list(node.GetAttributeNames() or ()):
        if name.startswith(RESULT_PREFIXES):
            node.RemoveAttribute(name)
    roles = [node.GetNthNodeReferenceRole(i) for i in range(node.GetNumberOfNodeReferenceRoles())]
    for role in roles:
        if role.startswith(RESULT_PREFIXES) and role.endswith("NodeID"):  # the IDs it recorded (node_links), not
            node.RemoveNodeReferenceIDs(role)  # its inverse, which the run that replaces it removes (result_extras)


@contextmanager
def job_folder(prefix: str) -> Iterator[Path]:
    """A new temporary folder for a job's files, removed again if filling it (or starting the job) fails.

    Once the job runs, the folder is the job's: :class:`NodeJob` removes it when the job is done.
    """
    folder = scratch_folder(prefix)
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


class NodeJob:
    """Progress, blocking wait, non-blocking poll and cancel around a :class:`..process.worker.WorkerJob`.

    Subclasses set ``self._worker``, ``folder`` (removed when done) and ``on_done``, and implement
    :meth:`_apply`, which puts a successful result in the scene and sets ``summary``.
    """

    _worker: WorkerJob
    folder: Path
    scene: object  # the MRML scene the result goes into
    _targets: dict
    _target_job: type
    on_done: Callable | None = None
    summary: dict | None = None
    error: WorkerFailure | None = None
    # Said instead of the worker's own words when the job is cancelled (None keeps them).
    cancelled_message: str | None = None
    # Wait for the worker to exit before applying, so that it removes its own scratch folder.
    reap_worker: bool = False
    # The job whose panel the messages speak for (None: the worker's job type); False speaks mmreg's options
    # (the Slicer batch script, whose users typed them).
    panel_job: type | None = None
    speaks_panel: bool = True

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

    def follow(self, schedule: Callable[[int, Callable[[], None]], None], interval_ms: int = POLL_INTERVAL_MS) -> None:
        """Poll now and, while the worker runs, again through ``schedule(interval_ms, callback)``, which calls
        ``callback`` once after ``interval_ms`` (a GUI passes ``qt.QTimer.singleShot``). Never blocks;
        ``on_done`` reports the finished job."""
        if self.poll():
            schedule(interval_ms, lambda: self.follow(schedule, interval_ms))

    def wait(self, timeout: float | None = None) -> dict:
        """Block until done; return the JSON summary or raise :class:`..process.worker.WorkerFailure`."""
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
        """Stop the worker; the scene stays as it was, also when the worker had already finished and its result
        waited for the next poll (a GUI polls every 200 ms: a Cancel in between had added the whole result and
        reported success; a helper's sweep)."""
        if self.running:
            self._worker.cancel()
            if self._worker.error is None:
                self._worker.error = WorkerFailure("cancelled", "the job was cancelled; nothing was written")
            self._complete()

    def _complete(self) -> None:
        if self.reap_worker:
            try:
                # The outcome is in; this reaps the exiting worker (poll alone can see the result before the exit).
                self._worker.wait()
            except WorkerFailure:
                pass
        try:
            if self._worker.error is not None:
                self.error = self._worker.error
                if self.error.kind == "cancelled" and self.cancelled_message:
                    self.error = WorkerFailure("cancelled", self.cancelled_message)
                self.error.message, self.error.hint = map(self.in_panel_words, (self.error.message, self.error.hint))
            else:
                self._apply_or_add_nothing(self._worker.result)
        except InputError as error:
            self.error = WorkerFailure("input", self.in_panel_words(str(error)))
        except Exception as error:  # a GUI polls from a timer: an escaping error would leave the panel running
            logging.getLogger(__name__).exception("the result could not be put into the scene")
            self.error = WorkerFailure("internal", f"the result could not be put into the scene ({type(error).__name__}: "
                                                   f"{error}); nothing was added: run it again")  # fmt: skip
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self.on_done:
            self.on_done(self)

    def _apply_or_add_nothing(self, result: JobResult) -> None:
        """:meth:`_apply`; if it fails, the nodes it added go again and those it may fill hold what they held."""
        before = mrml.node_ids(self.scene)
        held = [NodeState(node) for node in self._nodes_it_may_fill()]
        try:
            self._apply(result)
        except BaseException:
            mrml.remove_nodes_added_since(self.scene, before)
            for state in held:
                state.restore()
            raise

    def _nodes_it_may_fill(self) -> list:
        """The existing nodes :meth:`_apply` may change: the job's output nodes still in the scene."""
        found = (self.present_target(name) for name in getattr(self, "_targets", {}) if name.startswith("output"))
        return [node for node in found if _is_node(node)]

    def keep_targets(self, parameters, job_class: type, names) -> None:
        """Hold the nodes ``parameters`` name now for the job fields ``names``: a panel's selectors can change while
        the job runs, and its result belongs to the nodes it started with (:meth:`target`)."""
        self._targets = {name: node_of(parameters, job_class, name) for name in names}
        self._target_job = job_class

    def target(self, name: str):
        """The node the job started with for the job field ``name`` ("fixed", "output_volume"...), or None."""
        return self._targets[name]

    def check_targets_present(self, doing: str, again: str) -> None:
        """Refuse to apply a result when a node it was made from (any kept target but an output, which
        :meth:`present_target` replaces) left the scene while the job ran (InputError)."""
        for name, node in self._targets.items():
            if not name.startswith("output") and _is_node(node) and not mrml.in_scene(node):
                raise InputError(f"the {panel_noun(self._target_job, name)} was removed from the scene {doing}: nothing "
                                 f"was added; {again}")  # fmt: skip

    def present_target(self, name: str):
        """:meth:`target`, or None when that node has left the scene (an output node deleted while the job ran)."""
        node = self._targets[name]
        return node if not _is_node(node) or mrml.in_scene(node) else None

    def in_panel_words(self, text: str) -> str:
        """``text`` with ``mmreg``'s options named as the panel names them (:mod:`.panel_words`), and the scratch
        files the job read its input nodes from named as those nodes (a helper's sweep: a warning on landmark
        coordinates named "guidance_fixed_points.csv", a file the user never saw)."""
        text = in_panel_words(text, self.panel_job or self._worker.job_type) if self.speaks_panel else text
        targets = getattr(self, "_targets", {})
        for field, value in getattr(self._worker, "job", {}).items():
            node = targets.get(field)
            if isinstance(value, str) and value and _is_node(node) and Path(value).name in text:
                text = text.replace(value, f"'{node.GetName()}'").replace(Path(value).name, f"'{node.GetName()}'")
        return text

    def _apply(self, result: JobResult) -> None:
        raise NotImplementedError


def _is_node(value) -> bool:
    """An MRML node (a script may give a field an image or a file instead)."""
    return callable(getattr(value, "IsA", None)) and value.IsA("vtkMRMLNode")
