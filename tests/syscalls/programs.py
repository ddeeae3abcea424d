"""Small BPF programs the syscalls tests load, written with openat.asm."""

from __future__ import annotations

import os
import platform

from openat.asm import R0, R1, R2, R3, R4, R6, R7, R8, R10, Program

# (getpid, getppid) syscall numbers: the tests trigger these on purpose.
_NR = {"x86_64": (39, 110), "aarch64": (172, 173), "arm64": (172, 173)}
NR_GETPID, NR_GETPPID = _NR[platform.machine()]


def return_imm(value: int) -> Program:
    """r0 = value; exit"""
    p = Program()
    p.mov(R0, value)
    p.exit()
    return p


def count_own_calls(tgid: int | None = None) -> Program:
    """Any tracing context: counts hits from process ``tgid`` in array map 'counter'[0]."""
    p = Program()
    p.call("get_current_pid_tgid")
    p.rsh(R0, 32)
    p.jne(R0, tgid if tgid is not None else os.getpid(), "out")
    p.stw(R10, -4, 0)
    p.mov(R2, R10)
    p.add(R2, -4)
    p.ld_map_fd(R1, "counter")
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "out")
    p.mov(R1, 1)
    p.atomic_add(R0, 0, R1)
    p.label("out")
    p.mov(R0, 0)
    p.exit()
    return p


def sys_enter_to_ringbuf(tgid: int | None = None, discard_nr: int = NR_GETPID, submit_nr: int = NR_GETPPID) -> Program:
    """raw_tp/tp_btf sys_enter program (ctx: u64 regs, u64 id).

    For our own process: syscall ``submit_nr`` → a 16-byte record
    ``(u64 syscall nr, u64 tgid)`` submitted to ringbuf map 'events';
    ``discard_nr`` → reserved and then discarded (the consumer must skip it).
    """
    p = Program()
    p.mov(R6, R1)
    p.call("get_current_pid_tgid")
    p.rsh(R0, 32)
    p.jne(R0, tgid if tgid is not None else os.getpid(), "out")
    p.mov(R8, R0)
    p.ldxdw(R7, R6, 8)
    p.jeq(R7, submit_nr, "reserve")
    p.jne(R7, discard_nr, "out")
    p.label("reserve")
    p.ld_map_fd(R1, "events")
    p.mov(R2, 16)
    p.mov(R3, 0)
    p.call("ringbuf_reserve")
    p.jeq(R0, 0, "out")
    p.stxdw(R0, 0, R7)
    p.stxdw(R0, 8, R8)
    p.mov(R1, R0)
    p.mov(R2, 0)
    p.jeq(R7, discard_nr, "discard")
    p.call("ringbuf_submit")
    p.ja("out")
    p.label("discard")
    p.call("ringbuf_discard")
    p.label("out")
    p.mov(R0, 0)
    p.exit()
    return p


def uninitialised_read() -> Program:
    """r0 = r2 with r2 never written: the verifier rejects it (R2 !read_ok)."""
    p = Program()
    p.mov(R0, R2)
    p.exit()
    return p


def sys_enter_submit_with_flags(quiet_nr: int = NR_GETPID, loud_nr: int = NR_GETPPID, tgid: int | None = None) -> Program:
    """raw_tp sys_enter: our ``quiet_nr`` → an 8-byte record sent with
    BPF_RB_NO_WAKEUP; ``loud_nr`` → one sent with BPF_RB_FORCE_WAKEUP."""
    p = Program()
    p.mov(R6, R1)
    p.call("get_current_pid_tgid")
    p.rsh(R0, 32)
    p.jne(R0, tgid if tgid is not None else os.getpid(), "out")
    p.ldxdw(R7, R6, 8)
    p.mov(R8, 1)  # BPF_RB_NO_WAKEUP
    p.jeq(R7, quiet_nr, "send")
    p.jne(R7, loud_nr, "out")
    p.mov(R8, 2)  # BPF_RB_FORCE_WAKEUP
    p.label("send")
    p.stxdw(R10, -8, R7)
    p.ld_map_fd(R1, "events")
    p.mov(R2, R10)
    p.add(R2, -8)
    p.mov(R3, 8)
    p.mov(R4, R8)
    p.call("ringbuf_output")
    p.label("out")
    p.mov(R0, 0)
    p.exit()
    return p
