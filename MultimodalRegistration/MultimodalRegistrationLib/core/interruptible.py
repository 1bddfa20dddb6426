"""Running a long ITK filter in this process so that Ctrl-C and SIGTERM still stop it (issue 25).

Python runs a signal's handler only between its own bytecodes, and an ITK filter's ``Execute`` runs none
for minutes (N4 on a large MR image). A do-nothing callback on the filter's iteration event gives Python
that moment once per iteration: the handler there raises, SimpleITK stops the filter with a RuntimeError,
and this module raises what the signal means instead (KeyboardInterrupt, or Terminated for SIGTERM/SIGHUP/SIGBREAK).
"""

from __future__ import annotations

import io
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from .errors import Terminated

# SIGBREAK: Windows' Ctrl-Break and a console window closed, which had stopped mmreg without its 'what was written'
STOP_SIGNAL_NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")
SIGNALS = tuple(getattr(signal, name) for name in STOP_SIGNAL_NAMES if hasattr(signal, name))
Result = TypeVar("Result")


class _Stop(Exception):
    """Raised in the filter's callback to stop it; never leaves this module."""


def _meaning(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def run_interruptibly(process_object, execute: Callable[[], Result]) -> Result:
    """``execute()`` (which runs ``process_object``, a SimpleITK filter), stopped within one of the filter's
    iterations by SIGINT, SIGTERM, SIGHUP or SIGBREAK. Outside the main thread (no signal reaches it) it just runs."""
    import SimpleITK as sitk

    if threading.current_thread() is not threading.main_thread():
        return execute()
    received: list[int] = []

    def stop(signum, frame) -> None:
        received.append(signum)
        raise _Stop

    # A signal the process ignores (SIGHUP under nohup) stays ignored.
    heard = [signum for signum in SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, stop) for signum in heard}
    for event in (sitk.sitkIterationEvent, sitk.sitkProgressEvent):
        process_object.AddCommand(event, lambda: None)
    stderr, captured = sys.stderr, io.StringIO()
    sys.stderr = captured  # SimpleITK prints the stopped callback's traceback: not the user's business
    try:
        return execute()
    except (RuntimeError, _Stop):
        if received:
            raise _meaning(received[0]) from None
        raise
    finally:
        sys.stderr = stderr
        if not received and captured.getvalue():
            stderr.write(captured.getvalue())
        process_object.RemoveAllCommands()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
