"""The Python sessions in docs/vm.md are real: run them as doctests."""

from __future__ import annotations

import doctest
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_vm_doc_sessions_run_as_written() -> None:
    result = doctest.testfile(str(DOCS / "vm.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 30
    assert result.failed == 0
