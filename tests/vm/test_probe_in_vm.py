"""The tracer's own probe in the machine: the same record bytes as in the kernel, for the same open.

The kernel side is the real tracer (openat.tracer.attach.Tracer) attached at sys_exit by
raw_tp or tp_btf, filtered to this process, while this test opens a file with the openat
syscall itself (not through libc, so the exact dfd, name and flags are known). The machine
then runs the very program the tracer loaded, on inputs made the same as the kernel's:

* ctx: (the user's pt_regs, the result): a pt_regs region with the three arguments and the
  syscall number at the offsets the probe was built with, and the fd the syscall returned;
* the name, in a user-space region (only probe_read_user_str reaches it, as in the kernel);
* pid, tid, uid, gid and comm of this thread, as CurrentTask, and, when the probe reads
  them from the task (kernel BTF), a task_struct and cred region holding them at the BTF
  offsets;
* the time: the one input nobody can choose is when the kernel ran the probe, so the
  machine's clock returns the kernel record's timestamp;
* the maps, as the tracer made them: ring buffer, per-CPU scratch, lost, inflight.

The machine must then send exactly the kernel's record, byte for byte.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
import time

import pytest

from openat.arch import arch
from openat.syscalls.libc import syscall
from openat.tracer.attach import Tracer
from openat.tracer.probe import (
    CGROUP_MAP, EVENTS_MAP, INFLIGHT_ENTRIES, INFLIGHT_MAP, LOST_MAP, SCRATCH_MAP, Filters, ProbeOptions,
    scratch_value_size,
)
from openat.tracer._layout import INFLIGHT_SIZE
from openat.tracer.records import decode_event, field_offset
from openat.uapi import AT_FDCWD
from openat.vm import ArrayMap, CurrentTask, HashMap, Machine, PerCpuArrayMap, RingBufMap
from tests.support import ATTACH_FEATURES, need_root, skip_unless

O_RDONLY, O_CLOEXEC = os.O_RDONLY, os.O_CLOEXEC
OPENAT = arch().syscalls["openat"]
TIMEOUT_S = 30  # a bound for loaded machines, not a timing check


def _thread_comm() -> bytes:
    with open(f"/proc/self/task/{threading.get_native_id()}/comm", "rb") as handle:
        return handle.read().rstrip(b"\n")


def _open_and_capture(tracer: Tracer, path: bytes, flags: int) -> tuple[int, bytes]:
    """Open ``path`` with the openat syscall; the fd and the record the kernel's probe sent for it."""
    name = ctypes.create_string_buffer(path)
    fd, error = syscall(OPENAT, AT_FDCWD, name, flags, 0)
    assert fd >= 0, os.strerror(error)
    os.close(fd)
    records = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        tracer.poll_records(lambda view: records.append(bytes(view)), timeout_ms=50)
        ours = [r for r in records if decode_event(r).filename == path]
        if ours:
            return fd, ours[0]
    raise AssertionError(f"the kernel's probe sent no record for {path!r}")


def _regs(layout, name_address: int, flags: int) -> bytes:
    """A pt_regs holding openat(AT_FDCWD, name, flags) at the offsets the probe reads."""
    dfd_at, name_at, flags_at = layout.exit_arg_offsets
    wanted = {dfd_at: AT_FDCWD & (1 << 64) - 1, name_at: name_address, flags_at: flags, layout.syscall_nr_offset: OPENAT}
    regs = bytearray(max(wanted) + 8)
    for offset, value in wanted.items():
        struct.pack_into("<Q", regs, offset, value)
    return bytes(regs)


def _task(machine: Machine, layout, current: CurrentTask) -> int:
    """A task_struct region with this thread's identity at the BTF offsets; the task's address."""
    task = layout.task
    blob = bytearray(max(task.pid + 4, task.tgid + 4, task.comm + 16))
    struct.pack_into("<I", blob, task.pid, current.tid)
    struct.pack_into("<I", blob, task.tgid, current.pid)
    blob[task.comm : task.comm + 16] = current.comm.ljust(16, b"\0")
    return machine.memory.add("task_struct", blob, writable=False).base


def _run_in_vm(tracer: Tracer, path: bytes, flags: int, fd: int, timestamp: int) -> list[bytes]:
    probe = tracer.programs[0].program
    sent: list[bytes] = []
    maps = {
        EVENTS_MAP: RingBufMap(tracer.ring_size, name=EVENTS_MAP, on_record=sent.append),
        SCRATCH_MAP: PerCpuArrayMap(scratch_value_size(tracer.options), 1, name=SCRATCH_MAP),
        LOST_MAP: ArrayMap(8, 1, name=LOST_MAP),
        INFLIGHT_MAP: HashMap(8, INFLIGHT_SIZE, INFLIGHT_ENTRIES, name=INFLIGHT_MAP),
    }
    assert CGROUP_MAP not in probe.map_names
    current = CurrentTask(pid=os.getpid(), tid=threading.get_native_id(), uid=os.getuid(), gid=os.getgid(),
                          comm=_thread_comm())
    machine = Machine(probe, maps={name: maps[name] for name in probe.map_names}, clock=lambda: timestamp)
    if tracer.layout.task is not None:
        current = current._replace(task_struct=_task(machine, tracer.layout, current))
    machine.current = current
    name = machine.memory.add("user name", path + b"\0", user=True, writable=False)
    regs = machine.memory.add("pt_regs", _regs(tracer.layout, name.base, flags), writable=False)
    assert machine.run(ctx=struct.pack("<QQ", regs.base, fd)) == 0
    return sent


@pytest.mark.parametrize("mode", ["raw_tp", "tp_btf"])
def test_the_probe_sends_the_kernels_record(mode, tmp_path):
    need_root()
    skip_unless(ATTACH_FEATURES[mode](), mode)
    path = os.fsencode(tmp_path / "vm-probe-target")
    path_file = open(path, "wb")
    path_file.close()
    options = ProbeOptions(filters=Filters(pids=(os.getpid(),)))
    with Tracer(attach=mode, options=options) as tracer:
        tracer.start()
        fd, kernel_record = _open_and_capture(tracer, path, O_RDONLY | O_CLOEXEC)
    timestamp = struct.unpack_from("<Q", kernel_record, field_offset("timestamp_ns"))[0]
    vm_records = _run_in_vm(tracer, path, O_RDONLY | O_CLOEXEC, fd, timestamp)
    assert vm_records == [kernel_record]
    assert decode_event(vm_records[0]).filename == path
