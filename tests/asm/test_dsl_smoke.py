"""The DSL contract from docs/architecture.md, exercised end to end."""

from __future__ import annotations

import pytest

from openat.asm import R0, R1, R2, R6, R10, W1, W7, AsmError, Program, decode


def build_contract_program() -> Program:
    p = Program(isa="v3")
    p.mov(R6, R1)
    p.mov(W7, 0)
    p.add(R1, -8)
    p.ldxdw(R1, R6, 8)
    p.ldxw(W1, R6, 8)
    p.stxdw(R10, -8, R1)
    p.stw(R10, -16, 0)
    p.lddw(R1, 0x1122334455667788)
    p.ld_map_fd(R1, "events")
    p.ld_map_value(R1, "cfg", 16)
    p.call("ringbuf_reserve")
    p.call_label("subprog")
    p.jeq(R0, 0, "out")
    p.label("again")
    p.jne(W1, R2, "again")
    p.ja("out")
    p.label("out")
    p.exit()
    p.label("subprog")
    p.mov(R0, 0)
    p.exit()
    return p


def test_contract_program_encodes_with_map_fds() -> None:
    p = build_contract_program()
    code = p.encode({"events": 7, "cfg": 8})
    assert len(code) == 8 * p.slot_count == 8 * len(p.slot_sources())
    insns = decode(code)
    by_pseudo = {ins.src: ins.imm for ins in insns if ins.opcode == 0x18}
    assert by_pseudo[1] == 7
    assert by_pseudo[2] == (16 << 32) | 8
    assert [r.map_name for r in p.relocations] == ["events", "cfg"]


def test_sources_point_at_this_file() -> None:
    p = build_contract_program()
    assert all(s.startswith("test_dsl_smoke.py:") for s in p.slot_sources())


def test_missing_map_fd_names_map_and_line() -> None:
    p = build_contract_program()
    with pytest.raises(AsmError, match=r"'cfg'.*test_dsl_smoke\.py:\d+"):
        p.encode({"events": 7})
