"""Attachments that outlive the process unless removed: closed at exit and on SIGTERM.

A BPF link or a perf event goes away with the process's fds, but an XDP
program attached through netlink, a tc filter and a qdisc stay on the
interface after the process is gone. The Links that hold such attachments
are registered here:

- at exit (normal end, an uncaught exception, Ctrl-C's KeyboardInterrupt)
  ``atexit`` closes every one still open, newest first;
- while one is open, SIGTERM raises ``SystemExit(143)`` in the main thread,
  so ``with`` blocks and ``finally`` clauses run as for Ctrl-C, then atexit.
  Only where SIGTERM still has its default action: a program with a handler
  of its own (the tracer's CLI has one) keeps it and does its own cleanup.
  When no registered Link is open any more, SIGTERM kills as it would have.

SIGKILL cannot be caught: where the kernel has them, XDP links and tcx
(BPF links, which the kernel removes with the last fd) are preferred for
that reason. A forked child never removes its parent's attachments, and
gets SIGTERM's default action back: a child that raised SystemExit would
run on in a copy of its parent's stack.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from typing import List

from .link import Link

__all__ = ["close_at_exit"]

_registered: List["weakref.ReferenceType[Link]"] = []
_lock = threading.RLock()  # re-entrant: the SIGTERM handler may run while the main thread holds it
_exit_hook_installed = False
_installer_pid = 0


def close_at_exit(link: Link) -> None:
    """Close ``link`` at exit, and on SIGTERM where SIGTERM has its default action (see the module doc)."""
    global _exit_hook_installed
    with _lock:
        _registered[:] = [ref for ref in _registered if _is_open(ref)]
        _registered.append(weakref.ref(link))
        if not _exit_hook_installed:
            atexit.register(_close_all, os.getpid())
            _exit_hook_installed = True
    _handle_sigterm()


def _is_open(ref: "weakref.ReferenceType[Link]") -> bool:
    link = ref()
    return link is not None and not link.closed


def _close_all(pid: int) -> None:
    if os.getpid() != pid:  # a forked child that exits normally: the attachments are its parent's
        return
    with _lock:
        links = [ref() for ref in reversed(_registered)]
        _registered.clear()
    for link in links:
        if link is None:
            continue
        try:
            link.close()
        except Exception as error:  # at exit nothing can handle it: say what is left behind
            print(f"openat: could not remove {link.description}: {error}", file=sys.stderr)


def _handle_sigterm() -> None:
    global _installer_pid
    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal works only there; the attachments still go at exit
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        _installer_pid = os.getpid()
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: object) -> None:
    if os.getpid() != _installer_pid:  # a child forked without os.fork (no at-fork hook ran)
        _die_of(signum)
    with _lock:
        still_open = any(_is_open(ref) for ref in _registered)
    if still_open:
        raise SystemExit(128 + signum)
    _die_of(signum)  # nothing left to remove: as without this handler


def _die_of(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    _registered.clear()
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_after_fork_in_child)
