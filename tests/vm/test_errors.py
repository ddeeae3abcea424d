"""Every way a program stops with a VmError, and what the message says: the instruction's index,
its disassembly, the line that emitted it, and the reason."""

from __future__ import annotations

import re

import pytest

from openat.asm import Instruction, Program, R0, R1, R2, R3, R4, R10, W1
from openat.vm import ArrayMap, HashMap, Machine, RingBufMap, VmError

HERE = "test_errors.py"


def fails(program, match, **run):
    """The VmError running ``program`` raises, checked against the regex ``match``; one line."""
    machine = program if isinstance(program, Machine) else Machine(program)
    with pytest.raises(VmError) as caught:
        machine.run(**run)
    assert re.search(match, str(caught.value)), str(caught.value)
    assert "\n" not in str(caught.value)
    return caught.value


def program(*lines, isa="v4", **options):
    p = Program(isa=isa, **options)
    for line in lines:
        line(p)
    return p


def test_a_load_past_the_end_of_the_context_names_instruction_source_and_region():
    p = Program(isa="v4")
    p.ldxdw(R0, R1, 8)  # #line-past-end
    p.exit()
    error = fails(p, r"^insn 0 `r0 = \*\(u64 \*\)\(r1 \+ 0x8\)` \(test_errors.py:\d+\): load: 8-byte access at "
                     r"0x100000008 \(ctx\+0x8\) runs past the end of ctx \(12 bytes\)$", ctx=bytes(12))
    assert (error.slot, error.instruction, error.source.split(":")[0]) == (0, "r0 = *(u64 *)(r1 + 0x8)", HERE)
    assert error.reason.startswith("load:")


def test_a_store_below_the_stack():
    p = program(lambda p: p.stdw(R10, -520, 1), lambda p: p.exit())
    fails(p, r"insn 0 `\*\(u64 \*\)\(r10 - 0x208\) = 0x1`.*store: 8-byte access at 0xffffffff8 is 8 bytes before "
             r"the start of fp \(512 bytes at 0x1000000000\)")


def test_a_store_past_the_end_of_the_packet():
    p = program(lambda p: p.stw(R1, 6, 1), lambda p: p.exit())
    fails(p, r"store: 4-byte access at 0x200000006 \(packet\+0x6\) runs past the end of packet \(8 bytes\)", mem=bytes(8))


def test_a_null_pointer():
    p = program(lambda p: p.mov(R1, 0), lambda p: p.ldxb(R0, R1, 0), lambda p: p.exit())
    fails(p, r"insn 1 .*: load: 1-byte access at 0x0: a NULL pointer")


def test_a_direct_load_from_user_memory():
    p = program(lambda p: p.ldxdw(R1, R1, 0), lambda p: p.ldxb(R0, R1, 0), lambda p: p.exit())
    machine = Machine(p)
    user = machine.memory.add("user page", b"secret", user=True)
    fails(machine, r"insn 1 .*: load at 0x[0-9a-f]+ \(user page\+0x0\): that is user memory, which a program reads "
                   r"with bpf_probe_read_user", ctx=user.base.to_bytes(8, "little"))


def test_a_store_to_read_only_memory():
    p = program(lambda p: p.ldxdw(R1, R1, 0), lambda p: p.stb(R1, 0, 1), lambda p: p.exit())
    machine = Machine(p)
    table = machine.memory.add("table", b"\0" * 8, writable=False)
    fails(machine, r"insn 1 .*: store to 0x[0-9a-f]+ \(table\+0x0\): table is read-only", ctx=table.base.to_bytes(8, "little"))


def test_a_misaligned_stack_access():
    p = program(lambda p: p.stw(R10, -6, 1), lambda p: p.exit())
    fails(p, r"insn 0 .*misaligned 4-byte store at 0x10000001fa \(fp-0x6\): stack accesses must be aligned")


def test_misaligned_context_access_is_allowed_unless_strict():
    p = program(lambda p: p.ldxw(R0, R1, 1), lambda p: p.exit())
    assert Machine(p).run(ctx=b"\x00\x01\x02\x03\x04") == 0x04030201
    fails(Machine(p, strict_alignment=True), r"misaligned 4-byte load at 0x100000001 \(ctx\+0x1\) \(strict_alignment=True\)",
          ctx=bytes(5))


def test_a_misaligned_atomic():
    p = program(lambda p: p.mov(R2, 1), lambda p: p.atomic_add(R1, 2, W1), lambda p: p.exit())
    fails(p, r"insn 1 .*misaligned 4-byte atomic add at 0x100000002 \(ctx\+0x2\): atomics need aligned addresses",
          ctx=bytes(8))


def test_a_jump_outside_the_program_stops_when_taken():
    p = program(lambda p: p.mov(R0, 1), lambda p: p.jeq(R0, 2, 100), lambda p: p.ja(-5), lambda p: p.exit())
    fails(p, r"insn 2 `goto -0x5`.*: jump to slot -2, outside the program \(slots 0\.\.3\)")


def test_a_jump_into_the_middle_of_an_lddw():
    p = program(lambda p: p.ja(1), lambda p: p.lddw(R0, 1 << 40), lambda p: p.exit())
    fails(p, r"insn 0 `goto \+0x1`.*: jump to slot 2, the second half of an lddw")


def test_running_past_the_last_instruction():
    p = program(lambda p: p.mov(R0, 1), lambda p: p.add(R0, 1))
    fails(p, r"insn 1 `r0 \+= 0x1`.*: execution ran past the last instruction without exit")
    with pytest.raises(VmError, match="the program is empty"):
        Machine(b"").run()


def test_the_instruction_budget():
    p = program(lambda p: p.label("forever"), lambda p: p.add(R0, 1), lambda p: p.ja("forever"))
    machine = Machine(p, budget=1001)
    fails(machine, r"insn 1 `goto -0x2`.*: stopped: the instruction budget of 1001 is spent")
    assert machine.steps == 1001 and machine.registers[0] == 501
    fails(Machine(p), r"budget of 10 is spent", budget=10)  # run(budget=...) overrides it for one run


def test_the_call_depth_limit():
    p = Program(isa="v4")
    p.label("again")
    p.call_label("again")
    p.exit()
    fails(p, r"insn 0 `call pc-0x1`.*: call depth limit: a program may nest 8 frames")


def test_an_unknown_helper_names_it():
    p = program(lambda p: p.call("tail_call"), lambda p: p.exit())
    fails(p, r"insn 0 `call 0xc # bpf_tail_call`.*: helper 12 \(bpf_tail_call\) is not implemented by openat\.vm; "
             r"machine.register_helper\('tail_call', function\) adds it")
    raw = Instruction(0x85, 0, 0, 0, 999).encode() + Instruction(0x95).encode()
    fails(raw, r"helper 999 is not a Linux helper")


def test_bad_bytes_and_isa_levels_are_refused_when_the_machine_is_made():
    with pytest.raises(VmError, match=r"cannot decode the program: slot 0 \(ff 00 .*\): unknown opcode 0xff"):
        Machine(bytes.fromhex("ff00000000000000"))
    with pytest.raises(VmError, match=r"code is 3 bytes"):
        Machine(b"abc")
    sdiv = program(lambda p: p.sdiv(R0, 2), lambda p: p.exit())
    with pytest.raises(VmError, match=r"^insn 0 `r0 s/= 0x2` \(test_errors.py:\d+\): needs ISA v4, this machine runs v3$"):
        Machine(sdiv, isa="v3")
    with pytest.raises(VmError, match="ISA level must be one of"):
        Machine(sdiv, isa="v9")
    with pytest.raises(VmError, match="takes a Program, bytes or a list"):
        Machine(42)  # type: ignore[arg-type]


def test_maps_the_program_names_must_be_given():
    p = program(lambda p: p.ld_map_fd(R1, "counter"), lambda p: p.exit())
    with pytest.raises(VmError, match=r"the program uses map 'counter': pass maps=\{'counter': ArrayMap"):
        Machine(p)
    with pytest.raises(VmError, match=r"insn 0 .*: no map with fd 7: pass maps=\{7: ArrayMap"):
        Machine(Instruction(0x18, 1, 1, 0, 7).encode() + Instruction(0x95).encode())
    hashed = program(lambda p: p.ld_map_value(R1, "h"), lambda p: p.exit())
    with pytest.raises(VmError, match="ld_map_value needs an array map of one entry"):
        Machine(hashed, maps={"h": HashMap(4, 8, 4)})
    with pytest.raises(VmError, match="maps must be openat.vm maps"):
        Machine(p, maps={"counter": object()})  # type: ignore[dict-item]


def test_a_map_handle_is_not_memory():
    p = program(lambda p: p.ld_map_fd(R1, "counter"), lambda p: p.ldxdw(R0, R1, 0), lambda p: p.exit())
    fails(Machine(p, maps={"counter": ArrayMap(8, 1)}), r"is a map handle, not memory")


def test_what_the_machine_does_not_model_stops_when_reached():
    kfunc = program(lambda p: p.mov(R0, 0), lambda p: p.call_kfunc(1234), lambda p: p.exit())
    fails(kfunc, r"insn 1 `call kfunc 0x4d2`.*: kfunc calls \(BTF id 1234\) are not modelled")
    btf = program(lambda p: p.ld_btf_id(R1, 77), lambda p: p.exit())
    fails(btf, r"kernel variables \(BTF id 77\) are not modelled")


def test_a_pointer_into_a_deleted_element_faults():
    table = HashMap(4, 8, 4, name="table")
    table.update(1, 5)
    p = Program(isa="v4")
    p.stw(R10, -4, 1)
    p.ld_map_fd(R1, "table")
    p.mov(R2, R10)
    p.add(R2, -4)
    p.call("map_lookup_elem")
    p.ld_map_fd(R1, "table")
    p.mov(R2, R10)
    p.add(R2, -4)
    p.stxdw(R10, -16, R0)
    p.call("map_delete_elem")
    p.ldxdw(R1, R10, -16)
    p.ldxdw(R0, R1, 0)
    p.exit()
    fails(Machine(p, maps={"table": table}), r"insn 13 .*: load: 8-byte access at 0x[0-9a-f]+ is in no region")


def test_a_reservation_left_at_exit():
    p = Program(isa="v4")
    p.ld_map_fd(R1, "ring")
    p.mov(R2, 8)
    p.mov(R3, 0)
    p.call("ringbuf_reserve")
    p.mov(R0, 0)
    p.exit()
    fails(Machine(p, maps={"ring": RingBufMap(4096)}),
          r"insn 6 `exit`.*: the program exits holding 1 ring-buffer reservation neither submitted nor discarded")


def test_submitting_what_was_not_reserved():
    p = program(lambda p: p.mov(R1, R10), lambda p: p.mov(R2, 0), lambda p: p.call("ringbuf_submit"), lambda p: p.exit())
    fails(p, r"insn 2 .*: ringbuf_submit: 0x1000000200 \(fp\) is not a record from ringbuf_reserve")


def test_a_helper_that_raises_is_named():
    p = program(lambda p: p.call("get_prandom_u32"), lambda p: p.exit())
    machine = Machine(p)
    machine.register_helper("get_prandom_u32", lambda m, *args: 1 // 0)
    fails(machine, r"insn 0 .*: bpf_get_prandom_u32 raised ZeroDivisionError: integer division or modulo by zero")


def test_a_helper_argument_that_is_not_a_map():
    p = program(lambda p: p.mov(R1, 5), lambda p: p.mov(R2, R10), lambda p: p.call("map_lookup_elem"), lambda p: p.exit())
    fails(p, r"insn 2 .*: 0x5 is not a map \(a map argument comes from ld_map_fd\)")


def test_callx_to_neither_code_nor_a_helper():
    p = program(lambda p: p.lddw(R3, 1 << 40), lambda p: p.callx(R3), lambda p: p.exit(), callx=True)
    fails(p, r"insn 2 `callx r3`.*: callx r3: 0x10000000000 is neither code \(an ld_func address\) nor a helper id")


def test_a_fault_in_a_callback_names_the_callbacks_instruction():
    p = Program(isa="v4")
    p.mov(R1, 3)
    p.ld_func(R2, "callback")
    p.mov(R3, 0)
    p.mov(R4, 0)
    p.call("loop")
    p.exit()
    p.label("callback")
    p.ldxdw(R0, R3, 0)  # r3 is 0 in the callback: NULL  #callback-line
    p.exit()
    error = fails(p, r"insn 7 `r0 = \*\(u64 \*\)\(r3 \+ 0x0\)` .*NULL pointer")
    assert error.slot == 7  # not the call at 5


def test_a_failing_packet_load_in_a_called_function():
    p = Program(isa="v4")
    p.call_label("sub")
    p.exit()
    p.label("sub")
    p.ldabsb(100)
    p.exit()
    fails(p, r"insn 2 `r0 = \*\(u8 \*\)skb\[0x64\]`.*: a packet load in a called function", ctx=bytes(8), mem=bytes(4))
