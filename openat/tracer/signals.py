"""SIGINT and SIGTERM: stop cleanly, with no moment at which a signal escapes as a traceback.

The handlers are installed unconditionally (a shell starts background jobs
with SIGINT ignored, and ``openat > log & kill -INT $!`` must still stop
it) and act in one of two ways:

* while nothing is in the kernel yet (parsing the command line), the
  handler raises :class:`Stopped`, which the entry point catches: there is
  nothing to clean up, so stopping at once is right;
* from the moment the tracer starts creating kernel objects, the handler
  only notes the signal (:attr:`StopSignals.received`); the reader loop
  sees it within one poll interval and leaves through the ordinary cleanup,
  and a signal during cleanup cannot cut it short. Nothing is raised at an
  arbitrary point, so no release can be skipped.

The entry point installs them inside its ``try``, so even a signal that
arrives while they are being installed is caught. Before that, while the
interpreter starts, ``openat.tracer.launch`` has set SIGINT to its default
action, as SIGTERM already is: a signal then ends the process with the
signal's status (128 + N in a shell), without a traceback.
"""

from __future__ import annotations

import signal
from typing import Callable, Dict, Optional

__all__ = ["STOP_SIGNALS", "StopSignals", "Stopped"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """A stop signal arrived before tracing began."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.status = 0  # the exit status the entry point returns: 0, as after Ctrl-C while tracing


class StopSignals:
    """The handlers for STOP_SIGNALS, and what they received."""

    def __init__(self) -> None:
        self.received: Optional[int] = None  # the first stop signal
        self.count = 0
        self.raising = True  # raise Stopped (before tracing) or only note
        # Called with each signal while noting (``-- CMD`` passes it on).
        self.on_signal: Optional[Callable[[int], None]] = None
        self.previous: Dict[int, object] = {}  # what was there before, for restore() and for CMD

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)

    def note_only(self) -> None:
        """From now on a signal is noted, never raised: kernel objects are about to exist."""
        self.raising = False

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        self.raising = False
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self.previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signum
        self.count += 1
        if self.raising:
            raise Stopped(signum)
        if self.on_signal is not None:
            self.on_signal(signum)
