"""ctypes bindings for bpf(), perf_event_open(), ring buffers, BTF, tracefs and kallsyms.

Nothing here imports the tracer or the assembler: programs come in as bytes
plus an optional list of per-slot source locations. See docs/syscalls.md.
"""

from .bpf import (
    LinkFd,
    MapFd,
    ProgramFd,
    StatsFd,
    create_map,
    enable_stats,
    link_create,
    link_get_fd_by_id,
    link_get_next_id,
    link_ids,
    link_info,
    load_program,
    map_create,
    map_delete_elem,
    map_get_fd_by_id,
    map_get_next_id,
    map_get_next_key,
    map_ids,
    map_info,
    map_lookup_elem,
    map_update_elem,
    possible_cpus,
    prog_get_fd_by_id,
    prog_get_next_id,
    prog_ids,
    prog_info,
    prog_load,
    prog_test_run,
    raw_tracepoint_open,
    sanitize_name,
    test_run,
)
from .constants import (
    BPF_ANY,
    BPF_EXIST,
    BPF_NOEXIST,
    PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE,
    PERF_EVENT_IOC_SET_BPF,
    AttachType,
    Cmd,
    LinkType,
    MapType,
    ProgType,
)
from .errors import (
    BpfError,
    NotSupportedError,
    PermissionDeniedError,
    VerifierError,
    annotate_verifier_log,
    lockdown_mode,
)
from .fd import OwnedFd
from .perf import (
    KprobeEvent,
    PerfEventFd,
    kprobe_events_available,
    kprobe_pmu_type,
    perf_event_open,
    perf_event_open_kprobe,
    perf_event_open_kprobe_legacy,
    perf_event_open_tracepoint,
    perf_ioc_disable,
    perf_ioc_enable,
    perf_ioc_set_bpf,
)
from .ringbuf import RecordWalker, RingBuffer, RingBufferCorrupt
from .tracefs import ensure_tracefs, find_tracefs, mount_tracefs, tracepoint_exists, tracepoint_id

# The BTF reader and the feature probes are not needed by every user; load them on first
# use so plain bpf() users do not pay for it. kallsyms is only for kprobes,
# which the tracer tries after checking the kernel has them at all.
_LAZY = {
    "LinkInfo": "bpf",  # dataclasses, defined on first use (see bpf.py)
    "MapInfo": "bpf",
    "ProgInfo": "bpf",
    "TestRunResult": "bpf",
    "KernelSymbol": "kallsyms",
    "find_symbol": "kallsyms",
    "open_syscall_function": "kallsyms",
    "Btf": "btf",
    "BtfError": "btf",
    "BtfKind": "btf",
    "vmlinux_btf": "btf",
    "load_vmlinux_btf": "btf",
    "pt_regs_offsets": "btf",
    "function_arg_offsets": "btf",
    "syscall_arg_offsets": "btf",
    "Probe": "probes",
    "feature_report": "probes",
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY.values():  # ``openat.syscalls.kallsyms`` without importing it first, as before
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
