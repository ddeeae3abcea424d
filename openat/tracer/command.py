"""``openat -- CMD [ARGS...]``: run a command under the tracer from its first open.

The command is forked at once but held before ``exec`` until the tracer is
attached and knows its pid (:meth:`Command.release`), so even the dynamic
loader's first open is seen; the probe's fork programs then follow every
process it starts, in the kernel. The child gets back the signal
dispositions openat inherited (an ignored SIGINT stays ignored), so the
command runs as it would without openat.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Iterable, Mapping, Optional, Sequence

__all__ = ["Command", "CommandError", "EXIT_CANNOT_RUN", "EXIT_NOT_FOUND"]

EXIT_NOT_FOUND = 127  # as a shell: no such command
EXIT_CANNOT_RUN = 126  # found, but exec refused it (permissions, format)


class CommandError(Exception):
    """The command could not be started; ``status`` is what a shell would exit with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Command:
    """A forked child waiting to exec ``argv``."""

    def __init__(self, argv: Sequence[str], dispositions: Mapping[int, object] = {}) -> None:
        """Fork; the child waits for :meth:`release`. ``dispositions``: signal -> what openat
        inherited for it (SIG_IGN stays ignored in the command, anything else is the default)."""
        if not argv:
            raise ValueError("a command needs at least its name")
        self.argv = list(argv)
        self.status: Optional[int] = None
        go_read, self._go = os.pipe()
        self._errors, error_write = os.pipe2(os.O_CLOEXEC)  # closed by a successful exec
        # Blocked across the fork, until the child has its own dispositions:
        # a signal openat passes on at once must not reach openat's handler in the child.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, dispositions.keys())
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            _child(self.argv, dispositions, blocked, go_read, self._go, self._errors, error_write)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(go_read)
        os.close(error_write)

    def release(self) -> None:
        """Let the command exec; CommandError (after reaping the child) when exec failed."""
        os.write(self._go, b"g")
        os.close(self._go)
        self._go = -1
        report = os.read(self._errors, 64)  # empty at exec: the pipe was close-on-exec
        os.close(self._errors)
        if report:
            number = int(report)
            self.wait()
            raise CommandError(f"cannot run {self.argv[0]}: {os.strerror(number)}",
                               EXIT_NOT_FOUND if number == errno.ENOENT else EXIT_CANNOT_RUN)

    def poll(self) -> Optional[int]:
        """The exit status once the command ended (128 + N for signal N, as a shell says), else None."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = _exit_status(status)
        return self.status

    def wait(self) -> int:
        if self.status is None:
            _, status = os.waitpid(self.pid, 0)
            self.status = _exit_status(status)
        return self.status

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the command if it still runs."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def abandon(self) -> None:
        """The tracer could not start: kill a child that never exec'd, and reap it."""
        if self._go >= 0:
            os.close(self._go)  # the child reads end of file and exits
            self._go = -1
            os.close(self._errors)
            self.wait()


def _exit_status(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _child(argv: Sequence[str], dispositions: Mapping[int, object], mask: Iterable[int], go_read: int,
           go_write: int, errors_read: int, error_write: int) -> None:
    try:
        for signum, inherited in dispositions.items():
            signal.signal(signum, signal.SIG_IGN if inherited == signal.SIG_IGN else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # openat's own mask, for the command
        os.close(go_write)
        os.close(errors_read)
        if os.read(go_read, 1) == b"g":
            os.close(go_read)
            os.execvp(argv[0], list(argv))
    except OSError as error:
        os.write(error_write, str(error.errno or errno.ENOEXEC).encode())
    finally:
        os._exit(EXIT_NOT_FOUND)  # exec failed, or openat gave up before releasing us
