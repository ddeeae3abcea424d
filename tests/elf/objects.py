"""The BPF objects the ELF tests load: compiled in the test run from tests/elf/c with clang-19, or the committed fixtures.

Compiling needs Debian's clang-19, bpftool (to write vmlinux.h from the
running kernel's BTF) and libbpf-dev's headers (bpf_helpers.h and friends):
test aids, never run-time dependencies (.ci/run installs them). Where one
is missing, the tests that compile skip and say which, and the pure-parsing
tests use tests/elf/fixtures/*.bpf.o, built with ``python -m tests.elf.objects``
(compiled like the test run, then ``llvm-strip-19 -g``: DWARF goes, .BTF and
.BTF.ext stay).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
C_DIR = HERE / "c"
FIXTURES = HERE / "fixtures"
CLANG = "clang-19"
STRIP = "llvm-strip-19"
LIBBPF_HEADER = Path("/usr/include/bpf/bpf_helpers.h")
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
# The objects committed as fixtures (the others need compiling).
FIXTURE_NAMES = ("core", "externs", "globals", "ksyms", "maps", "odd_sections", "poison", "sections", "subprog")
TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, "x86")
IN_GUEST = os.environ.get("OPENAT_GUEST") == "1"


def toolchain_missing() -> Optional[str]:
    """Why objects cannot be compiled here, or None."""
    for tool, package in ((CLANG, "clang-19"), ("bpftool", "bpftool")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package}; .ci/run installs it)"
    if not LIBBPF_HEADER.exists():
        return f"{LIBBPF_HEADER} is missing (Debian package libbpf-dev; .ci/run installs it)"
    if not VMLINUX_BTF.exists():
        return f"{VMLINUX_BTF} is missing: no vmlinux.h can be generated"
    return None


def write_vmlinux_h(directory: Path) -> Path:
    """vmlinux.h of the running kernel, in ``directory``."""
    path = directory / "vmlinux.h"
    if not path.exists():
        with open(path, "wb") as out:
            subprocess.run(["bpftool", "btf", "dump", "file", str(VMLINUX_BTF), "format", "c"], stdout=out, check=True)
    return path


def compile_object(source: Path, directory: Path, *, extra_include: Optional[Path] = None) -> Path:
    """``clang-19 -target bpf -O2 -g`` of ``source`` into ``directory`` (vmlinux.h must be there)."""
    output = directory / (source.name[: -len(".c")] + ".o")
    command = [
        CLANG, "-target", "bpf", "-O2", "-g", f"-D__TARGET_ARCH_{TARGET_ARCH}",
        "-I", str(directory), "-I", str(C_DIR), "-c", str(source), "-o", str(output),
    ]
    if extra_include is not None:
        command[1:1] = ["-I", str(extra_include)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return output


def fixture(name: str) -> Path:
    return FIXTURES / f"{name}.bpf.o"


def build_fixtures() -> None:
    """Rebuild tests/elf/fixtures from tests/elf/c (run on a host with the toolchain)."""
    missing = toolchain_missing()
    if missing:
        raise SystemExit(f"cannot build fixtures: {missing}")
    import tempfile

    FIXTURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        write_vmlinux_h(directory)
        for name in FIXTURE_NAMES:
            built = compile_object(C_DIR / f"{name}.bpf.c", directory)
            subprocess.run([STRIP, "-g", str(built), "-o", str(fixture(name))], check=True)
            print(f"wrote {fixture(name)} ({fixture(name).stat().st_size} bytes)")


if __name__ == "__main__":
    build_fixtures()
    sys.exit(0)
