"""The guest kernel has what the tracer's kprobe and fentry paths need.

These talk to the kernel directly (ctypes, no openat code) so that they prove
the environment, not the project: kprobe PMU, legacy kprobe_events through
tracefs, kretprobes, BPF kprobe programs, BTF, fentry and the ring buffer.
They are skipped on a host kernel without kprobes (see conftest.py) and run for
real with ``scripts/guest test``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from pathlib import Path

import pytest

pytestmark = pytest.mark.guest

TARGET = "do_sys_openat2"
KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")
BTF_VMLINUX = Path("/sys/kernel/btf/vmlinux")

# Syscall numbers per machine (arm64 numbers its own way), and uapi constants.
SYS_PERF_EVENT_OPEN, SYS_BPF = {"x86_64": (298, 321), "aarch64": (241, 280)}[os.uname().machine]
BPF_MAP_CREATE = 0
BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_MAP_TYPE_RINGBUF = 27
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408
BTF_KIND_FUNC = 12

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(nr: int, *args) -> int:
    ret = _libc.syscall(nr, *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syscall {nr}: {os.strerror(err)}")
    return ret


# --- tracefs and kallsyms ----------------------------------------------------


def tracefs() -> Path:
    for candidate in (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing")):
        if (candidate / "kprobe_events").exists():
            return candidate
    pytest.fail("tracefs with kprobe_events is mounted neither at /sys/kernel/tracing "
                "nor at /sys/kernel/debug/tracing")


def write_kprobe_events(root: Path, line: str) -> None:
    # O_APPEND without the seek that open(..., "a") does (tracefs refuses it)
    fd = os.open(root / "kprobe_events", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def kallsyms_address(name: str) -> int | None:
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == name:
                return int(parts[0], 16)
    return None


# --- perf kprobe PMU ------------------------------------------------------------


def kprobe_pmu_type() -> int:
    return int((KPROBE_PMU / "type").read_text())


def retprobe_config_bit() -> int:
    fmt = (KPROBE_PMU / "format" / "retprobe").read_text().strip()  # "config:0"
    assert fmt.startswith("config:"), fmt
    return 1 << int(fmt.split(":")[1])


def perf_open_kprobe(func: str, *, retprobe: bool = False, pid: int = 0, cpu: int = -1) -> int:
    """A perf event on the kprobe PMU (no tracefs involved); returns its fd."""
    name = ctypes.create_string_buffer(func.encode())
    attr = bytearray(112)  # PERF_ATTR_SIZE_VER5
    config = retprobe_config_bit() if retprobe else 0
    struct.pack_into("<IIQ", attr, 0, kprobe_pmu_type(), len(attr), config)
    struct.pack_into("<Q", attr, 16, 1)  # sample_period
    struct.pack_into("<QQ", attr, 56, ctypes.addressof(name), 0)  # kprobe_func, probe_offset
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    return _syscall(SYS_PERF_EVENT_OPEN, buf, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)


def perf_count(fd: int) -> int:
    return struct.unpack("<Q", os.read(fd, 8))[0]


def open_some_files(tmp_path: Path, n: int = 3) -> None:
    for i in range(n):
        p = tmp_path / f"openat-guest-{os.getpid()}-{i}"
        p.write_text("x")
        with open(p):
            pass


# --- bpf(2) ---------------------------------------------------------------------

# r0 = 0; exit
RETURN_ZERO = struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)


def bpf(cmd: int, attr: bytearray) -> int:
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    return _syscall(SYS_BPF, cmd, buf, len(attr))


def prog_load(prog_type: int, *, expected_attach_type: int = 0, attach_btf_id: int = 0,
              name: str = "openat_guest") -> int:
    insns = ctypes.create_string_buffer(RETURN_ZERO, len(RETURN_ZERO))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = bytearray(128)
    struct.pack_into("<IIQQIIQ", attr, 0, prog_type, len(RETURN_ZERO) // 8,
                     ctypes.addressof(insns), ctypes.addressof(license_),
                     1, len(log), ctypes.addressof(log))
    attr[48:48 + len(name)] = name.encode()
    struct.pack_into("<I", attr, 68, expected_attach_type)
    struct.pack_into("<I", attr, 108, attach_btf_id)
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        raise OSError(e.errno, f"BPF_PROG_LOAD: {e.strerror}\n{log.value.decode(errors='replace')}")


def btf_func_id(name: str) -> int:
    """Type id of FUNC ``name`` in the kernel's own BTF (/sys/kernel/btf/vmlinux)."""
    data = BTF_VMLINUX.read_bytes()
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", data, 0)
    assert magic == 0xEB9F, hex(magic)
    strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
    wanted = strings.find(b"\0" + name.encode() + b"\0")
    assert wanted >= 0, f"{name} is not in the BTF string section"
    wanted += 1
    # bytes after the 12-byte common header, by kind (vlen-scaled where noted)
    fixed = {1: 4, 3: 12, 14: 4, 17: 4}
    per_member = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}
    off, end, type_id = hdr_len + type_off, hdr_len + type_off + type_len, 0
    while off < end:
        name_off, info, _ = struct.unpack_from("<III", data, off)
        type_id += 1
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind == BTF_KIND_FUNC and name_off == wanted:
            return type_id
        off += 12 + fixed.get(kind, 0) + per_member.get(kind, 0) * vlen
    raise LookupError(f"no BTF FUNC named {name}")


# --- the tests ------------------------------------------------------------------


def test_kprobe_pmu_type_exists():
    assert (KPROBE_PMU / "type").exists(), "kernel has no kprobe PMU (CONFIG_KPROBES off?)"
    assert kprobe_pmu_type() > 0


def test_do_sys_openat2_in_kallsyms():
    addr = kallsyms_address(TARGET)
    assert addr is not None, f"{TARGET} not in /proc/kallsyms"
    assert addr != 0, "kallsyms addresses are hidden (kptr_restrict): not running as root?"


def test_tracefs_reachable():
    root = tracefs()
    assert (root / "kprobe_events").exists()
    assert (root / "events").is_dir()
    # the function is probe-able, not only present
    assert TARGET in (root / "available_filter_functions").read_text().split()


def test_kprobe_events_add_and_remove():
    root = tracefs()
    group, event = "openat_guest", f"open_{os.getpid()}"
    add = f"p:{group}/{event} {TARGET}\n"
    remove = f"-:{group}/{event}\n"

    def listed() -> bool:
        return f"{group}/{event} " in (root / "kprobe_events").read_text()

    write_kprobe_events(root, add)
    try:
        assert listed(), (root / "kprobe_events").read_text()
        assert (root / "events" / group / event / "id").exists()
    finally:
        write_kprobe_events(root, remove)
    assert not listed(), "our kprobe is still in kprobe_events after removal"
    assert not (root / "events" / group / event).exists()


def test_kprobe_pmu_fires_on_open(tmp_path):
    fd = perf_open_kprobe(TARGET)
    try:
        before = perf_count(fd)
        open_some_files(tmp_path, 3)
        assert perf_count(fd) - before >= 3
    finally:
        os.close(fd)


def test_kretprobe_pmu_fires_on_open(tmp_path):
    fd = perf_open_kprobe(TARGET, retprobe=True)
    try:
        before = perf_count(fd)
        open_some_files(tmp_path, 3)
        assert perf_count(fd) - before >= 3
    finally:
        os.close(fd)


def test_bpf_kprobe_program_attaches_to_kprobe_pmu():
    prog = prog_load(BPF_PROG_TYPE_KPROBE)
    try:
        ev = perf_open_kprobe(TARGET, pid=-1, cpu=0)
        try:
            fcntl.ioctl(ev, PERF_EVENT_IOC_SET_BPF, prog)
            fcntl.ioctl(ev, PERF_EVENT_IOC_ENABLE, 0)
        finally:
            os.close(ev)
    finally:
        os.close(prog)


def test_kernel_modules_reachable():
    release = os.uname().release
    assert Path(f"/lib/modules/{release}/modules.dep").exists(), (
        f"/lib/modules/{release} does not lead to the kernel's modules: modprobe cannot work")


def test_btf_vmlinux_has_target():
    assert BTF_VMLINUX.exists(), "no kernel BTF (CONFIG_DEBUG_INFO_BTF off?)"
    assert btf_func_id(TARGET) > 0


@pytest.mark.parametrize("attach_type", [BPF_TRACE_FENTRY, BPF_TRACE_FEXIT], ids=["fentry", "fexit"])
def test_fentry_fexit_attach(attach_type):
    prog = prog_load(BPF_PROG_TYPE_TRACING, expected_attach_type=attach_type,
                     attach_btf_id=btf_func_id(TARGET))
    try:
        attr = bytearray(16)
        struct.pack_into("<QI", attr, 0, 0, prog)  # name = NULL, prog_fd
        link = bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
        os.close(link)
    finally:
        os.close(prog)


@pytest.fixture
def memlock_unlimited():
    """Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK (64 KiB in the 5.10 guest): lift it, as root may."""
    import resource

    saved = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    yield
    resource.setrlimit(resource.RLIMIT_MEMLOCK, saved)


def test_ringbuf_map_create(memlock_unlimited):
    attr = bytearray(72)
    struct.pack_into("<IIII", attr, 0, BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 16)
    try:
        fd = bpf(BPF_MAP_CREATE, attr)
    except OSError as e:
        if e.errno == errno.EINVAL:
            pytest.fail("BPF_MAP_TYPE_RINGBUF rejected: kernel older than 5.8?")
        raise
    os.close(fd)
