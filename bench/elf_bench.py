"""Benchmark for openat.elf: parse + CO-RE against vmlinux BTF + load of an object with ~100 CO-RE relocations,
beside ``bpftool prog loadall`` (libbpf) of the same object in the same run.

Run as root (``python bench/elf_bench.py [--runs N] [--relocations N] [--json]``), or call :func:`run` for a
dict of figures. The object is generated and compiled here with clang-19 (a test aid): one tp_btf program
reading ~100 fields of the current task and the structs it points to (BTF-typed loads, each one CO-RE
relocation), against vmlinux.h of this kernel. Figures (medians of ``--runs``):

- ``openat_process_ms``: a fresh ``python -c`` that imports openat, reads the object, resolves CO-RE
  against /sys/kernel/btf/vmlinux and loads everything: what ``bpftool prog loadall`` does (bytecode
  compiled first and the environment cleaned, as bench/startup.py does);
- ``bpftool_ms``: ``bpftool prog loadall OBJ DIR`` (process start, libbpf open, CO-RE, load, pin);
- ``ratio``: the first over the second;
- in this process, imports warm: ``parse_ms`` (load_spec), ``core_ms`` (resolve_core with a fresh,
  unindexed vmlinux Btf), ``load_ms`` (spec.load() with the kernel BTF already read).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tracers import clean_env  # noqa: E402
from openat.btf import Btf, BtfKind  # noqa: E402
from openat.elf import load_spec  # noqa: E402

VMLINUX = "/sys/kernel/btf/vmlinux"
BPF_FS = "/sys/fs/bpf"
# Structs reached from the current task with BTF-typed loads (each load one CO-RE relocation): name -> C expression.
STRUCTS = {"task_struct": "t", "mm_struct": "t->mm", "files_struct": "t->files", "signal_struct": "t->signal",
           "fs_struct": "t->fs", "nsproxy": "t->nsproxy"}
_SCALAR = (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64)  # pointers cannot be summed


def _fields(btf: Btf, count: int) -> List[tuple]:
    """(struct, member) pairs: named, non-bitfield, scalar members of common kernel structs, ``count`` of them."""
    chosen = []
    for name in STRUCTS:
        try:
            struct_type = btf.type(btf.find(name, BtfKind.STRUCT))
        except KeyError:
            continue
        for member in struct_type.members:
            if member.name and not member.bitfield_size and btf.type(btf.resolve(member.type_id)).kind in _SCALAR:
                chosen.append((name, member.name))
                if len(chosen) == count:
                    return chosen
    return chosen


def write_source(directory: Path, count: int) -> Path:
    """A C source of one tp_btf program with ``count`` CO-RE field loads (BTF-typed pointers: plain loads)."""
    fields = _fields(Btf.load(VMLINUX), count)
    lines = [
        '#include "vmlinux.h"', "#include <bpf/bpf_helpers.h>", "#include <bpf/bpf_tracing.h>",
        'char LICENSE[] SEC("license") = "GPL";', "u64 sink;", 'SEC("tp_btf/sys_enter")', "int many_core_reads(u64 *ctx)", "{",
        "\tstruct task_struct *t = bpf_get_current_task_btf();", "\tu64 sum = 0;",
    ]
    lines += [f"\tsum += (u64){STRUCTS[name]}->{member};" for name, member in fields]
    lines += ["\tsink = sum;", "\treturn 0;", "}"]
    source = directory / "core_many.bpf.c"
    source.write_text("\n".join(lines) + "\n")
    return source


def build(directory: Path, count: int) -> Path:
    with open(directory / "vmlinux.h", "wb") as out:
        subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX, "format", "c"], stdout=out, check=True)
    obj = directory / "core_many.bpf.o"
    subprocess.run(["clang-19", "-target", "bpf", "-O2", "-g", "-D__TARGET_ARCH_x86", "-I", str(directory), "-c",
                    str(write_source(directory, count)), "-o", str(obj)], check=True)
    return obj


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _openat_process(obj: Path) -> float:
    """A user's launch: the real interpreter, openat's bytecode cached, no distorting switches (bench.tracers)."""
    code = f"from openat import elf\nwith elf.load_spec({str(obj)!r}).load(): pass\n"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(clean_env(), PYTHONPATH=str(ROOT)))
    return _ms(start)


def _bpftool(obj: Path) -> float:
    directory = os.path.join(BPF_FS, f"openat-bench-{os.getpid()}")
    start = time.perf_counter()
    subprocess.run(["bpftool", "prog", "loadall", str(obj), directory], check=True)
    elapsed = _ms(start)
    shutil.rmtree(directory, ignore_errors=True)
    return elapsed


def _in_process(obj: Path) -> Dict[str, float]:
    start = time.perf_counter()
    spec = load_spec(obj)
    parse = _ms(start)
    start = time.perf_counter()
    results = spec.resolve_core(Btf.load(VMLINUX))
    core = _ms(start)
    start = time.perf_counter()
    with spec.load():
        pass
    return {"parse_ms": parse, "core_ms": core, "load_ms": _ms(start), "relocations": len(results)}


def run(runs: int = 5, relocations: int = 100) -> Dict[str, float]:
    """The figures as a dict (see the module docstring)."""
    with tempfile.TemporaryDirectory() as temporary:
        obj = build(Path(temporary), relocations)
        compileall.compile_dir(str(ROOT / "openat"), quiet=1)  # as pip install does: no launch recompiles openat
        _openat_process(obj), _bpftool(obj)  # warm the page cache for both
        ours = [_openat_process(obj) for _ in range(runs)]
        theirs = [_bpftool(obj) for _ in range(runs)]
        inside = [_in_process(obj) for _ in range(runs)]
    figures = {
        "openat_process_ms": statistics.median(ours),
        "bpftool_ms": statistics.median(theirs),
        "relocations": inside[0]["relocations"],
    }
    figures["ratio"] = figures["openat_process_ms"] / figures["bpftool_ms"]
    for key in ("parse_ms", "core_ms", "load_ms"):
        figures[key] = statistics.median(sample[key] for sample in inside)
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--relocations", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.runs, args.relocations)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"object: 1 program, {figures['relocations']} CO-RE relocations (median of {args.runs} runs)")
    print(f"  openat, fresh process (import, parse, CO-RE, load): {figures['openat_process_ms']:8.1f} ms")
    print(f"  bpftool prog loadall (libbpf):                      {figures['bpftool_ms']:8.1f} ms")
    print(f"  ratio openat / bpftool:                             {figures['ratio']:8.2f}")
    print(f"  in process: parse {figures['parse_ms']:.1f} ms, CO-RE {figures['core_ms']:.1f} ms, load {figures['load_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
