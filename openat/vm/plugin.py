"""``python -m openat.vm.plugin``: the machine as a plugin of the bpf_conformance runner.

The runner (github.com/Alan-Jowett/bpf_conformance) starts the plugin once per test as
``PLUGIN [MEMORY] [--elf]`` and writes the program to its stdin: base16 text, the bytes
separated by spaces (raw instruction bytes are accepted too). MEMORY, when the test has
memory, is base16 as well; the program gets it with r1 pointing to it and its length in r2.
The plugin prints r0 in hex on stdout and exits 0, or prints one line on stderr and exits 1.
``--elf`` (the program is an ELF object) needs :mod:`openat.elf`.

Use it with the runner as ``--plugin_path`` pointing to an executable script that runs
``exec python -m openat.vm.plugin "$@"``.
"""

from __future__ import annotations

import re
import sys
from typing import List, Optional, Sequence

from .errors import VmError
from .machine import Machine

__all__ = ["main", "parse_base16"]

_BASE16 = re.compile(rb"[\s0-9a-fA-F]*\Z")


def parse_base16(text: bytes) -> Optional[bytes]:
    """Bytes from base16 text such as ``b7 00 00 00``, or None when ``text`` is not base16."""
    if not _BASE16.match(text):
        return None
    digits = re.sub(rb"\s", b"", text)
    if len(digits) % 2:
        return None
    return bytes.fromhex(digits.decode())


def _program(stdin: bytes, elf: bool) -> bytes:
    if elf:
        raise VmError("--elf needs openat.elf (ELF object support), which this openat does not have")
    code = parse_base16(stdin)
    return stdin if code is None else code


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the plugin; returns the exit status."""
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    elf = "--elf" in args
    words = [arg for arg in args if arg != "--elf"]
    unknown = [arg for arg in words if arg.startswith("-")]
    try:
        if unknown:
            raise VmError(f"unknown option {unknown[0]!r} (this plugin takes MEMORY and --elf)")
        memory = parse_base16(" ".join(words).encode()) if words else None
        if words and memory is None:
            raise VmError("the memory argument is not base16 (hex bytes such as '00 01 ff')")
        result = Machine(_program(sys.stdin.buffer.read(), elf)).run(mem=memory)
    except VmError as error:
        print(f"openat.vm: {error}", file=sys.stderr)
        return 1
    print(f"{result:x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
