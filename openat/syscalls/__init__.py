"""ctypes bindings for bpf(), perf_event_open(), ring buffers, BTF, tracefs and kallsyms.

Nothing here imports the tracer or the assembler: programs come in as bytes
plus an optional list of per-slot source locations. See docs/syscalls.md.
"""

from .bpf import (
    LinkFd,
    LinkInfo,
    MapFd,
    MapInfo,
    ProgInfo,
    ProgramFd,
    StatsFd,
    TestRunResult,
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
