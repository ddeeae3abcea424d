"""openat.vm is a pure layer: it imports only openat.asm, openat.uapi, openat.arch, openat.fieldtuple and the
standard library (no syscalls, no ctypes), so it runs on any OS without root."""

from __future__ import annotations

import subprocess
import sys

ALLOWED = {"openat", "openat.uapi", "openat.arch", "openat.exports", "openat.fieldtuple"}
ALLOWED_PACKAGES = ("openat.asm.", "openat.vm.")


def test_the_machine_its_cli_and_plugin_import_nothing_below_them():
    code = (
        "import sys\n"
        "import openat.vm.machine, openat.vm.cli, openat.vm.plugin, openat.vm.trace\n"
        "from openat.vm import Machine\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('openat'))))\n"
        "print('ctypes' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    modules, ctypes_loaded = done.stdout.splitlines()
    outside = [name for name in modules.split()
               if name not in ALLOWED and name not in ("openat.asm", "openat.vm") and not name.startswith(ALLOWED_PACKAGES)]
    assert outside == [] and ctypes_loaded == "False", done.stdout
