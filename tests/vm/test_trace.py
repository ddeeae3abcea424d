"""machine.trace(): the records for code and the text for a person."""

from __future__ import annotations

from openat.asm import Program, R0, R1, R2, R10
from openat.vm import ArrayMap, Machine
from openat.vm.trace import MemoryWrite, RegisterChange, printable


def counter_program() -> Program:
    p = Program(isa="v4")
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


def test_each_step_records_instruction_changes_and_writes():
    machine = Machine(counter_program(), maps={"counter": ArrayMap(8, 1, name="counter")})
    trace = machine.trace()
    assert trace.result == 0 and trace.error is None and len(trace) == machine.steps == 10
    assert [step.slot for step in trace] == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]
    store, copy = trace.steps[0], trace.steps[1]
    assert store.instruction == "*(u32 *)(r10 - 0x4) = 0x0" and store.source.startswith("test_trace.py:")
    assert store.writes == (MemoryWrite(0x10_0000_01FC, bytes(4), "fp-0x4"),) and store.changes == ()
    assert copy.changes == (RegisterChange(2, 0, 0x10_0000_0200, "fp"),)
    load_map, lookup = trace.steps[3], trace.steps[4]
    assert load_map.instruction == "ld_pseudo r1, 0x1, 0x3 # map counter"
    assert load_map.changes[0].points_to == "map counter"
    assert lookup.instruction == "call 0x1 # bpf_map_lookup_elem"
    assert lookup.changes[0].points_to == "counter[0]+0x0"
    assert trace.steps[7].writes[0].where == "counter[0]+0x0" and trace.steps[7].writes[0].data == (1).to_bytes(8, "little")


def test_the_text_is_one_line_a_step_and_how_it_ended():
    machine = Machine(counter_program(), maps={"counter": ArrayMap(8, 1, name="counter")})
    text = machine.trace().text()
    lines = text.splitlines()
    assert len(lines) == 11
    assert lines[0].split("#")[0].split() == ["0", "*(u32", "*)(r10", "-", "0x4)", "=", "0x0", "[fp-0x4]", "=", "0x00000000"]
    assert "r2 = 0x1000000200 (fp)" in lines[1]
    assert "r0 = 0x10000000000 (counter[0]+0x0)" in lines[4]
    assert "[counter[0]+0x0] = 0x0000000000000001" in lines[7]
    assert lines[-1] == "exit: r0 = 0x0 (0) after 10 instructions"
    assert "test_trace.py:" in lines[0] and "test_trace.py:" not in machine.trace().text(sources=False)


def test_a_trace_that_faults_ends_with_the_error():
    p = Program(isa="v4")
    p.mov(R1, 0)
    p.ldxw(R0, R1, 0)
    p.exit()
    trace = Machine(p).trace()
    assert trace.result is None and trace.error is not None and len(trace) == 1
    assert trace.text().splitlines()[-1].startswith("error: insn 1 `w0 = *(u32 *)(r1 + 0x0)`")
    assert repr(trace).startswith("<Trace of 1 steps, error=insn 1")


def test_helper_writes_and_call_frames_show():
    p = Program(isa="v4")
    p.mov(R1, R10)
    p.add(R1, -16)
    p.mov(R2, 16)
    p.call("get_current_comm")
    p.call_label("sub")
    p.exit()
    p.label("sub")
    p.mov(R0, 7)
    p.exit()
    trace = Machine(p).trace()
    comm = trace.steps[3]
    assert comm.writes == (MemoryWrite(0x10_0000_01F0, b"openat-vm".ljust(16, b"\0"), "fp-0x10"),)
    assert [step.depth for step in trace][4:] == [0, 1, 1, 0]
    assert any(change.register == 10 and change.points_to == "fp1" for change in trace.steps[4].changes)
    assert "\n     6    r0 = 0x7 " in trace.text()  # depth 1 is indented


def test_printable_escapes_what_could_drive_a_terminal():
    assert printable("ok \x1b[31mred\\\u202e") == "ok \\x1b[31mred\\\\\\u{202e}"
