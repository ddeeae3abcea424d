"""openat.elf is a pure layer: reading, listing, CO-RE and the kernel BTF blob import only openat.uapi,
openat.arch, openat.fieldtuple, openat.asm, openat.btf and the standard library; openat.collection only when loading."""

from __future__ import annotations

import os
import subprocess
import sys

from .objects import fixture

ALLOWED = {"openat", "openat.uapi", "openat.arch", "openat.exports", "openat.fieldtuple", "openat.asm", "openat.btf", "openat.elf"}
ALLOWED_PACKAGES = ("openat.asm.", "openat.btf.", "openat.elf.")


def test_everything_but_load_imports_nothing_above_the_pure_layers():
    code = (
        "import sys\n"
        "from openat import elf\n"
        "from openat.elf.__main__ import render\n"
        "from openat.btf import Btf\n"
        f"render(elf.load_spec({str(fixture('core'))!r}))\n"
        f"spec = elf.load_spec({str(fixture('maps'))!r})\n"
        "spec.resolve_core(spec.btf)\n"  # against its own BTF: core.bpf.o's flavours would be ambiguous there
        "spec.kernel_btf()\n"
        "for p in spec.programs.values():\n"
        "    elf.apply_core(elf.fill_references(p.instructions, p.references, {m: 3 for m in spec.maps}, {}), p.core_relocations, {})\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('openat'))))\n"
        "print('ctypes' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    modules, ctypes_loaded = done.stdout.splitlines()
    outside = [name for name in modules.split() if name not in ALLOWED and not name.startswith(ALLOWED_PACKAGES)]
    assert outside == [] and ctypes_loaded == "False", done.stdout
