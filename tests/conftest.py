"""Session set-up shared by every test folder."""

from __future__ import annotations

import compileall
from pathlib import Path

import pytest

import openat


def pytest_sessionstart(session: pytest.Session) -> None:
    """Byte-compile openat once, as ``pip install`` would.

    Many tests launch ``python -m openat``; where the environment sets
    ``PYTHONDONTWRITEBYTECODE`` (CI shells do) every launch would otherwise
    compile openat's sources again: about 0.3 s each here, seconds each in an
    emulated guest. In the guest the tree is read-only and scripts/guest has
    compiled it already, so nothing is written there (quiet=2: no complaint).
    """
    compileall.compile_dir(str(Path(openat.__file__).parent), quiet=2, workers=0)
