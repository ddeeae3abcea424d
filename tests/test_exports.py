"""The packages' name tables: generated from the submodules, fresh, and lazy."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from openat import exports


def test_tables_are_fresh():
    assert exports.main(["--check"]) == 0


@pytest.mark.parametrize("package", sorted(exports.PACKAGES))
def test_every_name_is_its_submodules_own(package):
    namespace = importlib.import_module(package)
    for name, module in exports.table_for(package).items():
        assert getattr(namespace, name) is getattr(importlib.import_module(f"{package}.{module}"), name)
    assert sorted(namespace.__all__) == sorted(exports.table_for(package))


def test_a_stale_table_is_found(tmp_path, monkeypatch):
    fake = tmp_path / "openat" / "syscalls"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"{exports.BEGIN}\n_EXPORTS = {{}}\n{exports.END}\n")
    (fake / "maps.py").write_text('__all__ = ["MapFd"]\n')
    monkeypatch.setattr(exports, "ROOT", str(tmp_path / "openat"))
    monkeypatch.setattr(exports, "PACKAGES", {"openat.syscalls": ()})
    assert exports.main(["--check"]) == 1
    assert exports.main([]) == 0
    assert "'MapFd': 'maps'" in (fake / "__init__.py").read_text()
    assert exports.main(["--check"]) == 0


def test_a_name_exported_twice_is_an_error(tmp_path, monkeypatch):
    fake = tmp_path / "openat" / "link"
    fake.mkdir(parents=True)
    (fake / "kprobe.py").write_text('__all__ = ["attach"]\n')
    (fake / "tracepoint.py").write_text('__all__ = ["attach"]\n')
    monkeypatch.setattr(exports, "ROOT", str(tmp_path / "openat"))
    monkeypatch.setattr(exports, "PACKAGES", {"openat.link": ()})
    with pytest.raises(ValueError, match="'attach' is exported by both kprobe and tracepoint"):
        exports.table_for("openat.link")


def test_a_package_imports_a_submodule_only_when_one_of_its_names_is_used():
    code = (
        "import sys, openat.syscalls as s, openat.asm as a\n"
        "print(sorted(m for m in sys.modules if m.startswith(('openat.syscalls.', 'openat.asm.'))))\n"
        "s.MapFd; a.Program\n"
        "print('openat.syscalls.maps' in sys.modules, 'openat.asm.text' in sys.modules)\n"
    )
    first, second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert first == "[]"
    assert second == "True False"
