"""Ownership of kernel file descriptors."""

from __future__ import annotations

import os
from typing import Protocol, Union

__all__ = ["FdLike", "OwnedFd", "fd_of"]


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


FdLike = Union[int, _HasFileno]


def fd_of(obj: FdLike) -> int:
    """The integer fd of an int or of anything with ``fileno()``."""
    if isinstance(obj, int):
        return obj
    return obj.fileno()


class OwnedFd:
    """A file descriptor this object owns and closes exactly once.

    Context manager; ``close()`` is idempotent; a forgotten object closes its
    fd when garbage-collected so a long-running tracer cannot leak. Use
    ``detach()`` to hand the raw fd to someone else.
    """

    __slots__ = ("_fd", "__weakref__")

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        """The raw fd; raises ValueError once closed."""
        if self._fd < 0:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close the fd (again: no-op)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def detach(self) -> int:
        """Give up ownership and return the raw fd (caller must close it)."""
        fd = self.fileno()
        self._fd = -1
        return fd

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown or fd already gone: nothing useful to do
            pass

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<{type(self).__name__} {state}>"
