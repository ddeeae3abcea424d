"""Small BPF programs the syscalls tests load, written with openat.asm."""

from __future__ import annotations

import os
import platform
import struct

from openat.asm import R0, R1, R2, R3, R4, R5, R6, R7, R8, R10, Program

# (getpid, getppid) syscall numbers: the tests trigger these on purpose.
_NR = {"x86_64": (39, 110), "aarch64": (172, 173), "arm64": (172, 173)}
NR_GETPID, NR_GETPPID = _NR[platform.machine()]


def only_process(p: Program, tgid: int | None = None) -> None:
    """Leave (to "out") unless the current task is in process ``tgid`` (default: this one); R0 keeps the tgid."""
    p.call("get_current_pid_tgid")
    p.rsh(R0, 32)
    p.jne(R0, tgid if tgid is not None else os.getpid(), "out")


def counter_slot(p: Program) -> None:
    """R0 = &counter[0] of array map 'counter', or leave (to "out")."""
    p.stw(R10, -4, 0)
    p.mov(R2, R10)
    p.add(R2, -4)
    p.ld_map_fd(R1, "counter")
    p.call("map_lookup_elem")
    p.jeq(R0, 0, "out")


def return_imm(value: int) -> Program:
    """r0 = value; exit"""
    p = Program()
    p.mov(R0, value)
    p.exit()
    return p


def count_own_calls(tgid: int | None = None) -> Program:
    """Any tracing context: counts hits from process ``tgid`` in array map 'counter'[0]."""
    p = Program()
    only_process(p, tgid)
    counter_slot(p)
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
    only_process(p, tgid)
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
    only_process(p, tgid)
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


# 44 payload bytes, 56 a record: 56 * k mod 4096 takes every multiple of 8, so
# over 512 records every way a record can straddle the end of a 4096-byte ring
# comes round (header at the end and payload at the start; payload split
# after 8, 16, 24, 32 or 40 bytes). Every byte is a hash of (sequence, word): a byte taken
# from the wrong place cannot match by accident.
SEQUENCE_PAYLOAD = 44
SEQUENCE_WORDS = 6  # five u64 and a trailing u32
SEQUENCE_HASH = 0x9E3779B97F4A7C15


def sequence_words(seq: int) -> list[int]:
    return [((seq * 8 + word + 1) * SEQUENCE_HASH) & 0xFFFFFFFFFFFFFFFF for word in range(SEQUENCE_WORDS)]


def sequence_record(seq: int) -> bytes:
    words = sequence_words(seq)
    return struct.pack("=5QI", *words[:5], words[5] & 0xFFFFFFFF)


def sys_enter_sequence_to_ringbuf() -> Program:
    """raw_tp sys_enter: each getppid of this process submits the record
    ``sequence_record(counter[0]++)`` to ringbuf map 'events'."""
    p = Program()
    p.mov(R6, R1)
    only_process(p)
    p.ldxdw(R7, R6, 8)
    p.jne(R7, NR_GETPPID, "out")
    counter_slot(p)
    p.ldxdw(R7, R0, 0)  # only this thread's getppid gets here: no atomics needed
    p.mov(R1, R7)
    p.add(R1, 1)
    p.stxdw(R0, 0, R1)
    p.ld_map_fd(R1, "events")
    p.mov(R2, SEQUENCE_PAYLOAD)
    p.mov(R3, 0)
    p.call("ringbuf_reserve")
    p.jeq(R0, 0, "out")
    p.lsh(R7, 3)
    p.lddw(R8, SEQUENCE_HASH)
    for word in range(SEQUENCE_WORDS):
        p.mov(R1, R7)
        p.add(R1, word + 1)
        p.mul(R1, R8)
        if word < 5:
            p.stxdw(R0, 8 * word, R1)
        else:
            p.stxw(R0, 8 * word, R1)
    p.mov(R1, R0)
    p.mov(R2, 0)
    p.call("ringbuf_submit")
    p.label("out")
    p.mov(R0, 0)
    p.exit()
    return p


# Perf buffer samples: (u64 sequence, u64 sequence ^ PERF_PATTERN), 16 bytes.
PERF_PATTERN = 0x5A5A_1234_A5A5_4321
PERF_SAMPLE = struct.Struct("=QQ")
XDP_PASS = 2


def perf_output_sequence(on_sys_enter: bool, size: int = PERF_SAMPLE.size, tgids: tuple[int, ...] = ()) -> Program:
    """Each run sends a ``size``-byte sample starting ``(seq, seq ^ PERF_PATTERN)``, zeros after,
    to perf_event_array 'events'.

    Array map 'counter' (one 24-byte value): [0] the next sequence number,
    [8] how many outputs failed, [16] the last failure's error code. With
    ``on_sys_enter`` a raw_tp sys_enter program that fires for the getppid
    of this process and of ``tgids`` only; else an XDP program for
    BPF_PROG_TEST_RUN.
    """
    if size % 8 or not PERF_SAMPLE.size <= size <= 256:
        raise ValueError(f"sample size {size} is not a multiple of 8 in 16..256")
    p = Program()
    p.mov(R6, R1)
    if on_sys_enter:
        p.call("get_current_pid_tgid")
        p.rsh(R0, 32)
        for tgid in tgids:
            p.jeq(R0, tgid, "ours")
        p.jne(R0, os.getpid(), "out")
        p.label("ours")
        p.ldxdw(R7, R6, 8)
        p.jne(R7, NR_GETPPID, "out")
    counter_slot(p)
    p.mov(R8, R0)
    p.mov(R7, 1)
    p.atomic_fetch_add(R8, 0, R7)
    for offset in range(16, size, 8):
        p.stdw(R10, offset - size, 0)
    p.stxdw(R10, -size, R7)
    p.lddw(R1, PERF_PATTERN)
    p.xor(R1, R7)
    p.stxdw(R10, 8 - size, R1)
    p.mov(R1, R6)
    p.ld_map_fd(R2, "events")
    p.lddw(R3, 0xFFFFFFFF)  # BPF_F_CURRENT_CPU
    p.mov(R4, R10)
    p.add(R4, -size)
    p.mov(R5, size)
    p.call("perf_event_output")
    p.jeq(R0, 0, "out")
    p.mov(R1, 1)
    p.atomic_add(R8, 8, R1)
    p.stxdw(R8, 16, R0)
    p.label("out")
    p.mov(R0, 0 if on_sys_enter else XDP_PASS)
    p.exit()
    return p
